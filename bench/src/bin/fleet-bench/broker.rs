//! The bench's mosquitto (test-support's: plain TCP, or mTLS with the fleet
//! ACL as in the tests) plus a read-only identity for the bench's watcher,
//! and what the bench reads from mosquitto's log.

use std::path::Path;

use anyhow::{Context, Result};
use fleet::TlsSettings;
use test_support::broker::{Broker, BrokerOptions};
use test_support::pki::Pki;

/// CN of the identity `edgectl watch` uses (full controller rights).
pub use test_support::acl::CONTROLLER;
/// CN of the bench's own telemetry watcher (read-only).
pub const WATCHER: &str = "bench-watcher";

/// Put before the fleet ACL: the watcher reads everything, writes nothing.
const WATCHER_ACL: &str = "\
user bench-watcher
topic read fleet/#
topic read $SYS/#

";

/// TLS settings of a client identity of `pki` (CN = `name`).
pub fn tls(pki: &Pki, name: &str) -> Result<TlsSettings> {
    let c = pki.try_client(name).with_context(|| format!("client certificate {name}"))?;
    Ok(TlsSettings { ca: c.ca, cert: c.cert, key: c.key })
}

/// The `max_queued_messages` line for `max_queued` (empty: mosquitto's
/// default).
pub fn queue_conf(max_queued: Option<u64>) -> String {
    max_queued.map_or(String::new(), |q| format!("max_queued_messages {q}"))
}

/// Starts mosquitto in `dir` on a free port: mTLS + ACL with `pki`, else
/// plain TCP with anonymous access. Waits (≤10 s) until it listens.
pub fn start(dir: &Path, pki: Option<&Pki>, max_queued: Option<u64>) -> Result<Broker> {
    let opts = BrokerOptions {
        pki: pki.cloned(),
        extra_acl: if pki.is_some() { WATCHER_ACL.to_owned() } else { String::new() },
        // $SYS every second for the watcher; no connection limit (one per
        // device); timestamps in the log to line up with the report.
        extra_conf: format!("sys_interval 1\nmax_connections -1\nlog_timestamp_format %H:%M:%S\n{}", queue_conf(max_queued)),
        ..BrokerOptions::default()
    };
    Broker::launch(Some(dir), opts).context("mosquitto")
}

/// Clients mosquitto logged "Outgoing messages are being dropped" for (it
/// logs once per dropping episode), with how many episodes.
pub fn drop_notices(broker: &Broker) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for l in broker.log().lines() {
        if let Some(rest) = l.split("Outgoing messages are being dropped for client ").nth(1) {
            let id = rest.trim_end_matches('.').to_owned();
            match out.iter_mut().find(|(c, _)| *c == id) {
                Some((_, k)) => *k += 1,
                None => out.push((id, 1)),
            }
        }
    }
    out
}
