//! Whether the libsrt loaded at run time has the layouts `ffi.rs` declares.
//!
//! `ffi.rs` is checked against the headers the agent is *built* with (the
//! build machine's libsrt 1.5.1), but the box loads whatever
//! `libsrt-gnutls.so.1.5` its image ships. The soname stays `1.5` across
//! releases that could still change a struct the binding passes by pointer
//! (`CBytePerfMon`, filled by `srt_bistats`) or an enum value, and a mismatch
//! there is silent memory corruption, not an error. So the agent checks
//! `srt_getversion()` at start against the releases whose `srt.h` was
//! compared item by item (docs/srt.md#runtime-libsrt) and refuses SRT with
//! any other.

use std::fmt;

/// First and last libsrt release (packed `0x00MMmmpp`, as `srt_getversion`
/// returns) whose `srt.h` declares everything `ffi.rs` uses identically:
/// every `CBytePerfMon` field's offset, size and type, `sizeof` of the struct,
/// `SRT_SOCKOPT`, `SRT_SOCKSTATUS` and `SRTSOCKET`, every constant and every
/// function signature. Compared for v1.5.0 to v1.5.5 by compiling `build.rs`'s
/// generated check against each tag's header. The only differences are
/// enumerators added behind build options (`SRTO_CRYPTOMODE`,
/// `SRTO_MAXREXMITBW`, `SRT_REJ_CRYPTO` before `SRT_REJ_E_SIZE`), which the
/// binding never sends, and which it reads back as an unknown reject reason.
pub const LAYOUT_KNOWN_FIRST: u32 = 0x01_05_00;
/// Last release compared (see [`LAYOUT_KNOWN_FIRST`]).
pub const LAYOUT_KNOWN_LAST: u32 = 0x01_05_05;

/// First release with the key-refresh race fixed (srt.md: 1.5.1 swaps keys on
/// the ACK thread while the send thread encrypts).
const KEY_REFRESH_FIXED: u32 = 0x01_05_02;

/// The decision for one libsrt version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Layouts identical to the binding's; no known defect the agent meets.
    Ok,
    /// Layouts identical, but a known defect remains: SRT runs, the
    /// message says what to expect.
    Flawed(String),
    /// Layouts not known to match: SRT must not be used.
    Refused(String),
}

/// `major.minor.patch` of a packed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [_, major, minor, patch] = self.0.to_be_bytes();
        write!(f, "{major}.{minor}.{patch}")
    }
}

/// The decision for `version` (packed `0x00MMmmpp`). Pure, so it is tested
/// for every boundary without loading another libsrt.
pub fn verdict(version: u32) -> Verdict {
    let v = Version(version);
    let (first, last) = (Version(LAYOUT_KNOWN_FIRST), Version(LAYOUT_KNOWN_LAST));
    if !(LAYOUT_KNOWN_FIRST..=LAYOUT_KNOWN_LAST).contains(&version) {
        Verdict::Refused(format!(
            "libsrt {v} is loaded, but the agent's SRT binding is known to match only libsrt {first} to {last} \
             (struct layouts and constants compared); SRT outputs are refused: install a libsrt in that range, \
             or an agent built and checked against {v}"
        ))
    } else if version < KEY_REFRESH_FIXED {
        Verdict::Flawed(format!(
            "libsrt {v} can crash when it refreshes an encryption key (fixed in 1.5.2); \
             encrypted outputs refresh every 2^24 packets"
        ))
    } else {
        Verdict::Ok
    }
}

/// The decision for the libsrt loaded in this process.
pub fn runtime_verdict() -> (Version, Verdict) {
    let v = crate::libsrt_version_packed();
    (Version(v), verdict(v))
}

#[cfg(test)]
mod tests {
    use super::{verdict, Verdict, Version};

    #[test]
    fn versions_compared_are_accepted_and_others_refused() {
        // 1.4.x: CBytePerfMon is the same, but 1.4 was not compared as a
        // whole (options and reject reasons differ), so it is refused.
        assert!(matches!(verdict(0x01_04_04), Verdict::Refused(_)));
        assert!(matches!(verdict(0x01_05_00), Verdict::Flawed(_)));
        assert!(matches!(verdict(0x01_05_01), Verdict::Flawed(_)));
        assert_eq!(verdict(0x01_05_02), Verdict::Ok);
        assert_eq!(verdict(0x01_05_04), Verdict::Ok, "Debian 13's libsrt");
        assert_eq!(verdict(0x01_05_05), Verdict::Ok);
        for unknown in [0x01_05_06, 0x01_06_00, 0x02_00_00, 0, u32::MAX] {
            assert!(matches!(verdict(unknown), Verdict::Refused(_)), "{unknown:#x}");
        }
    }

    #[test]
    fn refusal_names_the_loaded_version_and_the_known_range() {
        let Verdict::Refused(msg) = verdict(0x01_05_06) else { panic!("1.5.6 accepted") };
        assert!(msg.contains("libsrt 1.5.6 is loaded"), "{msg}");
        assert!(msg.contains("1.5.0 to 1.5.5"), "{msg}");
        assert_eq!(Version(0x01_05_04).to_string(), "1.5.4");
    }

    #[test]
    fn the_libsrt_this_crate_is_tested_against_is_accepted() {
        let (v, verdict) = super::runtime_verdict();
        assert!(!matches!(verdict, Verdict::Refused(_)), "libsrt {v}: {verdict:?}");
    }
}
