//! Processes and /proc: the run directory, fd limits, CPU and memory
//! figures (no libc: /proc, `getconf` and `prlimit`). Child processes are
//! held in test-support's `ChildGuard`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// A directory removed on drop (the per-run state: configs, state dirs).
#[derive(Debug)]
pub struct DirGuard {
    pub path: PathBuf,
    pub keep: bool,
}

impl DirGuard {
    pub fn create(parent: &Path) -> Result<DirGuard> {
        let path = parent.join(format!("fleet-bench-{}-{:06x}", std::process::id(), fastrand::u32(..0xff_ffff)));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(DirGuard { path, keep: false })
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Clock ticks per second for /proc/*/stat times.
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// (soft, hard) "Max open files" of `pid` (`None` = unlimited).
pub fn nofile(pid: u32) -> Option<(Option<u64>, Option<u64>)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| -> Option<Option<u64>> {
        match v? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some((parse(f.next())?, parse(f.next())?))
}

/// Makes sure this process (and so its children: mosquitto, edgectl) may
/// open `need` files: raises the soft limit to the hard one with
/// `prlimit --pid` if needed. Returns (soft, hard) afterwards.
pub fn ensure_nofile(need: u64) -> Result<(Option<u64>, Option<u64>)> {
    let pid = std::process::id();
    let (soft, hard) = nofile(pid).context("cannot read /proc/self/limits")?;
    if soft.is_some_and(|s| s < need) {
        let target = hard.map_or("unlimited".to_owned(), |h| h.to_string());
        let st = Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--nofile={target}:{target}"))
            .status()
            .context("prlimit (util-linux)")?;
        if !st.success() {
            eprintln!("fleet-bench: prlimit failed ({st}); continuing with the current limit");
        }
    }
    let (soft, hard) = nofile(pid).context("cannot read /proc/self/limits")?;
    if soft.is_some_and(|s| s < need) {
        bail!(
            "open-file limit {} is below the {need} this run needs (one socket per device in this process and in mosquitto); \
             run `ulimit -n {need}` (or raise the hard limit) first, or lower --devices",
            soft.unwrap_or(0)
        );
    }
    Ok((soft, hard))
}

/// utime + stime in ticks from a `stat` file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of a whole process (all threads, live and exited).
pub fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU ticks of the live threads of `pid`, summed by thread name.
pub fn thread_ticks(pid: u32) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).map(|s| s.trim().to_owned()).unwrap_or_default();
        if let Some(t) = stat_ticks(&p.join("stat")) {
            *out.entry(name).or_insert(0) += t;
        }
    }
    out
}

/// (VmRSS, VmHWM) of `pid` in KiB.
pub fn mem_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let l = s.lines().find(|l| l.starts_with(name))?;
        l[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Machine-wide (busy, total) ticks from /proc/stat.
pub fn system_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let l = s.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU figures of the processes involved, at one moment.
#[derive(Debug, Clone)]
pub struct CpuSnap {
    pub at: Instant,
    pub bench: u64,
    pub bench_threads: HashMap<String, u64>,
    pub mosquitto: Option<u64>,
    pub edgectl: Option<u64>,
    pub system: Option<(u64, u64)>,
}

impl CpuSnap {
    pub fn take(mosquitto: Option<u32>, edgectl: Option<u32>) -> CpuSnap {
        let me = std::process::id();
        CpuSnap {
            at: Instant::now(),
            bench: proc_ticks(me).unwrap_or(0),
            bench_threads: thread_ticks(me),
            mosquitto: mosquitto.and_then(proc_ticks),
            edgectl: edgectl.and_then(proc_ticks),
            system: system_ticks(),
        }
    }
}
