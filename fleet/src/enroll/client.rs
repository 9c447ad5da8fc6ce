//! The box's side of enrolment over MQTT (`docs/identity.md`).
//!
//! Every box's image carries the same *claim* certificate. Its broker
//! identity (the CN, which mosquitto also makes the client id) may only
//! publish `fleet/v1/enroll/+/csr` and read `fleet/v1/enroll/+/cert`. The
//! box therefore does not stay connected: boxes enrolling at once share that
//! client id and would take each other's session over. It connects,
//! publishes its CSR (retained, QoS 1), reads its certificate topic for a
//! few seconds (a retained certificate arrives right after the SUBACK),
//! disconnects and tries again after `poll` (with jitter), until a
//! certificate arrives that is for its key, names it and chains to the CA
//! it was provisioned with. The certificate is then stored atomically where
//! `[fleet.tls] cert` points, and the agent connects as itself.

use std::path::PathBuf;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tracing::{info, warn};

use super::{cert_topic, check_issued, csr_topic, fingerprint, load_or_make_key, make_csr, write_atomic, EnrollError};
use crate::settings::{FleetSettings, TlsSettings};

/// How long one connection waits for the certificate.
const LISTEN: Duration = Duration::from_secs(5);

/// Where the box's identity goes and how to ask for it.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub broker: String,
    pub device_id: String,
    /// The fleet CA: trusted for the broker and for the issued certificate.
    pub ca: PathBuf,
    /// The box's own key and certificate (`[fleet.tls] key`, `cert`).
    pub key: PathBuf,
    pub cert: PathBuf,
    /// The fleet-wide claim identity.
    pub claim_cert: PathBuf,
    pub claim_key: PathBuf,
    /// Pause between attempts.
    pub poll: Duration,
}

impl Enrolment {
    /// From `[fleet]` with `[fleet.tls]` and `[fleet.enroll]`; `None` when
    /// either is missing.
    pub fn from_settings(s: &FleetSettings) -> Option<Enrolment> {
        let (tls, e) = (s.tls.as_ref()?, s.enroll.as_ref()?);
        Some(Enrolment {
            broker: s.broker.clone(),
            device_id: s.device_id.clone(),
            ca: tls.ca.clone(),
            key: tls.key.clone(),
            cert: tls.cert.clone(),
            claim_cert: e.claim_cert.clone(),
            claim_key: e.claim_key.clone(),
            poll: Duration::from_secs(u64::from(e.poll_s.max(1))),
        })
    }

    fn ca_pem(&self) -> Result<Vec<u8>, EnrollError> {
        std::fs::read(&self.ca).map_err(|e| super::file_err(&self.ca, e))
    }

    /// Whether the box already holds a certificate for its key from the CA.
    pub fn enrolled(&self) -> bool {
        let (Ok(cert), Ok(key)) = (std::fs::read(&self.cert), std::fs::read(&self.key)) else { return false };
        let Ok(key) = PKey::private_key_from_pem(&key) else { return false };
        self.ca_pem().is_ok_and(|ca| check_issued(&cert, &key, &ca, &self.device_id).is_ok())
    }

    /// Enrols if needed; returns the key's fingerprint. Runs until a
    /// certificate is stored (or the files cannot be written).
    pub async fn run(&self) -> Result<String, EnrollError> {
        let key = load_or_make_key(&self.key)?;
        let fp = fingerprint(&key)?;
        if self.enrolled() {
            info!(device = %self.device_id, fingerprint = %fp, "enrolled: using the box's own certificate");
            return Ok(fp);
        }
        let csr = make_csr(&key, &self.device_id)?;
        let ca = self.ca_pem()?;
        // The line a technician compares with `edgectl enroll list`.
        info!(device = %self.device_id, fingerprint = %fp, "enrolment: waiting for approval of this key");
        loop {
            match self.attempt(&key, &csr, &ca).await {
                Ok(Some(pem)) => {
                    write_atomic(&self.cert, &pem, 0o644)?;
                    info!(device = %self.device_id, fingerprint = %fp, "enrolment: certificate stored");
                    return Ok(fp);
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "enrolment attempt failed"),
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=self.poll.as_millis().try_into().unwrap_or(u64::MAX) / 4));
            tokio::time::sleep(self.poll + jitter).await;
        }
    }

    /// One connection: publish the CSR, wait [`LISTEN`] for a certificate
    /// that passes [`check_issued`]. `Ok(None)`: none yet.
    async fn attempt(&self, key: &PKey<Private>, csr: &str, ca: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let claim = TlsSettings { ca: self.ca.clone(), cert: self.claim_cert.clone(), key: self.claim_key.clone() };
        let client_id = format!("enroll-{}", self.device_id);
        let opts = crate::client::mqtt_options(&client_id, &self.broker, Some(&claim), 30).map_err(|e| e.to_string())?;
        let (client, mut events) = AsyncClient::new(opts, 8);
        let topic = cert_topic(&self.device_id);
        client
            .publish(csr_topic(&self.device_id), QoS::AtLeastOnce, true, csr.as_bytes().to_vec())
            .await
            .map_err(|e| e.to_string())?;
        client.subscribe(topic.clone(), QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + LISTEN;
        let mut found = None;
        while let Ok(ev) = tokio::time::timeout_at(deadline, events.poll()).await {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                    match check_issued(&p.payload, key, ca, &self.device_id) {
                        Ok(_) => {
                            found = Some(p.payload.to_vec());
                            break;
                        }
                        // Someone published a certificate that is not ours
                        // (another key, CN, CA): keep waiting for the right one.
                        Err(e) => warn!(error = %e, "enrolment: ignoring a certificate"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = client.disconnect().await;
                    return Err(e.to_string());
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
        Ok(found)
    }
}
