//! `edgectl`: the operators' command line for the fleet.
//!
//! ```text
//! edgectl devices                       all devices: online, state, alarms
//! edgectl status DEVICE                 everything retained about one device
//! edgectl watch                         live summary, problems, sorted page
//! edgectl config push DEVICE FILE [--confirm]   clear passphrases sealed to the box first
//! edgectl seal --device DEVICE < secret   a passphrase sealed to the box (docs/secrets.md)
//! edgectl enroll list | approve DEVICE --ca-cert CRT --ca-key KEY   first-boot enrolment (docs/identity.md)
//! edgectl cmd DEVICE NAME [KEY=VALUE…]  e.g. `cmd enc-1 output.disable output=backup`
//! edgectl logs DEVICE [--since 10m] [--follow]   the box's recent agent log
//! edgectl dashboard --listen ADDR       live web page (dashboard/mod.rs)
//! ```
//! Answers are readable lines (a rejection: `enc-1: version 2 rejected:
//! video.bitrate_kbps: must be …; running version 1`); `--json` on
//! `devices`, `status`, `config push` and `cmd` prints the wire documents
//! instead, for scripts. Progress and errors go to stderr.
//!
//! Exit codes: 0 success; 1 error (broker, I/O); 2 usage (bad arguments,
//! unknown command, invalid args: checked locally with the same `Command`
//! parser the device uses); 3 the device rejected it, failed, or rolled
//! back; 4 no answer in time; 5 unknown device (no retained status).

mod cmd;
mod conn;
mod dashboard;
mod enroll;
mod logs;
mod ops;
mod seal;
mod show;
mod simulate;
mod term;
mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of edgectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    Refused = 3,
    Timeout = 4,
    UnknownDevice = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "edgectl",
    version,
    about = "Manage a fleet of edge-agent encoders over MQTT",
    after_help = "Exit codes: 0 ok, 1 error, 2 usage (incl. unknown command/invalid args), \
                  3 refused (rejected/failed/rolled back), 4 no answer in time, 5 unknown device"
)]
struct Cli {
    #[command(flatten)]
    broker: conn::BrokerArgs,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// List devices: online/offline, state, config version, active alarms.
    Devices {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Everything retained about one device: presence, config, alarms,
    /// info, state.
    Status {
        device: String,
        /// The retained documents as JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// A live view: summary counts, devices with problems, a sorted page.
    Watch(ops::WatchArgs),
    /// Desired configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Send a command and wait for its answer.
    Cmd(cmd::CmdArgs),
    /// Seal a secret (stdin) to a device's certificate; prints the value for
    /// `passphrase = { sealed = "…" }` (docs/secrets.md).
    Seal(seal::SealArgs),
    /// First-boot enrolment: list requests, approve one (docs/identity.md).
    #[command(subcommand)]
    Enroll(enroll::EnrollCmd),
    /// The box's recent agent log lines (secrets redacted on the box).
    Logs(logs::LogsArgs),
    /// Serve a live web page of the fleet (and its commands) on --listen.
    Dashboard(dashboard::DashArgs),
    /// Run a simulated device (FakeDevice) until SIGTERM/SIGINT (tests).
    #[command(hide = true)]
    SimulateDevice(simulate::SimArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Publish FILE (TOML or .json) as the device's desired config.
    Push(cmd::PushArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EDGECTL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgectl: {e}");
            return Exit::Error.into();
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Sub::Devices { json } => ops::devices(&cli.broker, json).await,
            Sub::Status { device, json } => ops::status(&cli.broker, &device, json).await,
            Sub::Watch(a) => ops::watch(&cli.broker, &a).await,
            Sub::Config(ConfigCmd::Push(a)) => cmd::push(&cli.broker, &a).await,
            Sub::Cmd(a) => cmd::run(&cli.broker, &a).await,
            Sub::Seal(a) => seal::run(&cli.broker, &a).await,
            Sub::Enroll(c) => enroll::run(&cli.broker, &c).await,
            Sub::Logs(a) => logs::run(&cli.broker, &a).await,
            Sub::Dashboard(a) => dashboard::run(&cli.broker, &a).await,
            Sub::SimulateDevice(a) => simulate::run(&cli.broker, &a).await,
        }
    });
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("edgectl: {}", term::text(&format!("{e:#}")));
            Exit::Error.into()
        }
    }
}
