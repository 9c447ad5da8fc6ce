//! First-boot enrolment (`docs/identity.md`): the box makes its own P-256
//! key, asks for a certificate with a CSR (PKCS#10, RFC 2986) over a
//! fleet-wide *claim* identity, and whoever holds the fleet CA signs it
//! after comparing the key's fingerprint with the one the box shows.
//!
//! This module is the crypto and the files: key, CSR, fingerprint, signing
//! (edgectl's side), checking and storing the issued certificate (the box's
//! side). [`client`] is the box's MQTT exchange.

pub mod client;

use std::io::Write as _;
use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509NameBuilder, X509Req, X509};

use crate::topics::{validate_device_id, PREFIX};

/// Topic level of enrolment: `fleet/v1/enroll/{device}/{csr,cert}`. `enroll`
/// is not a valid device's subtree (device topics have a fixed suffix set).
pub const ENROLL: &str = "enroll";
/// Largest CSR or certificate accepted (a P-256 one is under 1 KiB).
pub const MAX_PEM: usize = 8 * 1024;

/// `fleet/v1/enroll/{device}/csr` (the box publishes, retained).
pub fn csr_topic(device: &str) -> String {
    format!("{PREFIX}/{ENROLL}/{device}/csr")
}

/// `fleet/v1/enroll/{device}/cert` (the CA holder publishes, retained).
pub fn cert_topic(device: &str) -> String {
    format!("{PREFIX}/{ENROLL}/{device}/cert")
}

/// Splits `fleet/v1/enroll/{device}/{suffix}`.
pub fn split_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?.strip_prefix(ENROLL)?.strip_prefix('/')?;
    rest.split_once('/')
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error("certificate request: {0}")]
    Csr(String),
    #[error("certificate: {0}")]
    Cert(String),
    #[error("openssl: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> EnrollError {
    EnrollError::File { path: path.display().to_string(), detail: e.to_string() }
}

/// The SHA-256 of the key's SubjectPublicKeyInfo (DER), as OpenSSH shows
/// key fingerprints: `SHA256:` and unpadded base64. The box logs it, and
/// `edgectl enroll list` shows it for the same key.
pub fn fingerprint<T: openssl::pkey::HasPublic>(key: &PKeyRef<T>) -> Result<String, EnrollError> {
    let der = key.public_key_to_der()?;
    let digest = openssl::hash::hash(MessageDigest::sha256(), &der)?;
    Ok(format!("SHA256:{}", openssl::base64::encode_block(&digest).trim_end_matches('=')))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename,
/// fsync of the directory) with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EnrollError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(|e| file_err(&tmp, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| file_err(dir, e))?;
    Ok(())
}

/// The box's key at `path` (PKCS#8 PEM), made there (mode 0600) on first
/// use. A restart during enrolment keeps the key, so the fingerprint the
/// technician compares does not change.
pub fn load_or_make_key(path: &Path) -> Result<PKey<Private>, EnrollError> {
    match std::fs::read(path) {
        Ok(pem) => PKey::private_key_from_pem(&pem).map_err(|_| file_err(path, "not a PEM private key")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
            write_atomic(path, &key.private_key_to_pem_pkcs8()?, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(file_err(path, e)),
    }
}

/// A CSR (PEM) with CN = `device`, signed with `key`.
pub fn make_csr(key: &PKeyRef<Private>, device: &str) -> Result<String, EnrollError> {
    validate_device_id(device).map_err(EnrollError::Csr)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, device)?;
    let mut req = X509Req::builder()?;
    req.set_version(0)?;
    req.set_subject_name(&name.build())?;
    req.set_pubkey(key)?;
    req.sign(key, MessageDigest::sha256())?;
    String::from_utf8(req.build().to_pem()?).map_err(|e| EnrollError::Csr(e.to_string()))
}

/// What a pending CSR says, checked: its CN (the device id), its key and
/// the key's fingerprint.
#[derive(Debug)]
pub struct Request {
    pub device: String,
    pub key: PKey<Public>,
    pub fingerprint: String,
}

fn common_name(name: &openssl::x509::X509NameRef) -> String {
    name.entries_by_nid(Nid::COMMONNAME).next().and_then(|e| e.data().to_string().ok()).unwrap_or_default()
}

/// Parses a CSR and checks its self-signature (proof that its sender holds
/// the key), that its CN is a valid device id and that the key is P-256.
pub fn read_csr(pem: &[u8]) -> Result<Request, EnrollError> {
    if pem.len() > MAX_PEM {
        return Err(EnrollError::Csr(format!("larger than {MAX_PEM} bytes")));
    }
    let req = X509Req::from_pem(pem).map_err(|e| EnrollError::Csr(format!("not a PEM CSR: {e}")))?;
    let key = req.public_key()?;
    if !req.verify(&key)? {
        return Err(EnrollError::Csr("its signature does not verify with its key".into()));
    }
    let p256 = key.ec_key().ok().and_then(|k| k.group().curve_name()) == Some(Nid::X9_62_PRIME256V1);
    if !p256 {
        return Err(EnrollError::Csr("the key is not a P-256 key".into()));
    }
    let device = common_name(req.subject_name());
    validate_device_id(&device).map_err(EnrollError::Csr)?;
    let fingerprint = fingerprint(&key)?;
    Ok(Request { device, key, fingerprint })
}

/// Issues the box's client certificate (PEM) for a checked CSR: subject CN
/// = the device id only (nothing else from the request is copied), the
/// fleet's client profile (RFC 5280 §4.2.1.3 digitalSignature, §4.2.1.12
/// clientAuth), a random 128-bit serial, valid from now for `days`.
pub fn sign(req: &Request, ca_cert: &X509, ca_key: &PKeyRef<Private>, days: u32) -> Result<String, EnrollError> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, &req.device)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name.build())?;
    b.set_issuer_name(ca_cert.subject_name())?;
    b.set_pubkey(&req.key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca_cert), None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new().keyid(true).build(&b.x509v3_context(Some(ca_cert), None))?;
    b.append_extension(aki)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    String::from_utf8(b.build().to_pem()?).map_err(|e| EnrollError::Cert(e.to_string()))
}

/// The box's check of an issued certificate: it is for its own key, names
/// it, and chains to the CA it was provisioned with.
pub fn check_issued(cert_pem: &[u8], key: &PKeyRef<Private>, ca_pem: &[u8], device: &str) -> Result<X509, EnrollError> {
    if cert_pem.len() > MAX_PEM {
        return Err(EnrollError::Cert(format!("larger than {MAX_PEM} bytes")));
    }
    let cert = crate::sealed::verify_device_cert(cert_pem, ca_pem, device).map_err(|e| EnrollError::Cert(e.to_string()))?;
    if !cert.public_key()?.public_eq(key) {
        return Err(EnrollError::Cert("it is for another key".into()));
    }
    Ok(cert)
}

#[cfg(test)]
mod tests;
