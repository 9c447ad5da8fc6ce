//! Sealing secrets to a box (`docs/secrets.md`): `edgectl seal` and the
//! sealing step of `edgectl config push`.
//!
//! The box's certificate comes from `--device-cert FILE` or from the
//! `certificate` field of its retained `info` document. Either way it is
//! checked before anything is sealed to it: it must chain to the fleet CA
//! (`--fleet-ca`, default `--ca`) and its CN must be the device id, so a
//! certificate planted on the broker cannot draw a secret to another key.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use fleet::sealed;
use fleet::topics;
use openssl::x509::X509;
use serde_json::Value;
use tokio::time::Instant;

use crate::conn::{BrokerArgs, Ctl};
use crate::Exit;

/// Where the device's certificate and the fleet CA come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SealTarget {
    /// The device's certificate (PEM) instead of the one in its retained
    /// `info` document.
    #[arg(long)]
    pub device_cert: Option<PathBuf>,
    /// The CA that issues device certificates (default: --ca).
    #[arg(long, env = "EDGECTL_FLEET_CA")]
    pub fleet_ca: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// The device the secret is for.
    #[arg(long)]
    device: String,
    #[command(flatten)]
    target: SealTarget,
}

/// `edgectl seal --device ID`: reads the secret from stdin (one line; the
/// newline is not part of it) and prints the sealed value, base64, for
/// `passphrase = { sealed = "…" }`.
pub async fn run(args: &BrokerArgs, a: &SealArgs) -> Result<Exit> {
    if let Err(e) = topics::validate_device_id(&a.device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let mut secret = String::new();
    std::io::stdin().read_to_string(&mut secret).context("reading the secret from stdin")?;
    let secret = secret.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&secret);
    if secret.is_empty() {
        eprintln!("edgectl: no secret on stdin");
        return Ok(Exit::Usage);
    }
    let cert = match &a.target.device_cert {
        Some(_) => device_cert(None, args, &a.device, &a.target).await?,
        None => {
            let mut ctl = Ctl::connect(args).await?;
            let cert = device_cert(Some(&mut ctl), args, &a.device, &a.target).await;
            ctl.close().await;
            cert?
        }
    };
    println!("{}", sealed::seal(&cert, secret)?);
    Ok(Exit::Ok)
}

/// Seals the clear secrets of `doc` to `device` when it has any; returns
/// how many were sealed. Reads the certificate only when needed.
pub async fn seal_document(ctl: &mut Ctl, args: &BrokerArgs, device: &str, target: &SealTarget, doc: &mut Value) -> Result<usize> {
    if !sealed::has_clear_secrets(doc) {
        return Ok(0);
    }
    if args.insecure_plaintext {
        // Development only: the link itself is plaintext, and such a box
        // has no certificate to seal to (docs/secrets.md).
        eprintln!("edgectl: warning: passphrases pushed in clear over --insecure-plaintext (development only)");
        return Ok(0);
    }
    let cert = device_cert(Some(ctl), args, device, target).await?;
    Ok(sealed::seal_document(doc, &cert)?)
}

/// The device's certificate, checked against the fleet CA and the id.
async fn device_cert(ctl: Option<&mut Ctl>, args: &BrokerArgs, device: &str, target: &SealTarget) -> Result<X509> {
    let ca_path = target
        .fleet_ca
        .as_ref()
        .or(args.ca.as_ref())
        .ok_or_else(|| anyhow!("--fleet-ca (or --ca) is required to check the device's certificate"))?;
    let ca = std::fs::read(ca_path).with_context(|| format!("{}", ca_path.display()))?;
    let pem = match (&target.device_cert, ctl) {
        (Some(p), _) => std::fs::read(p).with_context(|| format!("{}", p.display()))?,
        (None, Some(ctl)) => retained_cert(ctl, args, device).await?,
        (None, None) => bail!("no device certificate: give --device-cert or reach the broker"),
    };
    sealed::verify_device_cert(&pem, &ca, device).with_context(|| format!("{device}'s certificate"))
}

/// The `info.certificate` of `device`'s retained `info` document.
async fn retained_cert(ctl: &mut Ctl, args: &BrokerArgs, device: &str) -> Result<Vec<u8>> {
    let topic = topics::topic(device, topics::INFO);
    ctl.subscribe(std::slice::from_ref(&topic)).await?;
    let msgs = ctl.sync(Instant::now() + args.timeout()).await?;
    let mut found = None;
    let mut rest = Vec::new();
    for m in msgs {
        if m.topic == topic {
            found = Some(m.payload);
        } else {
            rest.push(m);
        }
    }
    ctl.requeue(rest);
    let info = found
        .and_then(|p| fleet::wire::parse::<fleet::wire::Info>(&p).ok())
        .ok_or_else(|| anyhow!("{device} has no retained info document: give --device-cert"))?;
    info.info
        .get("certificate")
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec())
        .ok_or_else(|| anyhow!("{device}'s info carries no certificate (an older agent?): give --device-cert"))
}
