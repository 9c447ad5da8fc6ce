//! Crash-consistency helper: rewrites a configuration file forever with the
//! agent's own atomic writer, alternating two valid documents, until it is
//! killed. `tests/crash_consistency.rs` kills it with SIGKILL at random
//! moments and checks what is left on disk.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(a), Some(b)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: config_writer PATH DOC_A DOC_B");
        std::process::exit(2);
    };
    let (a, b) = (std::fs::read(a).unwrap_or_default(), std::fs::read(b).unwrap_or_default());
    let path = std::path::PathBuf::from(path);
    for i in 0u64.. {
        let doc = if i % 2 == 0 { &b } else { &a };
        if let Err(e) = agent::write_atomically(&path, doc) {
            eprintln!("write failed: {e}");
            std::process::exit(1);
        }
    }
}
