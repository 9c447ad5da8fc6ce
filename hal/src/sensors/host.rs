//! Disk usage and clock synchronisation.

use std::path::Path;

use serde::Serialize;

use super::SensorError;

/// Space on the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    pub total_bytes: u64,
    /// Available to unprivileged users (`f_bavail`): the agent does not run
    /// as root, so the root-reserved blocks are not its to use.
    pub available_bytes: u64,
}

/// `statvfs(path)`: sizes are in fragment-size units (`f_frsize`).
pub fn disk_usage(path: &Path) -> Result<DiskUsage, SensorError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|errno| SensorError::Io { path: path.to_owned(), source: errno.into() })?;
    // The field types are u32 or u64 depending on the target; widen.
    #[allow(clippy::useless_conversion)]
    let (frsize, blocks, bavail) = (u64::from(st.fragment_size()), u64::from(st.blocks()), u64::from(st.blocks_available()));
    Ok(DiskUsage { total_bytes: blocks.saturating_mul(frsize), available_bytes: bavail.saturating_mul(frsize) })
}

/// Whether systemd-timesyncd has synchronised the clock since boot:
/// `Some(true)` if `<run>/systemd/timesync/synchronized` exists (touched on
/// each successful sync, `systemd-timesyncd.service(8)`), `Some(false)` if
/// timesyncd's run directory exists without it, `None` if timesyncd is not
/// in use (another NTP daemon, or none): then this file says nothing.
pub fn clock_synchronized(run_root: &Path) -> Option<bool> {
    let dir = run_root.join("systemd/timesync");
    if dir.join("synchronized").exists() {
        Some(true)
    } else if dir.is_dir() {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_of_a_real_path() {
        let d = disk_usage(Path::new("/")).unwrap();
        assert!(d.total_bytes > 0 && d.available_bytes <= d.total_bytes, "{d:?}");
        assert!(matches!(disk_usage(Path::new("/nonexistent/x")), Err(SensorError::Io { .. })));
    }

    #[test]
    fn clock_sync_from_timesyncd_flag_file() {
        let run = tempfile::tempdir().unwrap();
        assert_eq!(clock_synchronized(run.path()), None, "timesyncd not in use");
        std::fs::create_dir_all(run.path().join("systemd/timesync")).unwrap();
        assert_eq!(clock_synchronized(run.path()), Some(false));
        std::fs::write(run.path().join("systemd/timesync/synchronized"), "").unwrap();
        assert_eq!(clock_synchronized(run.path()), Some(true));
    }
}
