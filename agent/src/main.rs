//! `edge-agent`: command line, logging, signals and exit codes.
//!
//! Exit codes are part of the interface: systemd's
//! `RestartPreventExitStatus=78` stops a restart loop on a bad configuration,
//! and scripts can tell "fix the file" from "something broke".

use std::path::PathBuf;
use std::process::ExitCode;

use agent::config::{self, ConfigError};
use agent::shutdown::Shutdown;
use clap::{Parser, Subcommand};

mod receive;

/// Configuration unreadable or invalid (sysexits.h `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;
/// Runtime failure (no encoder, cannot start).
const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(name = "edge-agent", version, about = "Venue encoder agent: capture, encode, push SRT to MediaConnect")]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Also write the live status as JSON to this file (atomically, every second).
        #[arg(long)]
        status_file: Option<PathBuf>,
    },
    /// Read a running agent's status file: exit 0 when it streams and is
    /// online with the fleet broker (the image's boot check), 1 when not
    /// (yet), 78 when the file is unreadable or not a status document.
    Healthy {
        #[arg(long, default_value = "/run/edge-agent/status.json")]
        status_file: PathBuf,
    },
    /// Print this box's device id, derived from DMI or the primary NIC's MAC
    /// (hal::identity; image provisioning uses it): 1 if nothing usable.
    DeviceId,
    /// First-boot enrolment (docs/identity.md): with `[fleet.enroll]`, make
    /// the box's key and obtain its certificate through the claim identity,
    /// then exit 0; at once when the box is enrolled already. Logs the key's
    /// fingerprint for the technician. 78: no `[fleet]` with `tls` and
    /// `enroll`; 1: the key or certificate cannot be written.
    Enrol {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Check a configuration file and exit: 0 if valid, 78 if not.
    CheckConfig { file: PathBuf },
    /// Print where each output would send, resolving outputs named by flow
    /// ARN with DescribeFlow only and by MediaLive input id with
    /// DescribeInput (input type, pipeline, destination, any mismatch; no
    /// flow started, no whitelist changed, nothing sent): 0 if every output
    /// resolves, 1 if not, 78 for a bad file.
    Resolve {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List inputs and H.264 encoders, with the one that would be chosen.
    Probe {
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Receive RTP/MP2T on a port (with --fec also SMPTE 2022-1 FEC on
    /// port+2/+4) and report loss, FEC recovery and TS continuity each second.
    Receive {
        /// Media port P.
        #[arg(long)]
        port: u16,
        /// Also receive column FEC on P+2 and row FEC on P+4 and repair.
        #[arg(long)]
        fec: bool,
        /// Local address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::IpAddr,
        /// Stop after this many seconds (default: until SIGINT/SIGTERM).
        #[arg(long)]
        seconds: Option<u64>,
        /// Write the repaired, ordered transport stream to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// How long a gap holds back later packets while FEC may still repair it.
        #[arg(long, default_value_t = 500)]
        hold_ms: u64,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Verb::CheckConfig { file } => match config::from_file(&file) {
            Ok(cfg) => {
                println!("{}: OK", file.display());
                // Names are resolved when an output connects, not here: a
                // name that does not resolve now is worth a warning to the
                // technician, not a wrong file.
                for o in &cfg.outputs {
                    if let Some(Err(e)) = o.target().address.filter(|a| a.literal().is_none()).map(|a| a.resolve()) {
                        eprintln!("warning: output `{}`: {e} (the agent retries each time it connects)", o.name());
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&e),
        },
        Verb::Enrol { config } => enrol(&config),
        Verb::DeviceId => match hal::identity::derive(std::path::Path::new("/sys")) {
            Some(id) => {
                println!("{id}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no usable DMI serial and no NIC to derive a device id from");
                ExitCode::from(EXIT_FAILURE)
            }
        },
        Verb::Probe { json } => probe(json),
        Verb::Healthy { status_file } => healthy(&status_file),
        Verb::Resolve { config, json } => match config::from_file(&config) {
            Ok(cfg) => resolve(&cfg, json),
            Err(e) => config_failure(&e),
        },
        Verb::Receive { port, fec, bind, seconds, output, json, hold_ms } => {
            let opts = receive::ReceiveOptions {
                port,
                bind,
                fec,
                duration: seconds.map(std::time::Duration::from_secs),
                output,
                json,
                hold: std::time::Duration::from_millis(hold_ms),
            };
            receive(&opts)
        }
        Verb::Run { config, status_file } => {
            let candidates = match load_candidates(&config) {
                Ok(c) => c,
                Err(e) => return config_failure(&e),
            };
            let shutdown = Shutdown::new();
            if let Err(e) = install_signal_handlers(&shutdown) {
                eprintln!("error: cannot install signal handlers: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
            log_libsrt();
            let opts = agent::RunOptions { status_file };
            match agent::run(candidates, shutdown, opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "agent failed");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

/// The configurations to try, in order (agent::media): the one the fleet
/// applied and the last one that streamed (both persisted atomically in the
/// state directory, both checked again against the file as a desired
/// config would be), then the file. Only a wrong file is an error (exit
/// 78); an unreadable or invalid saved document is skipped with a warning,
/// and one equal to an earlier candidate is not tried twice.
fn load_candidates(path: &std::path::Path) -> Result<Vec<agent::media::Candidate>, ConfigError> {
    use agent::media::{Candidate, ConfigSource};
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let file_cfg = config::from_file(path)?;
    let mut file_raw: serde_json::Value = toml::from_str(&text).unwrap_or_default();
    if let Some(obj) = file_raw.as_object_mut() {
        // The fleet section is local; the rollback target must not carry it.
        obj.remove("fleet");
    }
    let mut out = Vec::new();
    if let Some(fleet) = &file_cfg.fleet {
        let saved = [
            (ConfigSource::Fleet, agent::applied_config_path(&fleet.state_dir)),
            (ConfigSource::LastGood, agent::media::last_good_config_path(&fleet.state_dir)),
        ];
        for (source, saved) in saved {
            let Ok(bytes) = std::fs::read(&saved) else { continue };
            let parsed = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|raw| agent::fleet_device::parse_desired(&raw, &file_cfg).map(|c| (c, raw)).map_err(|r| r.reason));
            match parsed {
                Ok((cfg, raw)) if !out.iter().any(|c: &Candidate| c.raw == raw) => {
                    tracing::info!(path = %saved.display(), "{} is a candidate", source.describe());
                    out.push(Candidate { source, cfg, raw });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(path = %saved.display(), error = %e, "ignoring {}", source.describe()),
            }
        }
    }
    if !out.iter().any(|c| c.raw == file_raw) {
        out.push(Candidate { source: ConfigSource::File, cfg: file_cfg, raw: file_raw });
    }
    Ok(out)
}

/// One line at start about the libsrt this process loaded: a libsrt whose
/// layouts are not known to match the binding's refuses SRT (the outputs
/// fail with the same reason and `LIBSRT_REFUSED` is raised), while the rest
/// of the agent, the fleet link included, runs so the box can be updated.
fn log_libsrt() {
    let (version, verdict) = srt::version::runtime_verdict();
    match verdict {
        srt::version::Verdict::Ok => tracing::info!(libsrt = %version, "libsrt layouts match the binding"),
        srt::version::Verdict::Flawed(why) => tracing::warn!(libsrt = %version, "{why}"),
        srt::version::Verdict::Refused(why) => tracing::error!(libsrt = %version, "{why}"),
    }
}

/// The loaded libsrt and whether the binding may use it (`srt::version`).
fn libsrt_probe() -> serde_json::Value {
    let (version, verdict) = srt::version::runtime_verdict();
    let (layouts, note) = match verdict {
        srt::version::Verdict::Ok => ("match the binding", None),
        srt::version::Verdict::Flawed(why) => ("match the binding", Some(why)),
        srt::version::Verdict::Refused(why) => ("unknown: SRT refused", Some(why)),
    };
    serde_json::json!({ "version": version.to_string(), "layouts": layouts, "note": note })
}

/// `edge-agent enrol`: runs [`fleet::enroll::client::Enrolment`] to the end.
fn enrol(path: &std::path::Path) -> ExitCode {
    let cfg = match config::from_file(path) {
        Ok(c) => c,
        Err(e) => return config_failure(&e),
    };
    let Some(enrolment) = cfg.fleet.as_ref().and_then(fleet::enroll::client::Enrolment::from_settings) else {
        eprintln!("error: {}: enrolment needs [fleet] with [fleet.tls] and [fleet.enroll]", path.display());
        return ExitCode::from(EXIT_CONFIG);
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match rt.block_on(enrolment.run()) {
        Ok(fp) => {
            println!("{fp}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "enrolment failed");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: invalid configuration: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // journald adds its own timestamps; a terminal user still wants them.
    // The ring keeps the recent lines (redacted) for `logs.fetch`.
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(agent::logring::install())
        .init();
}

/// SIGTERM (systemd stop) and SIGINT (Ctrl-C) both mean a clean shutdown.
fn install_signal_handlers(shutdown: &Shutdown) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let shutdown = shutdown.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "signal received");
            shutdown.trigger();
        }
    })?;
    Ok(())
}

/// `edge-agent receive`: reports on stdout until SIGINT/SIGTERM or `--seconds`.
fn receive(opts: &receive::ReceiveOptions) -> ExitCode {
    let shutdown = Shutdown::new();
    if let Err(e) = install_signal_handlers(&shutdown) {
        eprintln!("error: cannot install signal handlers: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    match receive::run(opts, &shutdown, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `edge-agent resolve`: one line (or JSON object) per output.
fn resolve(cfg: &config::AgentConfig, json: bool) -> ExitCode {
    let rows = agent::cloud::dry_run(cfg);
    let ok = rows.iter().all(|r| r.error.is_none());
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        for r in &rows {
            println!("{}", r.line());
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

fn probe(json: bool) -> ExitCode {
    let backend = match hal::encoder::GstEncoderBackend::new() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let report = hal::encoder::probe(&backend, hal::encoder::EncoderRequest::Auto);
    let hevc = hal::encoder::probe_codec(&backend, hal::encoder::EncoderRequest::Auto, hal::encoder::Codec::H265);
    let inputs = agent::pipeline::discover_inputs();
    // RTP pacing along the default route (TEST-NET-2: a route lookup only).
    let pacing = agent::output::udp_batch::egress_pacing(std::net::IpAddr::from([198, 51, 100, 1]), None);
    if json {
        let doc = serde_json::json!({
            "inputs": inputs,
            "rtp_pacing": pacing,
            "encoders": report.candidates,
            // Whether each installed encoder takes a new bitrate while
            // playing (what `[adapt]` needs); absent when not installed.
            "live_bitrate": report.candidates.iter()
                .filter_map(|c| agent::pipeline::encoder::live_bitrate(c.factory).map(|l| (c.factory, l)))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "chosen": report.chosen().map(|c| c.factory),
            "why": report.why(),
            "libsrt": libsrt_probe(),
            "hevc": {
                "encoders": hevc.candidates,
                "chosen": hevc.chosen().map(|c| c.factory),
                "why": hevc.why(),
            },
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        println!("INPUTS (auto order)");
        println!("  {:<28} {:<13} {:<24} NAME", "ID", "KIND", "SIGNAL");
        for i in &inputs {
            let signal = match i.signal {
                None => "always".to_owned(),
                Some(hal::capture::Signal::Locked(f)) => format!("locked {f}"),
                Some(s) => serde_json::to_value(s).ok().and_then(|v| v["state"].as_str().map(str::to_owned)).unwrap_or_default(),
            };
            println!("  {:<28} {:<13} {:<24} {}", i.id, i.kind, signal, i.name);
        }
        println!("H.264 ENCODERS (preference order)");
        println!("  {:<10} {:<18} {:<13} STATUS", "FAMILY", "FACTORY", "LIVE BITRATE");
        for c in &report.candidates {
            let status = match &c.status {
                hal::encoder::CandidateStatus::Chosen => "CHOSEN".to_owned(),
                hal::encoder::CandidateStatus::Usable => "usable".to_owned(),
                // The reason below GStreamer when the box can tell
                // (no render node, driver not loaded, VA driver missing).
                hal::encoder::CandidateStatus::NotInstalled => match &c.unavailable {
                    Some(u) if u.reason != hal::gpu::Reason::ElementMissing => format!("unavailable: {}", u.detail),
                    _ => "not installed".to_owned(),
                },
                hal::encoder::CandidateStatus::TrialFailed(e) => match &c.unavailable {
                    Some(u) if u.reason != hal::gpu::Reason::TrialFailed => format!("trial failed: {e} ({})", u.detail),
                    _ => format!("trial failed: {e}"),
                },
                hal::encoder::CandidateStatus::NotRequested => "not requested".to_owned(),
            };
            // Network-adaptive bitrate needs a bitrate the element takes
            // while playing.
            let live = match agent::pipeline::encoder::live_bitrate(c.factory) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            println!("  {:<10} {:<18} {:<13} {}", c.kind.name(), c.factory, live, status);
        }
        println!("{}", report.why());
        println!("HEVC: {}", hevc.why());
        let l = libsrt_probe();
        let note = l["note"].as_str().map(|n| format!(": {n}")).unwrap_or_default();
        println!("LIBSRT: {} (layouts {}){note}", l["version"].as_str().unwrap_or("?"), l["layouts"].as_str().unwrap_or("?"));
        println!(
            "RTP PACING: {} (default route via {}, root qdisc {})",
            pacing.pacing,
            pacing.dev.as_deref().unwrap_or("?"),
            pacing.qdisc.as_deref().unwrap_or("?")
        );
    }
    if report.chosen().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `edge-agent healthy`: reads the status file's typed fields.
fn healthy(path: &std::path::Path) -> ExitCode {
    let doc = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()))
    {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let streaming = doc.get("streaming").and_then(serde_json::Value::as_bool);
    let online = doc.pointer("/fleet/connected").and_then(serde_json::Value::as_bool);
    match (streaming, online) {
        (Some(true), Some(true)) => {
            println!("streaming, online");
            ExitCode::SUCCESS
        }
        (None, _) => {
            eprintln!("{}: no `streaming` field: not an edge-agent status file", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
        (Some(s), o) => {
            let fleet = match o {
                Some(true) => "online",
                Some(false) => "offline",
                None => "no fleet management",
            };
            println!("{}, {fleet}", if s { "streaming" } else { "not streaming" });
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
