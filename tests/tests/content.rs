//! Content alarms and thumbnails on the real agent under a real mosquitto:
//! the test pattern made black, still and silent through `input.pattern`
//! raises BLACK_PICTURE, FROZEN_PICTURE and SILENT_AUDIO as fleet events
//! and clears them when the content returns; thumbnails arrive on MQTT as
//! JPEGs within the size bound and lie beside the status file.

#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, ChildGuard, SrtListenerPeer};

const DEVICE: &str = "content-01";
const CONNECT: Duration = Duration::from_secs(20);
const TEST: &str = "content";

fn edgectl(port: u16, args: &[&str]) -> (i32, String) {
    let (code, out, err) = edge_tests::edgectl::run(edge_tests::edgectl::plain(port, 20), args, None);
    (code, out + &err)
}

/// Every thumbnail's arrival (unix time) and size, one line each.
fn record_thumbnails(port: u16, topic: &str, file: &Path) -> ChildGuard {
    let out = std::fs::File::create(file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "0", "-t", topic, "-F", "%U %l"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null());
    ChildGuard::spawn("mosquitto_sub", &mut cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// One thumbnail's bytes, as published.
fn one_thumbnail(port: u16, topic: &str, file: &Path) -> ChildGuard {
    let out = std::fs::File::create(file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "0", "-t", topic, "-C", "1", "-N"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null());
    ChildGuard::spawn("mosquitto_sub", &mut cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Width and height from a baseline JPEG's SOF0 (ITU-T T.81 B.2.2), after
/// checking SOI and EOI.
fn jpeg_size(b: &[u8]) -> Option<(u16, u16)> {
    if !(b.starts_with(&[0xFF, 0xD8]) && b.ends_with(&[0xFF, 0xD9])) {
        return None;
    }
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if marker == 0xC0 {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// How many `event` messages for `code` in `state` the recorder saw.
fn events(log: &Path, code: &str, state: &str) -> usize {
    // Lossy: the recorder also writes the thumbnails' JPEG bytes.
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let (code, state) = (format!("\"code\":\"{code}\""), format!("\"state\":\"{state}\""));
    text.lines().filter(|l| l.contains("/event ") && l.contains(&code) && l.contains(&state)).count()
}

#[test]
fn black_frozen_and_silent_inputs_raise_and_clear_their_alarms_and_thumbnails_flow() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(port, &mqtt_log);
    let topic = format!("fleet/v1/{DEVICE}/thumbnail");
    let thumbs_log = dir.path().join("thumbs.log");
    let _thumbs = record_thumbnails(port, &topic, &thumbs_log);
    let thumb_file = dir.path().join("thumb-mqtt.jpg");
    let _thumb = one_thumbnail(port, &topic, &thumb_file);
    let p1 = free_udp_port();
    let _peer = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p.ts"));
    let state = dir.path().join("state");
    let config = config_toml(DEVICE, 1000, &srt_output("primary", p1, 200, None))
        + "\n[monitor]\nblack_after_s = 1\nfrozen_after_s = 2\nsilent_after_s = 1\nthumbnail_every_s = 1\nthumbnail_publish_s = 2\n"
        + &format!(
            "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\n",
            state.display()
        );
    let agent = AgentProc::start(dir.path(), &config);
    wait_for("the device online", CONNECT, || std::fs::read_to_string(&mqtt_log).ok()?.contains("\"online\":true").then_some(()));

    // Bars with a running clock and a tone: none of the three, even past
    // the longest duration (2 s).
    let content = wait_for("content figures in the status file", Duration::from_secs(10), || {
        let s = agent.status()?;
        s["content"]["audio"].is_object().then_some(s)
    });
    std::thread::sleep(Duration::from_secs(3)); // a span of time is what is checked here
    for code in ["BLACK_PICTURE", "FROZEN_PICTURE", "SILENT_AUDIO"] {
        assert_eq!(events(&mqtt_log, code, "raised"), 0, "{code} on normal bars: {content}\n{}", agent.log());
    }
    let s = agent.status().unwrap();
    println!("normal content: {}", s["content"]);

    let cases: [(&str, &[&str], &[&str], u32); 3] = [
        ("BLACK_PICTURE", &["pattern=\"black\""], &["pattern=\"bars\""], 1),
        ("FROZEN_PICTURE", &["motion=false"], &["motion=true"], 2),
        ("SILENT_AUDIO", &["tone=false"], &["tone=true"], 1),
    ];
    for (code, bad, good, after_s) in cases {
        let mut args = vec!["cmd", DEVICE, "input.pattern"];
        args.extend_from_slice(bad);
        let (rc, out) = edgectl(port, &args);
        assert_eq!(rc, 0, "{out}");
        let t = Instant::now();
        let before = (events(&mqtt_log, code, "raised"), events(&mqtt_log, code, "cleared"));
        let raised = test_support::wait_until(Duration::from_secs(10), || events(&mqtt_log, code, "raised") > before.0);
        assert!(raised, "{code} not raised: {out}\n{}", agent.status().unwrap_or_default()["content"]);
        let raise = t.elapsed();
        let status = agent.status().unwrap();
        let mut args = vec!["cmd", DEVICE, "input.pattern"];
        args.extend_from_slice(good);
        let (rc, out) = edgectl(port, &args);
        assert_eq!(rc, 0, "{out}");
        let t = Instant::now();
        wait_for(&format!("{code} cleared"), Duration::from_secs(10), || {
            (events(&mqtt_log, code, "cleared") > before.1).then_some(())
        });
        let clear = t.elapsed();
        println!("{code}: status while raised {}", status["content"]);
        record(TEST, &format!("{code} raise after the change (threshold {after_s} s), s"), format!("{:.2}", raise.as_secs_f64()));
        record(TEST, &format!("{code} clear after the change, s"), format!("{:.2}", clear.as_secs_f64()));
        assert!(raise >= Duration::from_secs(u64::from(after_s)), "{code} raised before its duration: {raise:?}");
    }
    // Unknown arguments are refused.
    let (rc, out) = edgectl(port, &["cmd", DEVICE, "input.pattern", "bogus=1"]);
    assert_ne!(rc, 0, "{out}");

    // Thumbnails: a JPEG on MQTT within the bound, the file beside status.
    let jpeg = wait_for("a thumbnail on MQTT", Duration::from_secs(10), || {
        let b = std::fs::read(&thumb_file).ok()?;
        jpeg_size(&b).map(|size| (b, size))
    });
    assert_eq!(jpeg.1, (320, 180), "thumbnail size");
    assert!(jpeg.0.len() <= 64 * 1024, "{} bytes", jpeg.0.len());
    let beside = agent.status_file.with_file_name("thumbnail.jpg");
    let local = std::fs::read(&beside).unwrap_or_else(|e| panic!("{}: {e}", beside.display()));
    assert_eq!(jpeg_size(&local), Some((320, 180)));
    let arrivals: Vec<(f64, usize)> = wait_for("three thumbnails on MQTT", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&thumbs_log).ok()?;
        let v: Vec<(f64, usize)> = text
            .lines()
            .filter_map(|l| l.split_once(' ').and_then(|(t, n)| Some((t.parse().ok()?, n.trim().parse().ok()?))))
            .collect();
        (v.len() >= 3).then_some(v)
    });
    let span = arrivals.last().unwrap().0 - arrivals[0].0;
    let cadence = span / (arrivals.len() - 1) as f64;
    let bytes: usize = arrivals.iter().map(|a| a.1).sum();
    let mean = bytes / arrivals.len();
    record(TEST, "thumbnail 320x180 JPEG, bytes (mean)", mean);
    record(TEST, "thumbnail publish cadence (configured 2 s), s", format!("{cadence:.2}"));
    record(TEST, "thumbnail MQTT bytes per minute at the default 10 s cadence", mean * 6);
    assert!((1.5..=3.5).contains(&cadence), "cadence {cadence:.2} s: {arrivals:?}");
}

/// Thumbnails seen by [`record_thumbnails`] so far.
fn thumbnails_seen(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// `thumbnail.request` publishes the newest thumbnail at once, outside a
/// cadence (here an hour) that would otherwise send only the first.
#[test]
fn thumbnail_request_publishes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(port, &mqtt_log);
    let device = "content-02";
    let thumbs_log = dir.path().join("thumbs.log");
    let _thumbs = record_thumbnails(port, &format!("fleet/v1/{device}/thumbnail"), &thumbs_log);
    let p1 = free_udp_port();
    let _peer = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p.ts"));
    let state = dir.path().join("state");
    let config = config_toml(device, 1000, &srt_output("primary", p1, 200, None))
        + "\n[monitor]\nthumbnail_every_s = 1\nthumbnail_publish_s = 3600\n"
        + &format!(
            "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{device}\"\nstate_dir = \"{}\"\n",
            state.display()
        );
    let agent = AgentProc::start(dir.path(), &config);
    wait_for("the device online", CONNECT, || std::fs::read_to_string(&mqtt_log).ok()?.contains("\"online\":true").then_some(()));
    // The first thumbnail goes out as soon as there is one; the next is an
    // hour away.
    wait_for("the first thumbnail", Duration::from_secs(15), || (thumbnails_seen(&thumbs_log) >= 1).then_some(()));
    std::thread::sleep(Duration::from_secs(4)); // a span of time is what is checked here
    assert_eq!(thumbnails_seen(&thumbs_log), 1, "a thumbnail before its cadence\n{}", agent.log());

    let t = Instant::now();
    let (rc, out) = edgectl(port, &["cmd", device, "thumbnail.request"]);
    assert_eq!(rc, 0, "{out}");
    let arrived = test_support::wait_until(Duration::from_secs(5), || thumbnails_seen(&thumbs_log) >= 2);
    let took = t.elapsed();
    assert!(arrived, "no thumbnail after thumbnail.request: {out}\n{}", agent.log());
    record(TEST, "thumbnail.request to thumbnail on MQTT (edgectl round trip included), s", format!("{:.2}", took.as_secs_f64()));
    assert!(took <= Duration::from_secs(3), "thumbnail.request answered after {took:?}");
    std::thread::sleep(Duration::from_secs(2)); // a span of time is what is checked here
    assert_eq!(thumbnails_seen(&thumbs_log), 2, "one request, one thumbnail");

    // No arguments: an unknown one is refused.
    let (rc, out) = edgectl(port, &["cmd", device, "thumbnail.request", "now=true"]);
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("invalid_args"), "{out}");
}
