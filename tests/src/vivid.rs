//! The kernel's `vivid` driver as the VM's HDMI receiver (`vm_capture`),
//! and a test-only control channel to it.
//!
//! vivid (Documentation/admin-guide/media/vivid.rst) is a virtual V4L2
//! capture device. Loaded with one HDMI input, it answers
//! `VIDIOC_QUERY_DV_TIMINGS` like a real receiver, and its "DV Timings
//! Signal Mode" control makes it report no signal (`ENOLINK`), no lock
//! (`ENOLCK`), out of range (`ERANGE`) or the preset chosen by its "DV
//! Timings" control (whose menu index is the index into the kernel's
//! `v4l2_dv_timings_presets`: 0 is 640x480p59.94, 4 is 720x576p50). Without
//! a signal it keeps delivering frames (noise), as some real receivers do.
//!
//! The control channel: a guest unit connects to a host TCP listener
//! through a guestfwd forward and runs only the fixed commands below, one
//! per line, answering with their output and `--end <exit code>--`.
//! Nothing else of the guest is reachable; the restricted user network
//! stays as it is.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the guest's control unit connects (a guestfwd address).
pub const CONTROL_GUEST: &str = "10.0.2.102:9100";

/// The agent's `[input]`: vivid by the stable id discovery gives a platform
/// device (`v4l2-<bus>-<parent device>`), not by `/dev/video0`.
pub const INPUT: &str = "[input]\nkind = \"v4l2\"\ndevice = \"v4l2-platform-vivid.0\"\n";

/// vivid's module parameters: one instance with only a video capture node
/// (`node_types` bit 0), single-planar, one input of type 3 (HDMI).
const VIVID_PARAMS: &str = "n_devs=1 node_types=0x1 multiplanar=1 num_inputs=1 input_types=0x3";

/// The menu index of the preset the box boots with (640x480p59.94: small
/// enough for vivid's pattern generator and the scaler under TCG).
pub const FIRST_TIMINGS: u32 = 0;

/// Adds the vivid units and the control script to the `--extra` tree
/// (image/build.sh enables the units an `--extra` tree brings).
pub fn add_to_overlay(extra: &Path) {
    let bin = extra.join("usr/local/bin");
    let units = extra.join("etc/systemd/system");
    for d in [&bin, &units] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    // Loaded before the agent starts, so its DeviceAllow= and first scan
    // see the node; the source starts on the first preset.
    let setup = format!(
        "[Unit]\nDescription=Test only: the vivid driver as an HDMI receiver\nBefore=edge-agent.service\n\
         After=systemd-udevd.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/usr/sbin/modprobe vivid {VIVID_PARAMS}\nExecStart=/usr/bin/udevadm settle --timeout=30\n\
         ExecStart=/usr/bin/v4l2-ctl -d /dev/video0 -c dv_timings_signal_mode=4,dv_timings={FIRST_TIMINGS}\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    std::fs::write(units.join("edge-test-vivid.service"), setup).unwrap_or_else(|e| panic!("write unit: {e}"));
    let (ip, port) = CONTROL_GUEST.split_once(':').unwrap_or(("10.0.2.102", "9100"));
    // bash's /dev/tcp: no extra package in the image. Each command is
    // matched whole; anything else is refused.
    let script = format!(
        r#"#!/bin/bash
# Test only (tests/src/vivid.rs): vivid's controls for the host test.
set -u
exec 3<>/dev/tcp/{ip}/{port} || exit 1
while IFS= read -r cmd <&3; do
  case "$cmd" in
    "mode "[0-3])
      out=$(v4l2-ctl -d /dev/video0 -c "dv_timings_signal_mode=${{cmd#mode }}" 2>&1); rc=$? ;;
    "timings "[0-9] | "timings "[0-9][0-9])
      out=$(v4l2-ctl -d /dev/video0 -c "dv_timings_signal_mode=4,dv_timings=${{cmd#timings }}" 2>&1); rc=$? ;;
    query)
      out=$(v4l2-ctl -d /dev/video0 --query-dv-timings 2>&1); rc=$? ;;
    probe)
      out=$(GST_REGISTRY=/usr/lib/edge-agent/gstreamer-registry.bin GST_REGISTRY_UPDATE=no \
            edge-agent probe --json 2>/dev/null); rc=$? ;;
    status)
      out=$(cat /run/edge-agent/status.json 2>&1); rc=$? ;;
    *)
      out="refused: $cmd"; rc=2 ;;
  esac
  printf '%s\n--end %d--\n' "$out" "$rc" >&3
done
"#
    );
    let path = bin.join("edge-test-vivid-ctl");
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("write control script: {e}"));
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod control script: {e}"));
    let ctl = "[Unit]\nDescription=Test only: vivid's controls for the host test\n\
               After=edge-test-vivid.service network-online.target\nWants=network-online.target\n\n\
               [Service]\nExecStart=/usr/local/bin/edge-test-vivid-ctl\nRestart=always\nRestartSec=1\n\n\
               [Install]\nWantedBy=multi-user.target\n";
    std::fs::write(units.join("edge-test-vivid-ctl.service"), ctl).unwrap_or_else(|e| panic!("write unit: {e}"));
}

/// The host end of the control channel.
#[derive(Debug)]
pub struct Control {
    listener: TcpListener,
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Control {
    /// Listens on a loopback port chosen by the kernel.
    pub fn listen() -> Control {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("nonblocking: {e}"));
        Control { listener, conn: None }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("addr: {e}"))
    }

    /// Waits up to `timeout` for the guest to connect. The guest's unit
    /// reconnects after a failure, so a lost connection is taken again.
    fn connect(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap_or_else(|e| panic!("blocking: {e}"));
                    let reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("clone: {e}")));
                    self.conn = Some((reader, stream));
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    // Non-blocking accept polled: std has no accept timeout.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("the guest's vivid control unit did not connect within {timeout:?}: {e}"),
            }
        }
    }

    /// Runs one command in the guest; returns its exit code and output.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> (i32, String) {
        if self.conn.is_none() {
            self.connect(timeout);
        }
        let Some((reader, stream)) = self.conn.as_mut() else { unreachable!("connected above") };
        stream.set_read_timeout(Some(timeout)).unwrap_or_else(|e| panic!("timeout: {e}"));
        if let Err(e) = writeln!(stream, "{cmd}") {
            self.conn = None;
            panic!("send {cmd:?}: {e}");
        }
        let mut out = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    self.conn = None;
                    panic!("no answer to {cmd:?} within {timeout:?}; got {out:?}");
                }
                Ok(_) => {}
            }
            if let Some(rc) = line.trim_end().strip_prefix("--end ").and_then(|r| r.strip_suffix("--")) {
                return (rc.parse().unwrap_or(-1), out);
            }
            out.push_str(&line);
        }
    }

    /// Runs a command that must succeed.
    pub fn ok(&mut self, cmd: &str) -> String {
        let (rc, out) = self.run(cmd, Duration::from_secs(60));
        assert_eq!(rc, 0, "{cmd} failed in the guest: {out}");
        out
    }

    /// The agent's status file (`--status-file`), parsed.
    pub fn status(&mut self) -> Option<serde_json::Value> {
        let (rc, out) = self.run("status", Duration::from_secs(30));
        if rc == 0 {
            serde_json::from_str(&out).ok()
        } else {
            None
        }
    }
}
