//! `edgectl simulate-device` (hidden): one FakeDevice behind a real
//! FleetClient, until SIGTERM or SIGINT. For tests and demos.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use fleet::{FakeDevice, FleetClient, FleetSettings, SharedDevice};

use crate::conn::BrokerArgs;
use crate::Exit;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    #[arg(long)]
    device_id: String,
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long, default_value_t = 10)]
    telemetry_interval: u32,
}

pub async fn run(args: &BrokerArgs, a: &SimArgs) -> Result<Exit> {
    let mut s = FleetSettings::new(&args.broker, &a.device_id, &a.state_dir, args.tls()?);
    s.telemetry_interval_s = a.telemetry_interval;
    s.reconnect_max_s = 2;
    let device: SharedDevice = Arc::new(Mutex::new(FakeDevice::new(&a.device_id)));
    let handle = FleetClient::spawn(s, device)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let stopped = tokio::task::spawn_blocking(move || handle.shutdown(Duration::from_secs(5))).await?;
    Ok(if stopped { Exit::Ok } else { Exit::Error })
}
