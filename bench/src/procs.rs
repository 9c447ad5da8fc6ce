//! `/proc` readings, loopback port blocks, line readers and a scratch
//! directory.
//!
//! Every child is held in test-support's `ChildGuard`, which kills it by
//! PID (SIGKILL) and reaps it when dropped, so an error or a panic anywhere
//! in a bench leaves nothing running.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
pub fn clk_tck() -> Result<u64> {
    let out = Command::new("getconf").arg("CLK_TCK").output().context("cannot run getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tck: u64 = text.trim().parse().with_context(|| format!("getconf CLK_TCK printed {text:?}"))?;
    if tck == 0 {
        bail!("getconf CLK_TCK printed 0");
    }
    Ok(tck)
}

/// Scheduler state and CPU time (utime + stime, in clock ticks) of a process
/// or thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ticks: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Parses a `stat` file of procfs (proc(5)): fields after the `(comm)`.
/// A zombie still shows its final CPU times, so a process can be read once
/// more after it exited, before it is reaped.
pub fn read_stat(path: &Path) -> Result<Stat> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rest = text.rfind(')').map(|i| &text[i + 1..]).ok_or_else(|| anyhow!("{}: no ')'", path.display()))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 of proc(5), utime 14, stime 15; `f` starts at 3.
    let field = |i: usize| f.get(i).copied().ok_or_else(|| anyhow!("{}: too few fields", path.display()));
    let state = field(0)?.chars().next().unwrap_or('?');
    let utime: u64 = field(11)?.parse()?;
    let stime: u64 = field(12)?.parse()?;
    Ok(Stat { state, ticks: utime + stime })
}

/// The whole process (all threads).
pub fn proc_stat(pid: u32) -> Result<Stat> {
    read_stat(Path::new(&format!("/proc/{pid}/stat")))
}

/// One thread of a process.
pub fn thread_stat(pid: u32, tid: u32) -> Result<Stat> {
    read_stat(Path::new(&format!("/proc/{pid}/task/{tid}/stat")))
}

/// The calling thread.
pub fn own_thread_ticks() -> Result<u64> {
    Ok(read_stat(Path::new("/proc/thread-self/stat"))?.ticks)
}

/// One thread's CPU and context switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    pub tid: u32,
    pub name: String,
    pub ticks: u64,
    /// Voluntary + involuntary context switches (`/proc/.../status`).
    pub switches: u64,
}

/// Every thread of a live process.
pub fn threads(pid: u32) -> Result<Vec<ThreadSample>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        // A thread may end between the listing and the reads.
        let Ok(stat) = thread_stat(pid, tid) else { continue };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_owned();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        out.push(ThreadSample { tid, name, ticks: stat.ticks, switches });
    }
    Ok(out)
}

/// Each thread's last sample across `samples` (oldest first), so a thread
/// that ended between samples keeps the CPU it had used by then.
pub fn last_of_each_thread<'a>(samples: impl IntoIterator<Item = &'a [ThreadSample]>) -> Vec<ThreadSample> {
    let mut last: Vec<ThreadSample> = Vec::new();
    for t in samples.into_iter().flatten() {
        match last.iter_mut().find(|l| l.tid == t.tid) {
            Some(l) => *l = t.clone(),
            None => last.push(t.clone()),
        }
    }
    last
}

/// Per thread name between two [`threads`] readings of the same processes,
/// most CPU first: (name, CPU seconds, context switches). Threads missing
/// from `after` are missing (see [`last_of_each_thread`]).
pub fn thread_delta(before: &[ThreadSample], after: &[ThreadSample], tck: f64) -> Vec<(String, f64, u64)> {
    let mut by_name: Vec<(String, f64, u64)> = Vec::new();
    for a in after {
        let (t0, s0) = before.iter().find(|b| b.tid == a.tid).map_or((0, 0), |b| (b.ticks, b.switches));
        let secs = a.ticks.saturating_sub(t0) as f64 / tck;
        let sw = a.switches.saturating_sub(s0);
        match by_name.iter_mut().find(|(n, _, _)| *n == a.name) {
            Some(e) => {
                e.1 += secs;
                e.2 += sw;
            }
            None => by_name.push((a.name.clone(), secs, sw)),
        }
    }
    by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_name
}

/// Peak resident set size (`VmHWM`, kB) of a live process.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The load averages of `/proc/loadavg` ("1.02 0.87 0.70"), for the record:
/// other work on the machine perturbs every figure.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Binds `n` consecutive UDP ports on 127.0.0.1 (base from port 0) and
/// returns the base and the sockets, in port order.
pub fn bind_port_block(n: u16) -> Result<(u16, Vec<UdpSocket>)> {
    for _ in 0..100 {
        let first = UdpSocket::bind("127.0.0.1:0")?;
        let base = first.local_addr()?.port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let mut socks = vec![first];
        for off in 1..n {
            match UdpSocket::bind(("127.0.0.1", base + off)) {
                Ok(s) => socks.push(s),
                Err(_) => break,
            }
        }
        if socks.len() == usize::from(n) {
            return Ok((base, socks));
        }
    }
    bail!("cannot bind {n} consecutive UDP ports on 127.0.0.1")
}

/// Whether some UDP socket is bound to `port` (IPv4, from `/proc/net/udp`):
/// tells that a listener child is up.
pub fn udp_port_bound(port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else { return false };
    let want = format!(":{port:04X}");
    text.lines().skip(1).any(|l| l.split_whitespace().nth(1).is_some_and(|local| local.ends_with(&want)))
}

/// Reads `r` to its end on a thread, counting the bytes.
pub fn count_bytes(mut r: impl Read + Send + 'static) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = r.read(&mut buf) {
            if k == 0 {
                break;
            }
            counter.fetch_add(k as u64, Ordering::Relaxed);
        }
    });
    n
}

/// Reads `r` line by line on a thread; the lines arrive on the channel.
pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line for which `pick` returns `Some`, up to `timeout`.
pub fn wait_line<T>(rx: &Receiver<String>, timeout: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(v) = pick(&line) {
                    return Some(v);
                }
            }
            Err(_) => return None,
        }
    }
}

/// A scratch directory under the system temp dir, removed on drop unless
/// kept.
#[derive(Debug)]
pub struct ScratchDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl ScratchDir {
    pub fn new(tag: &str) -> Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("edge-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir { path, keep: false })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses() {
        let s = proc_stat(std::process::id()).unwrap();
        assert!(matches!(s.state, 'R' | 'S'));
        assert!(vm_hwm_kb(std::process::id()).unwrap() > 0);
        own_thread_ticks().unwrap();
    }

    #[test]
    fn a_bound_port_is_seen() {
        let (base, socks) = bind_port_block(3).unwrap();
        assert_eq!(socks.len(), 3);
        assert!(udp_port_bound(base) && udp_port_bound(base + 2));
    }
}
