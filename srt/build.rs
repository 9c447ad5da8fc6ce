//! Links the system libsrt through pkg-config and compiles the header check.
//!
//! The check is a C file generated from the marked blocks of `src/ffi.rs`: for
//! each constant it returns the header's value, for each `CBytePerfMon` field
//! its `offsetof`, `sizeof` and C type. The crate's tests compare them with the
//! Rust side, so no number in `ffi.rs` is hand-copied without a check.

use std::fmt::Write as _;
use std::path::PathBuf;

fn block<'a>(src: &'a str, begin: &str, end: &str) -> impl Iterator<Item = &'a str> {
    let start = src.find(begin).unwrap_or_else(|| panic!("{begin} missing in ffi.rs"));
    let stop = src.find(end).unwrap_or_else(|| panic!("{end} missing in ffi.rs"));
    src[start..stop].lines().skip(1).filter_map(|l| {
        let (name, _) = l.trim().split_once(':')?;
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then_some(name)
    })
}

fn main() {
    println!("cargo:rerun-if-changed=src/ffi.rs");
    // Headers and version check from libsrt-openssl-dev's pkg-config file;
    // the library to link is chosen below.
    let lib = pkg_config::Config::new()
        .atleast_version("1.4")
        .cargo_metadata(false)
        .probe("srt")
        .unwrap_or_else(|e| panic!("libsrt not found via pkg-config (install libsrt-openssl-dev): {e}"));

    link_libsrt(&lib);

    let src = std::fs::read_to_string("src/ffi.rs").unwrap_or_else(|e| panic!("read src/ffi.rs: {e}"));
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n#include <srt/srt.h>\n\
         #define KIND(x) _Generic((x), int: 1, int64_t: 2, uint64_t: 3, double: 4, default: 0)\n\
         #define F(f) ((SRT_TRACEBSTATS *)0)->f\n\
         int edge_srt_const(const char *n, int64_t *out) {\n",
    );
    for name in block(&src, "// @c-consts-begin", "// @c-consts-end") {
        let _ = writeln!(c, "  if (!strcmp(n, \"{name}\")) {{ *out = (int64_t)({name}); return 1; }}");
    }
    c.push_str("  return 0;\n}\nint edge_srt_field(const char *n, size_t *off, size_t *size, int *kind) {\n");
    for f in block(&src, "// @c-struct-begin", "// @c-struct-end") {
        let _ = writeln!(
            c,
            "  if (!strcmp(n, \"{f}\")) {{ *off = offsetof(SRT_TRACEBSTATS, {f}); *size = sizeof(F({f})); *kind = KIND(F({f})); return 1; }}"
        );
    }
    c.push_str(
        "  return 0;\n}\nsize_t edge_srt_sizeof(int which) {\n  switch (which) {\n\
         \x20 case 0: return sizeof(SRT_TRACEBSTATS);\n  case 1: return _Alignof(SRT_TRACEBSTATS);\n\
         \x20 case 2: return sizeof(SRT_SOCKOPT);\n  case 3: return sizeof(SRT_SOCKSTATUS);\n\
         \x20 case 4: return sizeof(SRTSOCKET);\n  default: return 0;\n  }\n}\n",
    );

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| panic!("OUT_DIR unset")));
    let path = out.join("edge_srt_check.c");
    std::fs::write(&path, c).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    cc::Build::new().file(&path).includes(&lib.include_paths).warnings(false).compile("edge_srt_check");
}

/// Links Debian's GnuTLS build of libsrt when it is installed (srt-tools and
/// GStreamer's srt plugin use it), else the OpenSSL build pkg-config names.
/// Both are the same libsrt release with the same ABI; the GnuTLS build's
/// AES (nettle) cost a quarter of the OpenSSL build's `AES_encrypt` path in
/// `edge-bench srt`. `EDGE_SRT_LIB=openssl` forces the OpenSSL build.
fn link_libsrt(lib: &pkg_config::Library) {
    println!("cargo:rerun-if-env-changed=EDGE_SRT_LIB");
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    let gnutls = lib
        .link_paths
        .iter()
        .chain(std::iter::once(&std::path::PathBuf::from("/usr/lib/x86_64-linux-gnu")))
        .map(|d| d.join("libsrt-gnutls.so.1.5"))
        .find(|p| p.exists());
    match (std::env::var("EDGE_SRT_LIB").as_deref(), gnutls) {
        (Ok("openssl"), _) | (_, None) => println!("cargo:rustc-link-lib=dylib=srt"),
        (_, Some(path)) => {
            if let Some(dir) = path.parent() {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
            println!("cargo:rustc-link-lib=dylib:+verbatim=libsrt-gnutls.so.1.5");
        }
    }
}
