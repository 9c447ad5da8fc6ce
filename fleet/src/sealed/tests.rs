use std::process::{Command, Stdio};

use serde_json::json;
use test_support::pki::Pki;

use super::*;

const SECRET: &str = "correct-horse-battery-staple";

fn pki() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    (dir, pki)
}

fn device(pki: &Pki, id: &str) -> DeviceKey {
    let c = pki.client(id);
    DeviceKey::load(&c.cert, &c.key).unwrap()
}

#[test]
fn a_sealed_value_opens_on_its_box_only() {
    let (_d, pki) = pki();
    let (a, b) = (device(&pki, "enc-a"), device(&pki, "enc-b"));
    let sealed = seal(a.cert(), SECRET).unwrap();
    assert!(!sealed.contains(SECRET));
    assert_eq!(a.open(&sealed).unwrap(), SECRET);
    // Sealed to enc-a: enc-b's key does not open it, with a's certificate
    // (wrong key) nor with its own (no matching recipient).
    assert!(matches!(open(&sealed, &b.key, &b.cert), Err(SealError::Open)));
    assert!(matches!(open(&sealed, &b.key, &a.cert), Err(SealError::Open)));
    // Two seals of the same secret differ (fresh ephemeral key and IV).
    assert_ne!(seal(a.cert(), SECRET).unwrap(), sealed);
}

#[test]
fn a_tampered_or_garbage_value_does_not_open() {
    let (_d, pki) = pki();
    let a = device(&pki, "enc-a");
    let der = openssl::base64::decode_block(&seal(a.cert(), SECRET).unwrap()).unwrap();
    // Every byte flipped in turn: GCM's tag (RFC 5084) or the structure
    // catches each one; never a different passphrase.
    for i in 0..der.len() {
        let mut t = der.clone();
        t[i] ^= 0x01;
        match a.open(&openssl::base64::encode_block(&t)) {
            Err(_) => {}
            Ok(s) => assert_eq!(s, SECRET, "byte {i} flipped opened to another value"),
        }
    }
    let tail = der.len() - 20;
    let mut t = der.clone();
    t[tail] ^= 0x80;
    assert!(matches!(a.open(&openssl::base64::encode_block(&t)), Err(SealError::Open)));
    assert!(matches!(a.open("not base64 !!"), Err(SealError::Encoding)));
    assert!(matches!(a.open("aGVsbG8gd29ybGQ="), Err(SealError::Open)));
    assert!(matches!(a.open(""), Err(SealError::Open | SealError::Encoding)));
    assert!(matches!(a.open(&"A".repeat(MAX_SEALED_LEN + 1)), Err(SealError::Encoding)));
}

/// The format is the standard one: what `openssl cms` makes opens here.
#[test]
fn openssl_cms_output_opens() {
    let (_d, pki) = pki();
    let c = pki.client("enc-a");
    let out = Command::new("openssl")
        .args(["cms", "-encrypt", "-binary", "-aes-256-gcm", "-outform", "DER", "-recip"])
        .arg(&c.cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(SECRET.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let a = DeviceKey::load(&c.cert, &c.key).unwrap();
    assert_eq!(a.open(&openssl::base64::encode_block(&out.stdout)).unwrap(), SECRET);
}

#[test]
fn device_certificates_must_chain_to_the_fleet_ca_and_name_the_device() {
    let (_d, pki) = pki();
    let (_d2, other) = self::pki();
    let ca = std::fs::read(pki.ca()).unwrap();
    let cert = std::fs::read(pki.client("enc-a").cert).unwrap();
    verify_device_cert(&cert, &ca, "enc-a").unwrap();
    let e = verify_device_cert(&cert, &ca, "enc-b").unwrap_err().to_string();
    assert!(e.contains("CN is `enc-a`"), "{e}");
    let foreign = std::fs::read(other.client("enc-a").cert).unwrap();
    let e = verify_device_cert(&foreign, &ca, "enc-a").unwrap_err().to_string();
    assert!(e.contains("not issued by the fleet CA"), "{e}");
}

/// An RTMP output's URL carries its stream key: it travels sealed like a
/// passphrase, and a clear one in a desired document is refused.
#[test]
fn an_rtmp_url_is_sealed_like_a_passphrase() {
    let (_d, pki) = pki();
    let a = device(&pki, "enc-a");
    let url = format!("rtmp://ingest.example.net:1935/live/{SECRET}");
    let clear = json!({"outputs": [{"kind": "rtmp", "name": "ml-a", "url": url}]});
    let mut doc = clear.clone();
    assert_eq!(seal_document(&mut doc, a.cert()).unwrap(), 1);
    assert!(!doc.to_string().contains(SECRET), "{doc}");
    let mut opened = doc.clone();
    open_document(&mut opened, Some(&a)).unwrap();
    assert_eq!(opened, clear);
    let e = open_document(&mut clear.clone(), Some(&a)).unwrap_err();
    assert_eq!(e.key, "outputs[0].url");
    assert!(!e.reason.contains(SECRET), "{}", e.reason);
    // A URL of 2,000 characters still seals within the accepted length.
    let long = json!({"url": format!("rtmp://h/live/{}", "k".repeat(1985))});
    let mut doc = long.clone();
    seal_document(&mut doc, a.cert()).unwrap();
    open_document(&mut doc, Some(&a)).unwrap();
    assert_eq!(doc, long);
}

#[test]
fn documents_are_sealed_and_opened_by_key_path() {
    let (_d, pki) = pki();
    let (a, b) = (device(&pki, "enc-a"), device(&pki, "enc-b"));
    let clear = json!({"outputs": [{"kind": "srt", "name": "p"}, {"kind": "srt", "passphrase": SECRET}]});
    let mut doc = clear.clone();
    assert_eq!(seal_document(&mut doc, a.cert()).unwrap(), 1);
    assert!(!doc.to_string().contains(SECRET));
    assert!(doc["outputs"][1]["passphrase"]["sealed"].is_string());
    // Sealing again leaves sealed values alone.
    let again = doc.clone();
    assert_eq!(seal_document(&mut doc, a.cert()).unwrap(), 0);
    assert_eq!(doc, again);

    let mut opened = doc.clone();
    open_document(&mut opened, Some(&a)).unwrap();
    assert_eq!(opened, clear);

    let mut other = doc.clone();
    let e = open_document(&mut other, Some(&b)).unwrap_err();
    assert_eq!(e.key, "outputs[1].passphrase");
    assert!(e.reason.contains("does not open with this box's key"), "{}", e.reason);

    let e = open_document(&mut doc.clone(), None).unwrap_err();
    assert!(e.reason.contains("no fleet TLS key"), "{}", e.reason);
}

#[test]
fn a_clear_or_malformed_secret_in_a_desired_document_is_refused_without_echo() {
    let (_d, pki) = pki();
    let a = device(&pki, "enc-a");
    let mut doc = json!({"outputs": [{"kind": "srt", "passphrase": SECRET}]});
    let e = open_document(&mut doc, Some(&a)).unwrap_err();
    assert_eq!(e.key, "outputs[0].passphrase");
    assert!(e.reason.contains("in clear"), "{}", e.reason);
    assert!(!e.reason.contains(SECRET));
    for bad in [json!({"sealed": 1}), json!({"sealed": "x", "clear": SECRET}), json!({})] {
        let mut doc = json!({"outputs": [{"passphrase": bad}]});
        let e = open_document(&mut doc, Some(&a)).unwrap_err();
        assert!(e.reason.contains("nothing else") && !e.reason.contains(SECRET), "{}", e.reason);
    }
    let mut doc = json!({"outputs": [{"passphrase": {"sealed": format!("{SECRET}==")}}]});
    let e = open_document(&mut doc, Some(&a)).unwrap_err();
    assert!(!e.reason.contains(SECRET), "{}", e.reason);
}
