//! Sealed secrets (`docs/secrets.md`): a passphrase encrypted to one box's
//! fleet certificate, so that the controller, the broker and its retained
//! messages only ever hold ciphertext.
//!
//! The format is standard CMS, base64 of the DER: `AuthEnvelopedData`
//! (RFC 5083) with AES-256-GCM content encryption (RFC 5084), the content
//! key delivered by ephemeral-static ECDH on P-256 (`KeyAgreeRecipientInfo`,
//! RFC 5652 §6.2.2 with RFC 5753 §3.1) and wrapped with AES-256 key wrap.
//! `openssl cms -encrypt -binary -aes-256-gcm -recip device.crt -outform DER`
//! makes the same thing. GCM authenticates the content: a tampered value
//! fails to open instead of yielding a different passphrase (CBC in plain
//! `EnvelopedData` would not notice). The recipient is named by the
//! certificate's issuer and serial number, so a value sealed to another box
//! does not open here.
//!
//! In a configuration document a sealed value replaces the clear string:
//! `"passphrase": {"sealed": "<base64>"}` (TOML: `passphrase = { sealed = "…" }`).
//! [`seal_document`] turns clear values into that form (edgectl, and the
//! agent for its own file's document); [`open_document`] does the reverse
//! on the box and refuses clear ones. Errors never contain the value.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509};
use serde_json::{Map, Value};

/// The key of a sealed value's table.
pub const SEALED: &str = "sealed";
/// Document keys whose values are secrets that travel sealed: SRT and
/// RIST passphrases, and an RTMP output's `url`, whose last path segment is
/// the stream key (anyone holding it can push to that ingest).
pub const SECRET_KEYS: &[&str] = &["passphrase", "url"];
/// Longest base64 text accepted: a CMS structure around a passphrase of at
/// most 79 characters is about 430 characters, around a 2 KB RTMP URL about
/// 3,100; anything larger is not one of ours and is not handed to the parser.
pub const MAX_SEALED_LEN: usize = 4096;

/// Why a value could not be sealed or opened. No variant carries the value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read {what}: {detail}")]
    Read { what: String, detail: String },
    #[error("not base64 text of at most {MAX_SEALED_LEN} characters")]
    Encoding,
    #[error("does not open with this box's key (sealed to another box, altered, or not a sealed value)")]
    Open,
    #[error("the opened value is not UTF-8 text")]
    NotText,
    #[error("device certificate: {0}")]
    Certificate(String),
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// The box's side: its fleet TLS key and certificate (`[fleet.tls]`).
pub struct DeviceKey {
    key: PKey<Private>,
    cert: X509,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<private>)")
    }
}

impl DeviceKey {
    /// Reads the PEM certificate and PKCS#8 key.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<DeviceKey, SealError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| SealError::Read { what: p.display().to_string(), detail: e.to_string() })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let cert = X509::from_pem(&cert_pem).map_err(|e| SealError::Certificate(e.to_string()))?;
        // The key's own parse error could quote nothing secret, but say
        // only which file it was.
        let key = PKey::private_key_from_pem(&key_pem)
            .map_err(|_| SealError::Read { what: key.display().to_string(), detail: "not a PEM private key".into() })?;
        Ok(DeviceKey { key, cert })
    }

    /// The certificate (public), PEM.
    pub fn cert_pem(&self) -> Result<String, SealError> {
        let pem = self.cert.to_pem().map_err(|e| SealError::Certificate(e.to_string()))?;
        String::from_utf8(pem).map_err(|e| SealError::Certificate(e.to_string()))
    }

    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// Opens a sealed value (base64 CMS) addressed to this box.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        open(sealed, &self.key, &self.cert)
    }
}

/// Seals `secret` to `recipient`'s public key; returns base64 text.
pub fn seal(recipient: &X509, secret: &str) -> Result<String, SealError> {
    let mut certs = Stack::new().map_err(|e| SealError::Seal(e.to_string()))?;
    certs.push(recipient.clone()).map_err(|e| SealError::Seal(e.to_string()))?;
    // BINARY: the bytes as they are, no MIME line-ending canonicalisation.
    let cms = CmsContentInfo::encrypt(&certs, secret.as_bytes(), Cipher::aes_256_gcm(), CMSOptions::BINARY)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let der = cms.to_der().map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(openssl::base64::encode_block(&der))
}

/// Opens base64 CMS text with the box's key and certificate.
pub fn open(sealed: &str, key: &PKey<Private>, cert: &X509) -> Result<String, SealError> {
    if sealed.len() > MAX_SEALED_LEN {
        return Err(SealError::Encoding);
    }
    let compact: String = sealed.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = openssl::base64::decode_block(&compact).map_err(|_| SealError::Encoding)?;
    let cms = CmsContentInfo::from_der(&der).map_err(|_| SealError::Open)?;
    let clear = cms.decrypt(key, cert).map_err(|_| SealError::Open)?;
    String::from_utf8(clear).map_err(|_| SealError::NotText)
}

/// Checks that `cert_pem` is a certificate for `device_id` issued by the
/// fleet CA `ca_pem` and valid now, before anything is sealed to it: the
/// certificate comes from the broker, which the sealing side does not trust
/// more than the CA.
pub fn verify_device_cert(cert_pem: &[u8], ca_pem: &[u8], device_id: &str) -> Result<X509, SealError> {
    let bad = |m: String| SealError::Certificate(m);
    let cert = X509::from_pem(cert_pem).map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    let mut store = X509StoreBuilder::new().map_err(|e| bad(e.to_string()))?;
    for ca in X509::stack_from_pem(ca_pem).map_err(|e| bad(format!("fleet CA: {e}")))? {
        store.add_cert(ca).map_err(|e| bad(e.to_string()))?;
    }
    let store = store.build();
    let chain = Stack::new().map_err(|e| bad(e.to_string()))?;
    let mut ctx = X509StoreContext::new().map_err(|e| bad(e.to_string()))?;
    let (ok, why) = ctx
        .init(&store, &cert, &chain, |c| Ok((c.verify_cert()?, c.error().error_string().to_owned())))
        .map_err(|e| bad(e.to_string()))?;
    if !ok {
        return Err(bad(format!("not issued by the fleet CA: {why}")));
    }
    let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next().and_then(|e| e.data().to_string().ok()).unwrap_or_default();
    if cn != device_id {
        return Err(bad(format!("its CN is `{}`, not the device id `{device_id}`", cn.escape_default())));
    }
    Ok(cert)
}

/// Seals every clear value of a [`SECRET_KEYS`] key in `doc` to
/// `recipient`; returns how many were sealed. Values already sealed stay.
pub fn seal_document(doc: &mut Value, recipient: &X509) -> Result<usize, SealError> {
    let mut n = 0;
    walk(doc, &mut String::new(), &mut |_, v| {
        if let Value::String(s) = v {
            *v = sealed_value(seal(recipient, s)?);
            n += 1;
        }
        Ok::<(), SealError>(())
    })?;
    Ok(n)
}

/// Whether `doc` holds a secret in clear (a string at a [`SECRET_KEYS`] key).
pub fn has_clear_secrets(doc: &Value) -> bool {
    let mut doc = doc.clone();
    let mut found = false;
    let _ = walk(&mut doc, &mut String::new(), &mut |_, v| {
        found |= v.is_string();
        Ok::<(), ()>(())
    });
    found
}

/// Whether `doc` holds a sealed secret (a table at a [`SECRET_KEYS`] key).
pub fn has_sealed_secrets(doc: &Value) -> bool {
    let mut doc = doc.clone();
    let mut found = false;
    let _ = walk(&mut doc, &mut String::new(), &mut |_, v| {
        found |= v.is_object();
        Ok::<(), ()>(())
    });
    found
}

/// `{"sealed": text}`.
pub fn sealed_value(text: String) -> Value {
    let mut m = Map::new();
    m.insert(SEALED.to_owned(), Value::String(text));
    Value::Object(m)
}

/// A secret in a desired document that cannot be used: its key path
/// (`outputs[0].passphrase`) and why, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRejection {
    pub key: String,
    pub reason: String,
}

/// Opens every sealed secret of a desired document in place (on the box,
/// in memory only). A clear secret is refused: the controller and the
/// broker must never hold one. `key`: the box's key, `None` when it has
/// none (then any secret is refused).
pub fn open_document(doc: &mut Value, key: Option<&DeviceKey>) -> Result<(), SecretRejection> {
    walk(doc, &mut String::new(), &mut |path, v| {
        let reject = |reason: String| SecretRejection { key: path.to_owned(), reason };
        match v {
            Value::String(_) => Err(reject(format!(
                "{path} is in clear: a pushed configuration must carry it sealed to this box \
                 ({{\"sealed\": \"…\"}}; edgectl config push seals it) so that neither the controller nor the broker holds it"
            ))),
            Value::Object(m) => {
                let text = match m.get(SEALED) {
                    Some(Value::String(t)) if m.len() == 1 => t,
                    _ => return Err(reject(format!("{path}: a sealed value is {{\"sealed\": \"<base64>\"}} and nothing else"))),
                };
                let key = key.ok_or_else(|| reject(format!("{path} is sealed, but this box has no fleet TLS key to open it")))?;
                let clear = key.open(text).map_err(|e| reject(format!("{path}: sealed value {e}")))?;
                *v = Value::String(clear);
                Ok(())
            }
            // Any other type: the typed loader refuses it without quoting it.
            _ => Ok(()),
        }
    })
}

/// Calls `f` with the dotted path (`outputs[0].passphrase`) and value of
/// every [`SECRET_KEYS`] key in `v`.
fn walk<E>(v: &mut Value, path: &mut String, f: &mut impl FnMut(&str, &mut Value) -> Result<(), E>) -> Result<(), E> {
    let len = path.len();
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                if SECRET_KEYS.contains(&k.as_str()) {
                    f(path, child)?;
                } else {
                    walk(child, path, f)?;
                }
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(child, path, f)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
