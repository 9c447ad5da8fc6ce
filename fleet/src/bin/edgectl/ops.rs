//! Read-only views: `devices`, `status`, `watch`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use fleet::topics;
use tokio::time::Instant;

use crate::conn::{BrokerArgs, Ctl};
use crate::view::{table, DeviceView, Fleet};
use crate::Exit;
use crate::{show, term};

const FLEET_SUFFIXES: [&str; 3] = [topics::STATUS, topics::STATE, topics::ALARMS];

async fn snapshot(args: &BrokerArgs, device: &str, suffixes: &[&str]) -> Result<(Ctl, Fleet)> {
    let mut ctl = Ctl::connect(args).await?;
    let filters: Vec<String> = suffixes.iter().map(|s| topics::topic(device, s)).collect();
    ctl.subscribe(&filters).await?;
    let mut fleet = Fleet::default();
    for m in ctl.sync(Instant::now() + args.timeout()).await? {
        fleet.apply(&m.topic, &m.payload);
    }
    Ok((ctl, fleet))
}

pub async fn devices(args: &BrokerArgs, json: bool) -> Result<Exit> {
    let (ctl, fleet) = snapshot(args, "+", &FLEET_SUFFIXES).await?;
    ctl.close().await;
    let all: Vec<&DeviceView> = fleet.devices.values().collect();
    if json {
        println!("{}", term::json(serde_json::to_string_pretty(&all)?));
    } else {
        let s = fleet.summary();
        print!("{}", table(&all));
        println!("{} devices, {} online, {} offline", s.total, s.online, s.offline);
    }
    Ok(Exit::Ok)
}

pub async fn status(args: &BrokerArgs, device: &str, json: bool) -> Result<Exit> {
    if let Err(e) = topics::validate_device_id(device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let suffixes = [topics::STATUS, topics::INFO, topics::STATE, topics::ALARMS, topics::CONFIG_REPORTED, topics::CONFIG_DESIRED];
    let (ctl, fleet) = snapshot(args, device, &suffixes).await?;
    ctl.close().await;
    match fleet.devices.get(device) {
        Some(d) if d.status.is_some() => {
            if json {
                println!("{}", term::json(serde_json::to_string_pretty(d)?));
            } else {
                print!("{}", show::status(d));
            }
            Ok(Exit::Ok)
        }
        _ => {
            eprintln!("edgectl: no device `{device}` (no retained status)");
            Ok(Exit::UnknownDevice)
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Seconds between redraws.
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// Page of the sorted device list to show (from 1).
    #[arg(long, default_value_t = 1)]
    page: usize,
    /// Devices per page.
    #[arg(long, default_value_t = 20)]
    page_size: usize,
    /// Most problem devices to list.
    #[arg(long, default_value_t = 20)]
    problems: usize,
    /// Stop after this many redraws (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    iterations: u64,
}

/// One screen: summary, problems (offline first, worst alarm first), page.
fn render(fleet: &Fleet, a: &WatchArgs) -> String {
    let s = fleet.summary();
    let mut out = format!(
        "{} devices | {} online | {} offline | alarms: {} critical, {} major, {} minor, {} warning\n\n",
        s.total, s.online, s.offline, s.critical, s.major, s.minor, s.warning
    );
    let mut problems: Vec<&DeviceView> = fleet.devices.values().filter(|d| d.has_problem()).collect();
    problems.sort_by(|x, y| x.problem_rank().cmp(&y.problem_rank()).then(x.device.cmp(&y.device)));
    out.push_str(&format!("PROBLEMS ({}; first {})\n", problems.len(), a.problems.min(problems.len())));
    problems.truncate(a.problems);
    out.push_str(&table(&problems));
    let all: Vec<&DeviceView> = fleet.devices.values().collect();
    let size = a.page_size.max(1);
    let pages = all.len().div_ceil(size).max(1);
    let page = a.page.clamp(1, pages);
    out.push_str(&format!("\nALL DEVICES (page {page}/{pages})\n"));
    let start = (page - 1) * size;
    out.push_str(&table(&all[start.min(all.len())..(start + size).min(all.len())]));
    out
}

pub async fn watch(args: &BrokerArgs, a: &WatchArgs) -> Result<Exit> {
    let mut ctl = Ctl::connect(args).await?;
    let filters: Vec<String> = FLEET_SUFFIXES.iter().map(|s| topics::topic("+", s)).collect();
    // QoS 0: a watcher of thousands of devices must never fall behind. At
    // QoS 1 mosquitto drops messages for a controller whose in-flight queue
    // is full during a connect storm, and the view stays wrong for good
    // (fleet-bench: up to 11,796 lost). Retained state still arrives.
    ctl.subscribe_qos(&filters, rumqttc::QoS::AtMostOnce).await?;
    let mut fleet = Fleet::default();
    for m in ctl.sync(Instant::now() + args.timeout()).await? {
        fleet.apply(&m.topic, &m.payload);
    }
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    loop {
        let mut screen = String::new();
        if tty {
            screen.push_str("\x1b[H\x1b[2J");
        }
        screen.push_str(&render(&fleet, a));
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(screen.as_bytes())?;
        stdout.flush()?;
        drop(stdout);
        n += 1;
        if a.iterations != 0 && n >= a.iterations {
            break;
        }
        let until = Instant::now() + Duration::from_secs(a.interval.max(1));
        while let Some(m) = ctl.next(until).await? {
            fleet.apply(&m.topic, &m.payload);
        }
    }
    ctl.close().await;
    Ok(Exit::Ok)
}
