//! `edgectl enroll list` and `edgectl enroll approve` (`docs/identity.md`):
//! the CA holder's side of first-boot enrolment.
//!
//! `list` shows every retained CSR with the fingerprint of its key, which
//! the technician compares with the one the box shows on its console;
//! `approve` signs one with the fleet CA and publishes the certificate
//! (retained) where the box reads it. Nothing here trusts the CSR's topic:
//! the CN inside the request must be the device id, and its signature must
//! verify with its key.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fleet::enroll::{self, Request};
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde_json::json;
use tokio::time::Instant;

use crate::conn::{BrokerArgs, Ctl};
use crate::{term, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum EnrollCmd {
    /// Pending and issued requests: device, key fingerprint, state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Sign DEVICE's request with the fleet CA and publish its certificate.
    Approve(ApproveArgs),
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    device: String,
    /// The fleet CA certificate (PEM).
    #[arg(long)]
    ca_cert: PathBuf,
    /// The fleet CA key (PEM): keep it off the broker's host.
    #[arg(long)]
    ca_key: PathBuf,
    /// Refuse unless the request's key has this fingerprint (as the box shows it).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 825)]
    days: u32,
}

/// One retained request and what became of it.
struct Entry {
    device: String,
    request: Result<Request, String>,
    issued: bool,
}

async fn entries(args: &BrokerArgs) -> Result<(Ctl, Vec<Entry>)> {
    let mut ctl = Ctl::connect(args).await?;
    ctl.subscribe(&[enroll::csr_topic("+"), enroll::cert_topic("+")]).await?;
    let msgs = ctl.sync(Instant::now() + args.timeout()).await?;
    let mut certs = std::collections::HashMap::new();
    let mut csrs = Vec::new();
    for m in msgs {
        match enroll::split_topic(&m.topic) {
            Some((d, "csr")) if !m.payload.is_empty() => csrs.push((d.to_owned(), m.payload)),
            Some((d, "cert")) => {
                certs.insert(d.to_owned(), m.payload);
            }
            _ => {}
        }
    }
    let mut out: Vec<Entry> = csrs
        .into_iter()
        .map(|(device, pem)| {
            let request = enroll::read_csr(&pem).map_err(|e| e.to_string()).and_then(|r| {
                if r.device == device {
                    Ok(r)
                } else {
                    Err(format!("its CN `{}` is not the topic's device", r.device))
                }
            });
            // Issued = a certificate for this very key is published.
            let issued = request.as_ref().is_ok_and(|r| {
                certs
                    .get(&device)
                    .and_then(|c| X509::from_pem(c).ok())
                    .and_then(|c| c.public_key().ok())
                    .is_some_and(|k| k.public_eq(&r.key))
            });
            Entry { device, request, issued }
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    Ok((ctl, out))
}

pub async fn run(args: &BrokerArgs, cmd: &EnrollCmd) -> Result<Exit> {
    match cmd {
        EnrollCmd::List { json } => list(args, *json).await,
        EnrollCmd::Approve(a) => approve(args, a).await,
    }
}

async fn list(args: &BrokerArgs, as_json: bool) -> Result<Exit> {
    let (ctl, entries) = entries(args).await?;
    ctl.close().await;
    if as_json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| match &e.request {
                Ok(r) => {
                    json!({"device": e.device, "fingerprint": r.fingerprint, "state": if e.issued { "issued" } else { "pending" }})
                }
                Err(why) => json!({"device": e.device, "state": "invalid", "error": why}),
            })
            .collect();
        println!("{}", term::json(serde_json::to_string(&rows)?));
        return Ok(Exit::Ok);
    }
    for e in &entries {
        let line = match &e.request {
            Ok(r) => format!("{}  {}  {}", e.device, r.fingerprint, if e.issued { "issued" } else { "pending" }),
            Err(why) => format!("{}  invalid: {why}", e.device),
        };
        println!("{}", term::text(&line));
    }
    Ok(Exit::Ok)
}

async fn approve(args: &BrokerArgs, a: &ApproveArgs) -> Result<Exit> {
    if let Err(e) = fleet::topics::validate_device_id(&a.device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let ca_cert = X509::from_pem(&std::fs::read(&a.ca_cert).with_context(|| a.ca_cert.display().to_string())?)?;
    let ca_key = PKey::private_key_from_pem(&std::fs::read(&a.ca_key).with_context(|| a.ca_key.display().to_string())?)
        .context("--ca-key is not a PEM private key")?;
    let (mut ctl, entries) = entries(args).await?;
    let Some(entry) = entries.into_iter().find(|e| e.device == a.device) else {
        eprintln!("edgectl: no enrolment request from {}", a.device);
        ctl.close().await;
        return Ok(Exit::UnknownDevice);
    };
    let request = match entry.request {
        Ok(r) => r,
        Err(why) => {
            eprintln!("edgectl: {}'s request is invalid: {}", a.device, term::text(&why));
            ctl.close().await;
            return Ok(Exit::Refused);
        }
    };
    if a.fingerprint.as_ref().is_some_and(|f| *f != request.fingerprint) {
        eprintln!("edgectl: {}'s key is {}, not the fingerprint given: not signed", a.device, request.fingerprint);
        ctl.close().await;
        return Ok(Exit::Refused);
    }
    let pem = enroll::sign(&request, &ca_cert, &ca_key, a.days)?;
    let deadline = Instant::now() + args.timeout();
    ctl.publish(&enroll::cert_topic(&a.device), pem.into_bytes(), true, deadline).await?;
    ctl.close().await;
    println!("{}  {}  issued", a.device, request.fingerprint);
    Ok(Exit::Ok)
}
