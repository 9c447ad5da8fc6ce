//! A [`V4l2Probe`] backend that asks `v4l2-ctl` (v4l-utils) instead of
//! issuing the ioctls itself: this workspace keeps `unsafe` to the libsrt
//! binding, and v4l2-ctl is on every V4L2 box anyway.
//!
//! `v4l2-ctl -d DEV --query-dv-timings` prints either
//! `VIDIOC_QUERY_DV_TIMINGS: failed: <strerror(errno)>` or the timings, one
//! `\tName: value` line each (`utils/v4l2-ctl/v4l2-ctl-stds.cpp`,
//! `print_dv_timings`). [`parse_query_dv_timings`] reads that text.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{BtTimings, CaptureError, DvQuery, DvTimings, V4l2Probe};

/// Runs `v4l2-ctl` per query, bounded by a timeout.
#[derive(Debug, Clone)]
pub struct V4l2CtlProbe {
    pub program: PathBuf,
    pub timeout: Duration,
}

impl Default for V4l2CtlProbe {
    fn default() -> Self {
        V4l2CtlProbe { program: PathBuf::from("v4l2-ctl"), timeout: Duration::from_secs(2) }
    }
}

impl V4l2CtlProbe {
    /// Runs `v4l2-ctl -d DEV ARGS…`, killed at the timeout; returns its
    /// exit status and stdout (v4l2-ctl prints its failures there too).
    fn run(&self, dev: &Path, args: &[&str]) -> Result<(ExitStatus, String), CaptureError> {
        let err = |reason: String| CaptureError::Probe { dev: dev.to_owned(), reason };
        let mut child = Command::new(&self.program)
            .arg("-d")
            .arg(dev)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("{}: {e}", self.program.display())))?;
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err(format!("v4l2-ctl did not answer within {:?}", self.timeout)));
                }
                Err(e) => return Err(err(e.to_string())),
            }
        };
        let mut text = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        Ok((status, text))
    }
}

impl V4l2Probe for V4l2CtlProbe {
    fn query(&self, dev: &Path) -> Result<DvQuery, CaptureError> {
        let (_, text) = self.run(dev, &["--query-dv-timings"])?;
        let dv_timings = parse_query_dv_timings(&text).ok_or_else(|| CaptureError::Probe {
            dev: dev.to_owned(),
            reason: format!("unexpected v4l2-ctl output: {:.80}", text.trim()),
        })?;
        Ok(DvQuery { is_capture: None, input_no_signal: None, dv_timings })
    }

    /// `--set-dv-bt-timings query`: v4l2-ctl queries the timings and sets
    /// what it found (`v4l2-ctl-stds.cpp`, the `query` keyword), printing
    /// `BT timings set` or `VIDIOC_…: failed: <strerror>`.
    fn apply_detected_timings(&self, dev: &Path) -> Result<(), CaptureError> {
        let (status, text) = self.run(dev, &["--set-dv-bt-timings", "query"])?;
        let failed = text.lines().find(|l| l.contains(": failed:"));
        match failed {
            None if status.success() => Ok(()),
            _ => Err(CaptureError::Probe {
                dev: dev.to_owned(),
                reason: format!("cannot set the detected timings: {}", failed.unwrap_or(text.trim()).trim()),
            }),
        }
    }
}

/// Interprets `v4l2-ctl --query-dv-timings` output; `None` when it is
/// neither a known failure nor timings (e.g. "Unable to detect what
/// device …").
pub fn parse_query_dv_timings(text: &str) -> Option<DvTimings> {
    if let Some(line) = text.lines().find(|l| l.starts_with("VIDIOC_QUERY_DV_TIMINGS: failed:")) {
        // glibc strerror() texts of the errnos the ioctl documents.
        let reason = line.trim_start_matches("VIDIOC_QUERY_DV_TIMINGS: failed:").trim();
        return Some(match reason {
            "Link has been severed" => DvTimings::NoLink,
            "No locks available" => DvTimings::NoLock,
            "Numerical result out of range" => DvTimings::OutOfRange,
            // ENODATA (no DV timings on this input), ENOTTY/EINVAL (no such
            // ioctl: UVC and analog inputs).
            _ => DvTimings::Unsupported,
        });
    }
    let field = |name: &str| -> Option<&str> {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    let number = |name: &str| -> Option<u64> { field(name)?.split_whitespace().next()?.parse().ok() };
    let width = u32::try_from(number("Active width")?).ok()?;
    let height = u32::try_from(number("Active height")?).ok()?;
    let total_w = u32::try_from(number("Total width")?).ok()?;
    let total_h = u32::try_from(number("Total height")?).ok()?;
    // The totals already include every porch and, when interlaced, the
    // second field's blanking: fold them into one porch each.
    Some(DvTimings::Timings(BtTimings {
        width,
        height,
        interlaced: field("Frame format") == Some("interlaced"),
        pixelclock: number("Pixelclock")?,
        hfrontporch: total_w.saturating_sub(width),
        vfrontporch: total_h.saturating_sub(height),
        reduced_fps: field("Flags").is_some_and(|f| f.contains("framerate is reduced by 1/1.001")),
        ..BtTimings::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Signal, VideoFormat};

    /// 1080i50 (CEA-861 VIC 20) as print_dv_timings writes it.
    const I1080_50: &str = "\tActive width: 1920\n\tActive height: 1080\n\tTotal width: 2640\n\tTotal height: 1125\n\
        \tFrame format: interlaced\n\tPolarities: +vsync +hsync\n\tPixelclock: 74250000 Hz (50.00 fields per second)\n\
        \tHorizontal frontporch: 528\n\tHorizontal sync: 44\n\tHorizontal backporch: 148\n\tField 1:\n\
        \tVertical frontporch: 2\n\tVertical sync: 5\n\tVertical backporch: 15\n\tStandards: CTA-861\n\tFlags: \n";

    const P1080_5994: &str = "\tActive width: 1920\n\tActive height: 1080\n\tTotal width: 2200\n\tTotal height: 1125\n\
        \tFrame format: progressive\n\tPolarities: +vsync +hsync\n\tPixelclock: 148500000 Hz (60.00 frames per second)\n\
        \tStandards: CTA-861\n\tFlags: framerate can be reduced by 1/1.001, framerate is reduced by 1/1.001\n";

    fn signal(text: &str) -> Signal {
        DvQuery { is_capture: None, input_no_signal: None, dv_timings: parse_query_dv_timings(text).unwrap() }.signal()
    }

    #[test]
    fn failures_map_to_link_lock_and_range() {
        assert_eq!(signal("VIDIOC_QUERY_DV_TIMINGS: failed: Link has been severed\n"), Signal::NoLink);
        assert_eq!(signal("VIDIOC_QUERY_DV_TIMINGS: failed: No locks available\n\tActive width: 0\n"), Signal::CannotLock);
        assert_eq!(signal("VIDIOC_QUERY_DV_TIMINGS: failed: Numerical result out of range\n"), Signal::OutOfRange);
        assert_eq!(signal("VIDIOC_QUERY_DV_TIMINGS: failed: Inappropriate ioctl for device\n"), Signal::Unknown);
        assert_eq!(parse_query_dv_timings("Unable to detect what device /dev/null is, exiting.\n"), None);
        assert_eq!(parse_query_dv_timings(""), None);
    }

    #[test]
    fn timings_become_broadcast_formats() {
        let i50 = VideoFormat { width: 1920, height: 1080, fps_num: 25, fps_den: 1, interlaced: true };
        assert_eq!(signal(I1080_50), Signal::Locked(i50));
        assert_eq!(i50.to_string(), "1920x1080i50");
        let p5994 = VideoFormat { width: 1920, height: 1080, fps_num: 60000, fps_den: 1001, interlaced: false };
        assert_eq!(signal(P1080_5994), Signal::Locked(p5994));
    }

    /// A stand-in v4l2-ctl that prints `out` and exits with `code`.
    fn script(dir: &Path, out: &str, code: i32) -> V4l2CtlProbe {
        let prog = dir.join("v4l2-ctl");
        std::fs::write(&prog, format!("#!/bin/sh\necho \"$*\" > {}/args\nprintf '{out}'\nexit {code}\n", dir.display())).unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        V4l2CtlProbe { program: prog, ..V4l2CtlProbe::default() }
    }

    #[test]
    fn detected_timings_are_set_through_the_query_keyword() {
        let dir = tempfile::tempdir().unwrap();
        let ok = script(dir.path(), "BT timings set\\n", 0);
        ok.apply_detected_timings(Path::new("/dev/video0")).unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(args.trim(), "-d /dev/video0 --set-dv-bt-timings query");
        // Busy (buffers allocated) and no link: errors that name the reason.
        let busy = script(dir.path(), "VIDIOC_S_DV_TIMINGS: failed: Device or resource busy\\n", 1);
        let e = busy.apply_detected_timings(Path::new("/dev/video0")).unwrap_err();
        assert!(e.to_string().contains("Device or resource busy"), "{e}");
        let nolink = script(dir.path(), "VIDIOC_QUERY_DV_TIMINGS: failed: Link has been severed\\n", 0);
        assert!(nolink.apply_detected_timings(Path::new("/dev/video0")).is_err());
    }

    #[test]
    fn a_missing_or_hanging_program_is_an_error_not_a_hang() {
        let missing = V4l2CtlProbe { program: "/nonexistent/v4l2-ctl".into(), ..V4l2CtlProbe::default() };
        assert!(missing.query(Path::new("/dev/video0")).is_err());
        // A v4l2-ctl stuck in a driver's ioctl: killed at the timeout.
        let dir = tempfile::tempdir().unwrap();
        let stuck = dir.path().join("v4l2-ctl");
        std::fs::write(&stuck, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&stuck, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let hanging = V4l2CtlProbe { program: stuck, timeout: Duration::from_millis(300) };
        let t = Instant::now();
        let e = hanging.query(Path::new("/dev/video0")).unwrap_err();
        assert!(e.to_string().contains("did not answer"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
