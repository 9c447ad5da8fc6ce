//! `fleet-bench`: N simulated boxes (the real [`FleetClient`] with a
//! [`FakeDevice`], no media) on one shared tokio runtime against a
//! mosquitto of its own on 127.0.0.1, with `edgectl watch` running.
//!
//! ```text
//! fleet-bench --devices 5000 --telemetry-interval 10 --ramp 500 --seconds 120 [--tls]
//! fleet-bench --devices 200 --seconds 10            # CI smoke test (~15 s)
//! ```
//! Prints connects/s during the ramp, telemetry delivered to a watcher vs
//! sent and vs N / interval, the delivery lag (receive time − envelope
//! `ts`) and per-device staleness, `edgectl watch`'s redraw cadence and how
//! far its presence view trails the devices, CPU (utime + stime from
//! /proc) and memory (VmRSS/VmHWM) of the simulator, mosquitto and
//! `edgectl watch`, and per-device figures. Exit 0 PASS, 3 FAIL, 1 error.
//!
//! `edgectl watch` folds only `status`, `state` and `alarms` (no
//! telemetry), so the telemetry lag is measured by an in-process watcher
//! subscribed as a controller to `fleet/v1/+/telemetry` (own thread and
//! runtime; its CPU is reported separately). The goal "never more than two
//! intervals behind" is checked as: max lag < 2 × interval, and no device
//! goes 2 × interval without a delivery.
//!
//! Plain TCP (default): anonymous, no ACL. `--tls`: mTLS with one P-256
//! certificate per device and the fleet ACL, as in the tests; the PKI is
//! cached (`--pki-dir`, default `$TMPDIR/fleet-bench-pki`).
//!
//! Needs ~N open files in this process and in mosquitto: the soft limit
//! is raised to the hard one with `prlimit --pid`; otherwise run
//! `ulimit -n <N + 512>` first. Everything is bounded: ramp + at most
//! `--connect-timeout` + `--seconds` + ≤25 s of shutdown; children are
//! killed by PID on exit (also on error or Ctrl-C).

mod broker;
mod procs;
mod watch;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use fleet::{FakeDevice, FleetClient, FleetHandle, FleetSettings, SharedDevice};

use crate::broker::{CONTROLLER, WATCHER};
use crate::procs::{mem_kib, CpuSnap, DirGuard};
use crate::watch::{lock, EdgectlWatch, Redraw, Watcher};

#[derive(Debug, Parser)]
#[command(
    name = "fleet-bench",
    about = "Simulated fleet (real FleetClient, FakeDevice) against a local mosquitto, with edgectl watch"
)]
struct Args {
    /// Simulated devices.
    #[arg(long, default_value_t = 5000)]
    devices: usize,
    /// Telemetry interval of every device, seconds (1–60).
    #[arg(long, default_value_t = 10)]
    telemetry_interval: u32,
    /// Devices started per second.
    #[arg(long, default_value_t = 500)]
    ramp: u32,
    /// Steady-state measurement after all devices are connected, seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Longest wait for all devices to connect after the ramp, seconds.
    #[arg(long, default_value_t = 60)]
    connect_timeout: u64,
    /// mTLS with one client certificate per device, and the fleet ACL.
    #[arg(long)]
    tls: bool,
    /// PKI cache directory for --tls (default: $TMPDIR/fleet-bench-pki).
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// Parallel openssl processes when issuing certificates (default: 2 × cores).
    #[arg(long)]
    pki_jobs: Option<usize>,
    /// Where the per-run directory (device state dirs, broker config and
    /// logs) is made (default: $TMPDIR). The devices fsync their `bdseq`.
    #[arg(long)]
    state_root: Option<PathBuf>,
    /// Keep the per-run directory.
    #[arg(long)]
    keep_state: bool,
    /// With --tls, let every simulated client load the system trust store
    /// as native-tls always does (OpenSSL 3 parses Debian's ~144 roots in
    /// ~0.1–0.2 s of CPU per client, then native-tls discards them because
    /// the client trusts only the fleet CA). Default: SSL_CERT_FILE and
    /// SSL_CERT_DIR point to an empty file and directory for this process
    /// (overriding any inherited values).
    #[arg(long)]
    system_trust_store: bool,
    /// mosquitto `max_queued_messages` (per-client queue of QoS 1 messages
    /// beyond the 20 in flight; mosquitto's default is 1000; 0 = no limit).
    #[arg(long)]
    broker_max_queued: Option<u64>,
    /// Worker threads of the shared simulator runtime.
    #[arg(long, default_value_t = 2)]
    worker_threads: usize,
    /// `edgectl watch --interval` (redraw period), seconds.
    #[arg(long, default_value_t = 2)]
    watch_interval: u64,
    /// The edgectl binary (default: next to this executable).
    #[arg(long)]
    edgectl: Option<PathBuf>,
    /// Do not run `edgectl watch`.
    #[arg(long)]
    no_edgectl: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FLEET_BENCH_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("fleet-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Sums over all devices at one moment.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    connected: usize,
    connects: u64,
    errors: u64,
    sent: u64,
    dropped_offline: u64,
    dropped_rate: u64,
    queue_full: u64,
    publish_dropped_offline: u64,
}

/// The running devices and what sampling their counters showed.
#[derive(Debug, Default)]
struct Sim {
    handles: Vec<FleetHandle>,
    /// When sampling first saw each device connected.
    first_connect: Vec<Option<Instant>>,
    /// (time, connected devices).
    timeline: Vec<(Instant, usize)>,
}

impl Sim {
    fn push(&mut self, h: FleetHandle) {
        self.handles.push(h);
        self.first_connect.push(None);
    }

    fn sample(&mut self) -> Totals {
        let now = Instant::now();
        let mut t = Totals::default();
        for (h, first) in self.handles.iter().zip(self.first_connect.iter_mut()) {
            let s = h.stats();
            if s.connected {
                t.connected += 1;
            }
            if s.connects > 0 && first.is_none() {
                *first = Some(now);
            }
            t.connects += s.connects;
            t.errors += s.connection_errors;
            t.sent += s.session.telemetry_sent;
            t.dropped_offline += s.session.telemetry_dropped_offline;
            t.dropped_rate += s.session.telemetry_dropped_rate;
            t.queue_full += s.publishes_dropped_queue_full;
            t.publish_dropped_offline += s.publishes_dropped_offline;
        }
        self.timeline.push((now, t.connected));
        t
    }
}

const RAMP_SAMPLE: Duration = Duration::from_millis(100);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Nearest-rank percentile (in per mille) of sorted values.
fn pct(sorted: &[u32], permille: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (permille.min(1000) * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn lag_line(lags: &mut [u32]) -> String {
    lags.sort_unstable();
    format!(
        "{} msgs: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms",
        lags.len(),
        pct(lags, 500),
        pct(lags, 990),
        pct(lags, 999),
        lags.last().copied().unwrap_or(0)
    )
}

/// How far `edgectl watch`'s presence view trails the devices: for each
/// redraw showing `online` devices, the time since the simulator last had
/// at most that many connected (sampling granularity 0.1–1 s).
fn presence_lag(redraws: &[Redraw], timeline: &[(Instant, usize)]) -> Duration {
    let mut max = Duration::ZERO;
    for r in redraws {
        let t = timeline.iter().filter(|(t, c)| *t <= r.at && *c <= r.online).map(|(t, _)| *t).max();
        if let Some(t) = t {
            max = max.max(r.at.duration_since(t));
        }
    }
    max
}

/// Clean shutdown of every client (offline status, DISCONNECT) from a few
/// threads, bounded by `limit`. Returns how many stopped.
fn shutdown_all(handles: Vec<FleetHandle>, limit: Duration) -> usize {
    let stopped = Arc::new(AtomicUsize::new(0));
    let threads = 32usize;
    let chunk = handles.len().div_ceil(threads).max(1);
    let mut it = handles.into_iter();
    let mut joins = Vec::new();
    loop {
        let part: Vec<FleetHandle> = it.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        let stopped = stopped.clone();
        let j = std::thread::Builder::new().name("shutdown".into()).spawn(move || {
            for h in part {
                if h.shutdown(Duration::from_secs(3)) {
                    stopped.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        if let Ok(j) = j {
            joins.push(j);
        }
    }
    let deadline = Instant::now() + limit;
    while joins.iter().any(|j| !j.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stopped.load(Ordering::Relaxed)
}

fn cpu_row(label: &str, ticks: [Option<u64>; 2], walls: [f64; 2], clk: u64, extra: &str) -> String {
    let cell = |t: Option<u64>, w: f64| match t {
        Some(t) => {
            let s = t as f64 / clk as f64;
            format!("{s:>7.2} s {:>6.1}%", if w > 0.0 { 100.0 * s / w } else { 0.0 })
        }
        None => format!("{:>17}", "-"),
    };
    format!("  {label:<28} {}   {}   {extra}\n", cell(ticks[0], walls[0]), cell(ticks[1], walls[1]))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[allow(clippy::too_many_lines)]
fn run(a: &Args) -> Result<bool> {
    if a.devices == 0 || a.devices > 99_999 {
        bail!("--devices must be 1..=99999");
    }
    if !(1..=60).contains(&a.telemetry_interval) {
        bail!("--telemetry-interval must be 1..=60");
    }
    if a.ramp == 0 || a.seconds == 0 || a.seconds > 3600 || a.worker_threads == 0 || a.watch_interval == 0 {
        bail!("--ramp, --seconds (≤3600), --worker-threads and --watch-interval must be positive");
    }
    let n = a.devices;
    let interval = Duration::from_secs(u64::from(a.telemetry_interval));
    let limit = interval * 2;
    let me = std::process::id();
    let clk = procs::clk_tck();
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let (soft, hard) = procs::ensure_nofile(n as u64 + 512)?;
    let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
    let interrupted = Arc::new(AtomicBool::new(false));
    let state_root = a.state_root.clone().unwrap_or_else(std::env::temp_dir);
    let mut run_dir = DirGuard::create(&state_root)?;
    run_dir.keep = a.keep_state;
    let ids: Vec<String> = (0..n).map(|i| format!("sim-{i:05}")).collect();
    let mut trust_note = "";
    if a.tls && !a.system_trust_store {
        let empty = run_dir.path.join("empty-trust");
        std::fs::create_dir_all(&empty)?;
        std::fs::write(empty.join("none.pem"), b"")?;
        // Still single-threaded here: no thread reads the environment.
        std::env::set_var("SSL_CERT_FILE", empty.join("none.pem"));
        std::env::set_var("SSL_CERT_DIR", &empty);
        trust_note = "tls: system trust store not loaded by the simulated clients (SSL_CERT_FILE/SSL_CERT_DIR empty; \
                      native-tls would load and discard it, ~0.1-0.2 s CPU per client; --system-trust-store to keep it)\n";
    } else if a.tls {
        trust_note = "tls: every simulated client loads the system trust store (native-tls default; --system-trust-store)\n";
    }
    let mut out = String::new();
    out.push_str(&format!(
        "fleet-bench: {n} devices, telemetry every {} s, ramp {}/s, steady {} s, transport {}, {} simulator worker thread(s)\n",
        a.telemetry_interval,
        a.ramp,
        a.seconds,
        if a.tls { "mTLS (one P-256 cert per device) + ACL" } else { "plain TCP (anonymous, no ACL)" },
        a.worker_threads
    ));
    out.push_str(&format!(
        "machine: {cores} cores, CLK_TCK {clk}, open files soft/hard {}/{}, state in {}\n",
        show(soft),
        show(hard),
        run_dir.path.display()
    ));

    out.push_str(trust_note);

    // --- PKI, broker, observers.
    let pki = if a.tls {
        let dir = a.pki_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("fleet-bench-pki"));
        let t = Instant::now();
        let pki = test_support::pki::Pki::open(&dir)?;
        let mut names = ids.clone();
        names.extend([CONTROLLER.to_owned(), WATCHER.to_owned()]);
        eprintln!("fleet-bench: checking {} client certificates in {}", names.len(), dir.display());
        let made = pki.ensure_clients(&names, a.pki_jobs.unwrap_or(2 * cores))?;
        out.push_str(&format!(
            "pki: {} — {made} certificates issued now, {} reused, {:.1} s\n",
            dir.display(),
            names.len() - made,
            secs(t.elapsed())
        ));
        Some(pki)
    } else {
        None
    };
    let tls_of = |name: &str| pki.as_ref().map(|p| broker::tls(p, name)).transpose();
    let mut broker = broker::start(&run_dir.path, pki.as_ref(), a.broker_max_queued)?;
    let addr = broker.addr();
    let mosq_pid = broker.pid();
    let queue_conf = broker::queue_conf(a.broker_max_queued);
    out.push_str(&format!(
        "broker: {} pid {} on {addr} (max_connections -1, persistence off, {})\n",
        test_support::broker::version(),
        mosq_pid.unwrap_or(0),
        if queue_conf.is_empty() { "max_queued_messages default 1000" } else { &queue_conf }
    ));
    let watcher_id = if a.tls { WATCHER.to_owned() } else { format!("{WATCHER}-{me}") };
    let mut watcher = Watcher::start(&addr, tls_of(WATCHER)?.as_ref(), &watcher_id, limit, interrupted.clone())?;
    let mut ectl = if a.no_edgectl {
        None
    } else {
        let exe = match &a.edgectl {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("edgectl"),
        };
        if !exe.exists() {
            bail!(
                "{} not found: build it (cargo build --release -p fleet --bin edgectl), or pass --edgectl PATH or --no-edgectl",
                exe.display()
            );
        }
        let mut bargs = vec!["--broker".to_owned(), addr.clone()];
        match tls_of(CONTROLLER)? {
            Some(t) => {
                for (k, v) in [("--ca", &t.ca), ("--cert", &t.cert), ("--key", &t.key)] {
                    bargs.extend([k.to_owned(), v.display().to_string()]);
                }
            }
            None => bargs.push("--insecure-plaintext".into()),
        }
        let w = EdgectlWatch::start(&exe, &bargs, a.watch_interval, &run_dir.path.join("edgectl.log"))?;
        out.push_str(&format!(
            "edgectl watch: pid {} (`{} {} watch --interval {}`)\n",
            w.guard.pid(),
            exe.display(),
            bargs.join(" "),
            a.watch_interval
        ));
        Some(w)
    };
    let ectl_pid = ectl.as_ref().map(|e| e.guard.pid());

    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(a.worker_threads).thread_name("sim-worker").enable_all().build()?;

    // --- Ramp.
    let rss0 = mem_kib(me).map_or(0, |m| m.0);
    let mosq_rss0 = mosq_pid.and_then(mem_kib).map_or(0, |m| m.0);
    let load0 = procs::loadavg();
    let snap0 = CpuSnap::take(mosq_pid, ectl_pid);
    let mut sim = Sim::default();
    let t0 = snap0.at;
    let mut next_sample = t0;
    let mut next_progress = t0 + Duration::from_secs(2);
    let mut spawn_cost = Duration::ZERO;
    eprintln!("fleet-bench: starting {n} devices at {}/s", a.ramp);
    for (i, id) in ids.iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / f64::from(a.ramp));
        loop {
            let now = Instant::now();
            if now >= next_sample {
                let t = sim.sample();
                next_sample = now + RAMP_SAMPLE;
                if now >= next_progress {
                    eprintln!("fleet-bench: +{:.0} s: {}/{n} started, {} connected", secs(now - t0), sim.handles.len(), t.connected);
                    next_progress = now + Duration::from_secs(2);
                }
            }
            if now >= due {
                break;
            }
            std::thread::sleep(due.min(next_sample).saturating_duration_since(now));
        }
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let mut s = FleetSettings::new(&addr, id, run_dir.path.join("dev").join(id), tls_of(id)?);
        s.telemetry_interval_s = a.telemetry_interval;
        let device: SharedDevice = Arc::new(Mutex::new(FakeDevice::new(id)));
        let ts = Instant::now();
        let h = FleetClient::spawn_on(rt.handle(), s, device).with_context(|| format!("device {id}"))?;
        spawn_cost += ts.elapsed();
        sim.push(h);
    }
    let t_spawned = Instant::now();
    let deadline = t_spawned + Duration::from_secs(a.connect_timeout);
    let mut tot1 = sim.sample();
    while tot1.connected < n && Instant::now() < deadline && !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(RAMP_SAMPLE);
        tot1 = sim.sample();
        if Instant::now() >= next_progress {
            eprintln!("fleet-bench: +{:.0} s: {} connected", secs(t0.elapsed()), tot1.connected);
            next_progress = Instant::now() + Duration::from_secs(2);
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    let all_connected = tot1.connected == n;
    let t_all = sim.first_connect.iter().copied().collect::<Option<Vec<Instant>>>().and_then(|v| v.into_iter().max());

    // --- Steady state.
    let snap1 = CpuSnap::take(mosq_pid, ectl_pid);
    let broker_dropped1 = lock(&watcher.data).broker_dropped;
    let rss1 = mem_kib(me).map_or(0, |m| m.0);
    let t_s = snap1.at;
    let end = t_s + Duration::from_secs(a.seconds);
    let mut min_connected = tot1.connected;
    let mut tot2 = tot1;
    let mut early_stop: Option<String> = None;
    eprintln!("fleet-bench: {} of {n} connected; measuring {} s of steady state", tot1.connected, a.seconds);
    let mut next_progress = t_s + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_secs(1)));
        tot2 = sim.sample();
        min_connected = min_connected.min(tot2.connected);
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if let Some(st) = broker.exited() {
            early_stop = Some(format!("mosquitto exited ({st}): {}", broker.log_tail(20)));
            break;
        }
        if let Some(e) = lock(&watcher.data).error.clone() {
            early_stop = Some(format!("telemetry watcher disconnected: {e}"));
            break;
        }
        if Instant::now() >= next_progress {
            let got = lock(&watcher.data).recs.len();
            eprintln!(
                "fleet-bench: steady +{:.0} s: {} connected, {got} telemetry messages delivered so far",
                secs(t_s.elapsed()),
                tot2.connected
            );
            next_progress += Duration::from_secs(10);
        }
    }
    let snap2 = CpuSnap::take(mosq_pid, ectl_pid);
    let broker_dropped2 = lock(&watcher.data).broker_dropped;
    let t_e = snap2.at;
    let load2 = procs::loadavg();
    let (rss2, hwm2) = mem_kib(me).unwrap_or((0, 0));
    let mosq_mem = mosq_pid.and_then(mem_kib);
    let ectl_mem = ectl_pid.and_then(mem_kib);
    let ectl_exit = ectl.as_mut().and_then(|e| e.guard.exited());
    let (redraws, ectl_last) = match &ectl {
        Some(e) => (lock(&e.redraws).clone(), lock(&e.last_summary).clone()),
        None => (Vec::new(), String::new()),
    };
    if let Some(e) = ectl.as_mut() {
        e.guard.kill();
    }

    // Watcher figures.
    let (mut lags_all, mut lags_steady, delivered_steady, max_gap, max_gap_dev, gaps_over, bad, stale_end, never, qos0_online) = {
        let d = lock(&watcher.data);
        let qos0_online = ids.iter().filter(|id| d.presence.get(*id).is_some_and(|p| p.1)).count();
        let all: Vec<u32> = d.recs.iter().map(|r| r.1).collect();
        let steady: Vec<u32> = d.recs.iter().filter(|r| r.0 >= t_s && r.0 < t_e).map(|r| r.1).collect();
        let delivered = steady.len();
        let mut stale = 0usize;
        let mut never = 0usize;
        let mut worst_end = Duration::ZERO;
        for id in &ids {
            match d.last.get(id) {
                Some(l) => {
                    let age = t_e.saturating_duration_since(*l);
                    worst_end = worst_end.max(age);
                    if age > limit {
                        stale += 1;
                    }
                }
                None => never += 1,
            }
        }
        (all, steady, delivered, d.max_gap.max(worst_end), d.max_gap_device.clone(), d.gaps_over, d.bad, stale, never, qos0_online)
    };

    // --- Clean shutdown, then stop everything.
    eprintln!("fleet-bench: shutting the devices down");
    let t_sd = Instant::now();
    let stopped = shutdown_all(std::mem::take(&mut sim.handles), Duration::from_secs(20));
    let sd = t_sd.elapsed();
    rt.shutdown_timeout(Duration::from_secs(2));
    watcher.stop();
    broker.stop();
    let drop_notices = broker::drop_notices(&broker);

    // --- Report.
    let w_ramp = secs(t_s - t0);
    let w = secs(t_e - t_s);
    out.push_str(&format!("load average: {load0} at start, {load2} at end (other work on the machine shares these cores)\n"));
    out.push_str("\nRAMP\n");
    out.push_str(&format!(
        "  started {n} clients in {:.2} s (target {:.2} s at {}/s); spawn_on cost in the main thread {:.3} ms/device\n",
        secs(t_spawned - t0),
        n as f64 / f64::from(a.ramp),
        a.ramp,
        secs(spawn_cost) * 1000.0 / n as f64
    ));
    match t_all {
        Some(t) if all_connected => {
            let d = secs(t - t0).max(1e-3);
            let mut per_s: Vec<usize> = vec![0; usize::try_from((t - t0).as_secs()).unwrap_or(0) + 1];
            for f in sim.first_connect.iter().flatten() {
                let b = usize::try_from(f.duration_since(t0).as_secs()).unwrap_or(usize::MAX);
                if let Some(x) = per_s.get_mut(b) {
                    *x += 1;
                }
            }
            out.push_str(&format!(
                "  all {n} connected {:.2} s after the first start: {:.0} connects/s on average, peak {} in one second\n",
                d,
                n as f64 / d,
                per_s.iter().max().copied().unwrap_or(0)
            ));
        }
        _ => out.push_str(&format!("  only {} of {n} connected within {} s after the ramp\n", tot1.connected, a.connect_timeout)),
    }
    out.push_str(&format!(
        "  connection errors {}, reconnects {} (connects − devices)\n",
        tot1.errors,
        tot1.connects.saturating_sub(n as u64)
    ));
    if !redraws.is_empty() {
        let seen_all = redraws.iter().find(|r| r.online >= n).map(|r| r.at);
        let lag = presence_lag(&redraws, &sim.timeline);
        match (seen_all, t_all) {
            (Some(s), Some(t)) => out.push_str(&format!(
                "  edgectl watch first showed all {n} online {:.1} s after the first start ({:+.1} s vs the simulator); \
                 its presence view trailed the devices by at most {:.1} s\n",
                secs(s.saturating_duration_since(t0)),
                secs(s.saturating_duration_since(t)) - secs(t.saturating_duration_since(s)),
                secs(lag)
            )),
            _ => out.push_str(&format!(
                "  edgectl watch never showed all {n} online (last: \"{ectl_last}\"); its presence view trailed the devices by {:.1} s at the end\n",
                secs(lag)
            )),
        }
    }

    out.push_str(&format!("\nSTEADY STATE ({w:.1} s, {} of {n} connected at its start, minimum {min_connected})\n", tot1.connected));
    let sent = (tot2.sent.saturating_sub(tot1.sent)) as f64 / w;
    let delivered = delivered_steady as f64 / w;
    let nominal = n as f64 / f64::from(a.telemetry_interval);
    out.push_str(&format!(
        "  telemetry sent by the devices     {sent:>9.1} msg/s  (nominal N / interval = {nominal:.1}/s; {:.1}%)\n",
        100.0 * sent / nominal
    ));
    out.push_str(&format!(
        "  telemetry delivered to watcher    {delivered:>9.1} msg/s  ({:.2}% of sent, {:.1}% of nominal)\n",
        if sent > 0.0 { 100.0 * delivered / sent } else { 0.0 },
        100.0 * delivered / nominal
    ));
    out.push_str(&format!(
        "  drops in steady state: telemetry offline {}, rate-limited {}, client queue full {}; reconnects {}, connection errors {}; bad messages {bad}\n",
        tot2.dropped_offline.saturating_sub(tot1.dropped_offline),
        tot2.dropped_rate.saturating_sub(tot1.dropped_rate),
        tot2.queue_full.saturating_sub(tot1.queue_full),
        tot2.connects.saturating_sub(tot1.connects),
        tot2.errors.saturating_sub(tot1.errors)
    ));
    out.push_str(&format!("  delivery lag (receive − envelope ts), steady: {}\n", lag_line(&mut lags_steady)));
    out.push_str(&format!("  delivery lag, whole run incl. ramp:          {}\n", lag_line(&mut lags_all)));
    let max_lag = lags_all.last().copied().unwrap_or(u32::MAX);
    out.push_str(&format!(
        "  staleness: longest time a device went without a delivered telemetry {:.1} s ({max_gap_dev}); gaps > {} s: {gaps_over}; \
         stale at end: {stale_end}; never delivered: {never}\n",
        secs(max_gap),
        limit.as_secs()
    ));
    let fmt_drop = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    out.push_str(&format!(
        "  broker: publishes dropped for full subscriber queues ($SYS/broker/publish/messages/dropped): {} after the ramp, {} at the end{}\n",
        fmt_drop(broker_dropped1),
        fmt_drop(broker_dropped2),
        if drop_notices.is_empty() {
            String::new()
        } else {
            format!(
                "; \"Outgoing messages are being dropped\" for: {}",
                drop_notices.iter().map(|(c, k)| format!("{c} ({k}×)")).collect::<Vec<_>>().join(", ")
            )
        }
    ));
    out.push_str(&format!("  presence through the bench's own QoS 0 `status` subscription at the end: {qos0_online}/{n} online\n"));
    let mut ectl_ok = a.no_edgectl;
    if ectl.is_some() {
        let in_run: Vec<&Redraw> = redraws.iter().filter(|r| r.at >= t0).collect();
        let max_redraw_gap = redraws.windows(2).map(|p| p[1].at.duration_since(p[0].at)).max().unwrap_or_default();
        let steady_redraws = redraws.iter().filter(|r| r.at >= t_s && r.at < t_e).count();
        let final_ok = redraws.last().is_some_and(|r| r.online == n && r.total == n);
        out.push_str(&format!(
            "  edgectl watch: {} redraws during the run ({steady_redraws} in steady state, every {} s asked), longest gap {:.2} s, {}; last: \"{ectl_last}\"\n",
            in_run.len(),
            a.watch_interval,
            secs(max_redraw_gap),
            match &ectl_exit {
                Some(st) => format!("EXITED EARLY ({st})"),
                None => "still running at the end".to_owned(),
            }
        ));
        ectl_ok = ectl_exit.is_none() && final_ok && max_redraw_gap < limit;
    }

    out.push_str(&format!(
        "\nCPU (utime+stime)               ramp {w_ramp:>6.1} s wall       steady {w:>6.1} s wall   memory (steady end)\n"
    ));
    let d = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x)),
        _ => None,
    };
    let th = |s: &CpuSnap, name: &str| s.bench_threads.get(name).copied().unwrap_or(0);
    let walls = [w_ramp, w];
    let bench = [Some(snap1.bench.saturating_sub(snap0.bench)), Some(snap2.bench.saturating_sub(snap1.bench))];
    let workers = [
        Some(th(&snap1, "sim-worker").saturating_sub(th(&snap0, "sim-worker"))),
        Some(th(&snap2, "sim-worker").saturating_sub(th(&snap1, "sim-worker"))),
    ];
    let wat = [
        Some(th(&snap1, "watcher").saturating_sub(th(&snap0, "watcher"))),
        Some(th(&snap2, "watcher").saturating_sub(th(&snap1, "watcher"))),
    ];
    let rest = [0, 1].map(|i| Some(bench[i].unwrap_or(0).saturating_sub(workers[i].unwrap_or(0) + wat[i].unwrap_or(0))));
    out.push_str(&cpu_row(
        "simulator process (total)",
        bench,
        walls,
        clk,
        &format!("RSS {:.1} MiB, peak {:.1} MiB", mib(rss2), mib(hwm2)),
    ));
    out.push_str(&cpu_row("  sim-worker threads", workers, walls, clk, ""));
    out.push_str(&cpu_row("  telemetry watcher thread", wat, walls, clk, ""));
    out.push_str(&cpu_row("  main + other threads", rest, walls, clk, ""));
    out.push_str(&cpu_row(
        "mosquitto",
        [d(snap0.mosquitto, snap1.mosquitto), d(snap1.mosquitto, snap2.mosquitto)],
        walls,
        clk,
        &mosq_mem.map_or("-".into(), |(r, h)| format!("RSS {:.1} MiB, peak {:.1} MiB", mib(r), mib(h))),
    ));
    if ectl.is_some() {
        out.push_str(&cpu_row(
            "edgectl watch",
            [d(snap0.edgectl, snap1.edgectl), d(snap1.edgectl, snap2.edgectl)],
            walls,
            clk,
            &ectl_mem.map_or("-".into(), |(r, h)| format!("RSS {:.1} MiB, peak {:.1} MiB", mib(r), mib(h))),
        ));
    }
    let machine = |x: Option<(u64, u64)>, y: Option<(u64, u64)>| match (x, y) {
        (Some(x), Some(y)) if y.1 > x.1 => format!("{:.0}%", 100.0 * cores as f64 * (y.0 - x.0) as f64 / (y.1 - x.1) as f64),
        _ => "-".into(),
    };
    out.push_str(&format!(
        "  machine, all processes        {:>17}   {:>17}   (% of one core; {cores} cores = {}%)\n",
        machine(snap0.system, snap1.system),
        machine(snap1.system, snap2.system),
        100 * cores
    ));
    let sim_steady_s = (bench[1].unwrap_or(0).saturating_sub(wat[1].unwrap_or(0))) as f64 / clk as f64;
    let mosq_steady_s = d(snap1.mosquitto, snap2.mosquitto).unwrap_or(0) as f64 / clk as f64;
    out.push_str(&format!(
        "\nPER DEVICE (steady state)\n  simulator: {:.1} µs CPU per second ({:.4}% of a core; {:.1}% of a core per 1,000 devices), \
         memory {:.1} KiB (RSS growth {:.1} MiB / {n})\n",
        1e6 * sim_steady_s / w / n as f64,
        100.0 * sim_steady_s / w / n as f64,
        100_000.0 * sim_steady_s / w / n as f64,
        rss2.saturating_sub(rss0) as f64 / n as f64,
        mib(rss2.saturating_sub(rss0)),
    ));
    out.push_str(&format!(
        "  mosquitto: {:.1} µs CPU per second, memory {:.1} KiB (RSS growth / {n}); simulator RSS after the ramp {:.1} MiB\n",
        1e6 * mosq_steady_s / w / n as f64,
        mosq_mem.map_or(0, |m| m.0).saturating_sub(mosq_rss0) as f64 / n as f64,
        mib(rss1)
    ));
    out.push_str(&format!("\nSHUTDOWN: {stopped}/{n} clients stopped cleanly (offline status + DISCONNECT) in {:.1} s\n", secs(sd)));

    let checks = [
        (all_connected, format!("all {n} devices connected (within {} s after the ramp)", a.connect_timeout)),
        (
            early_stop.is_none() && min_connected == n,
            format!(
                "all stayed connected for the {w:.0} s steady state{}",
                early_stop.as_ref().map_or(String::new(), |e| format!(" — {e}"))
            ),
        ),
        (
            (max_lag as u128) < limit.as_millis() && !lags_all.is_empty(),
            format!("max telemetry delivery lag {:.3} s < 2 × interval = {} s", f64::from(max_lag) / 1000.0, limit.as_secs()),
        ),
        (
            max_gap < limit && never == 0 && stale_end == 0,
            format!("every device's telemetry reached the watcher at least every 2 × interval (longest gap {:.1} s)", secs(max_gap)),
        ),
        (
            ectl_ok,
            if a.no_edgectl {
                "edgectl watch not run (--no-edgectl)".to_owned()
            } else {
                format!("edgectl watch stayed up, redrew at least every 2 × interval, and ended showing {n}/{n} online")
            },
        ),
    ];
    out.push_str("\nGOAL: N devices, edgectl watch never more than two telemetry intervals behind\n");
    for (ok, what) in &checks {
        out.push_str(&format!("  [{}] {what}\n", if *ok { "PASS" } else { "FAIL" }));
    }
    let pass = checks.iter().all(|c| c.0);
    out.push_str(if pass { "RESULT: PASS\n" } else { "RESULT: FAIL\n" });
    print!("{out}");
    Ok(pass)
}
