use openssl::pkey::PKey;
use openssl::x509::X509;
use test_support::pki::Pki;

use super::*;

fn ca(pki: &Pki) -> (X509, PKey<Private>, Vec<u8>) {
    let pem = std::fs::read(pki.ca()).unwrap();
    let key = PKey::private_key_from_pem(&std::fs::read(pki.dir.join("ca.key")).unwrap()).unwrap();
    (X509::from_pem(&pem).unwrap(), key, pem)
}

#[test]
fn a_box_key_is_made_once_and_its_request_signed_into_a_certificate_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (ca_cert, ca_key, ca_pem) = ca(&pki);
    let key_path = dir.path().join("id/box.key");
    let key = load_or_make_key(&key_path).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    // A restart keeps the key, so the fingerprint the technician compares stays.
    let again = load_or_make_key(&key_path).unwrap();
    assert_eq!(fingerprint(&key).unwrap(), fingerprint(&again).unwrap());
    assert!(fingerprint(&key).unwrap().starts_with("SHA256:"));

    let req = read_csr(make_csr(&key, "enc-7").unwrap().as_bytes()).unwrap();
    assert_eq!((req.device.as_str(), req.fingerprint.clone()), ("enc-7", fingerprint(&key).unwrap()));
    let cert = sign(&req, &ca_cert, &ca_key, 30).unwrap();
    check_issued(cert.as_bytes(), &key, &ca_pem, "enc-7").unwrap();
    // openssl itself accepts it as a client certificate of the CA.
    let f = dir.path().join("enc-7.crt");
    std::fs::write(&f, &cert).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(pki.ca())
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_box_refuses_a_certificate_for_another_key_name_or_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let other = tempfile::tempdir().unwrap();
    let foreign = Pki::new(other.path());
    let (ca_cert, ca_key, ca_pem) = ca(&pki);
    let (f_cert, f_key, _) = ca(&foreign);
    let key = load_or_make_key(&dir.path().join("a.key")).unwrap();
    let stranger = load_or_make_key(&dir.path().join("b.key")).unwrap();
    let mine = read_csr(make_csr(&key, "enc-7").unwrap().as_bytes()).unwrap();
    let theirs = read_csr(make_csr(&stranger, "enc-7").unwrap().as_bytes()).unwrap();
    let named_other = read_csr(make_csr(&key, "enc-8").unwrap().as_bytes()).unwrap();

    let e = check_issued(sign(&theirs, &ca_cert, &ca_key, 30).unwrap().as_bytes(), &key, &ca_pem, "enc-7").unwrap_err();
    assert!(e.to_string().contains("another key"), "{e}");
    let e = check_issued(sign(&named_other, &ca_cert, &ca_key, 30).unwrap().as_bytes(), &key, &ca_pem, "enc-7").unwrap_err();
    assert!(e.to_string().contains("CN is `enc-8`"), "{e}");
    let e = check_issued(sign(&mine, &f_cert, &f_key, 30).unwrap().as_bytes(), &key, &ca_pem, "enc-7").unwrap_err();
    assert!(e.to_string().contains("not issued by the fleet CA"), "{e}");
    assert!(check_issued(b"garbage", &key, &ca_pem, "enc-7").is_err());
}

#[test]
fn requests_are_checked_before_anyone_signs_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = load_or_make_key(&dir.path().join("a.key")).unwrap();
    assert!(make_csr(&key, "a/b").is_err());
    assert!(read_csr(b"not a csr").is_err());
    assert!(read_csr(&vec![b'A'; MAX_PEM + 1]).is_err());
    // A request whose signature does not match its key (tampered CN).
    let pem = make_csr(&key, "enc-1").unwrap();
    let req = X509Req::from_pem(pem.as_bytes()).unwrap();
    let mut der = req.to_der().unwrap();
    let at = der.windows(5).position(|w| w == b"enc-1").unwrap();
    der[at + 4] = b'2';
    let tampered = X509Req::from_der(&der).unwrap().to_pem().unwrap();
    let e = read_csr(&tampered).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    // An RSA key is not the fleet's kind.
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "enc-1").unwrap();
    let mut b = X509Req::builder().unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_pubkey(&rsa).unwrap();
    b.sign(&rsa, MessageDigest::sha256()).unwrap();
    assert!(read_csr(&b.build().to_pem().unwrap()).unwrap_err().to_string().contains("P-256"));
    assert_eq!(split_topic(&csr_topic("enc-1")), Some(("enc-1", "csr")));
    assert_eq!(split_topic("fleet/v1/enc-1/status"), None);
}
