//! Parsers for `/proc/stat`, `/proc/loadavg` and `/proc/meminfo`
//! (`Documentation/filesystems/proc.rst`). Pure functions over text.

use serde::Serialize;

/// The aggregate `cpu` line of `/proc/stat`, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal.
    pub busy: u64,
    /// busy + idle + iowait.
    pub total: u64,
    /// Number of `cpuN` lines.
    pub cpus: u32,
}

impl CpuTimes {
    /// Parses `cpu  user nice system idle iowait irq softirq steal guest
    /// guest_nice`. `guest` and `guest_nice` are already included in `user`
    /// and `nice`, so they are not added again. Kernels before 2.6.33 lack
    /// the trailing fields; missing ones count as zero.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let mut lines = stat.lines();
        let mut fields = lines.next()?.split_ascii_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let v: Vec<u64> = fields.take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        if v.len() < 4 {
            return None;
        }
        let idle = at(3) + at(4);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let cpus =
            stat.lines().filter(|l| l.strip_prefix("cpu").and_then(|r| r.chars().next()).is_some_and(|c| c.is_ascii_digit())).count();
        Some(CpuTimes { busy, total: busy + idle, cpus: u32::try_from(cpus).ok()? })
    }

    /// Busy fraction (0.0–1.0) between `earlier` and `self`. `None` if no
    /// time passed. Counters that went backwards (iowait may, per
    /// proc.rst) are treated as zero progress rather than underflowing.
    pub fn busy_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return None;
        }
        let busy = self.busy.saturating_sub(earlier.busy).min(total);
        #[allow(clippy::cast_precision_loss)] // tick counts between two samples are small
        Some(busy as f64 / total as f64)
    }
}

/// `/proc/loadavg`: run-queue averages and task counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Currently runnable tasks.
    pub running: u32,
    /// All tasks.
    pub tasks: u32,
}

impl LoadAvg {
    /// Parses `0.52 0.58 0.59 2/467 12345`.
    pub fn parse(text: &str) -> Option<LoadAvg> {
        let mut f = text.split_ascii_whitespace();
        let (one, five, fifteen) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        let (running, tasks) = f.next()?.split_once('/')?;
        Some(LoadAvg { one, five, fifteen, running: running.parse().ok()?, tasks: tasks.parse().ok()? })
    }
}

/// Memory from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub total_bytes: u64,
    /// `MemAvailable`: what can be allocated without swapping (counts
    /// reclaimable cache, unlike `MemFree`).
    pub available_bytes: u64,
}

impl Memory {
    /// Reads `MemTotal` and `MemAvailable` (kB, i.e. KiB). `MemAvailable`
    /// exists since Linux 3.14; without it there is no honest figure.
    pub fn parse(text: &str) -> Option<Memory> {
        let field = |key: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
            let kib: u64 = line.split_once(':')?.1.trim().trim_end_matches("kB").trim().parse().ok()?;
            kib.checked_mul(1024)
        };
        Some(Memory { total_bytes: field("MemTotal")?, available_bytes: field("MemAvailable")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_A: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
    const STAT_B: &str = "cpu  250 0 100 900 50 0 0 0 20 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn cpu_usage_is_the_delta_of_two_samples() {
        let a = CpuTimes::parse(STAT_A).unwrap();
        let b = CpuTimes::parse(STAT_B).unwrap();
        assert_eq!((a.busy, a.total, a.cpus), (150, 1000, 2));
        // 200 busy ticks of 300; guest (20) is inside user already.
        assert_eq!(b.busy_since(&a), Some(200.0 / 300.0));
        assert_eq!(a.busy_since(&a), None);
        assert_eq!(a.busy_since(&b), None, "backwards counters do not underflow");
    }

    #[test]
    fn old_kernels_and_garbage() {
        assert_eq!(CpuTimes::parse("cpu 1 2 3 4\n").map(|c| c.total), Some(10));
        assert_eq!(CpuTimes::parse("cpu 1 2\n"), None);
        assert_eq!(CpuTimes::parse("intr 5\n"), None);
        assert_eq!(CpuTimes::parse(""), None);
    }

    #[test]
    fn loadavg_and_meminfo() {
        let l = LoadAvg::parse("0.52 0.58 0.59 2/467 12345\n").unwrap();
        assert_eq!((l.one, l.fifteen, l.running, l.tasks), (0.52, 0.59, 2, 467));
        assert_eq!(LoadAvg::parse("0.5 x"), None);
        let m = Memory::parse("MemTotal:        4000000 kB\nMemFree:  10 kB\nMemAvailable:    1000000 kB\n").unwrap();
        assert_eq!(m, Memory { total_bytes: 4_096_000_000, available_bytes: 1_024_000_000 });
        assert_eq!(Memory::parse("MemTotal: 1 kB\n"), None);
    }
}
