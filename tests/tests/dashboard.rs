//! `edgectl dashboard` in a real headless Chromium, against mosquitto and
//! the real agent: the page lists the device, its thumbnail decodes, the
//! operator stops and starts the stream from the page (confirm dialog) and
//! the STREAM_STOPPED alarm appears and goes live; a hostile device name
//! stays text. The browser is driven over the DevTools protocol (a minimal
//! WebSocket client below); the screenshot is `target/debug/dashboard.png`.

#![cfg(test)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::{bin_dir, config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, ChildGuard, SrtListenerPeer};
use serde_json::{json, Value};

const DEVICE: &str = "agent-01";
const CONNECT: Duration = Duration::from_secs(20);
const CHROMIUM: &str = "/usr/bin/chromium";
/// A device id that is markup, and an alarm message that is a script.
const HOSTILE_ID: &str = "<img src=x onerror=window.pwned=1>";
const HOSTILE_MSG: &str = "<script>window.pwned=2</script><b onclick=x>bold</b>";

/// `edgectl dashboard` on a port chosen by the kernel; returns the guard
/// and the address it printed.
fn dashboard(broker_port: u16, extra: &[&str]) -> (ChildGuard, String) {
    let mut cmd = Command::new(bin_dir().join("edgectl"));
    cmd.args(["--broker", &format!("127.0.0.1:{broker_port}"), "--insecure-plaintext", "--timeout", "15"])
        .args(["dashboard", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child =
        ChildGuard::spawn("edgectl dashboard", &mut cmd).unwrap_or_else(|e| panic!("cannot run edgectl (cargo build -p fleet): {e}"));
    let stdout = child.take_stdout().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("edgectl dashboard printed no address in 20 s"));
    let addr =
        line.trim().strip_prefix("dashboard on http://").and_then(|s| s.strip_suffix('/')).unwrap_or_else(|| panic!("{line:?}"));
    (child, addr.to_owned())
}

/// One HTTP/1.1 request, `Connection: close`; (status, head, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split =
        all.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head: {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, all[split + 4..].to_vec())
}

/// (width, height) from a baseline/progressive JPEG's SOF, after checking
/// SOI and EOI.
fn jpeg_size(j: &[u8]) -> Option<(u16, u16)> {
    if !(j.starts_with(&[0xFF, 0xD8]) && j.ends_with(&[0xFF, 0xD9])) {
        return None;
    }
    let mut i = 2;
    while i + 9 < j.len() {
        if j[i] != 0xFF {
            return None;
        }
        let m = j[i + 1];
        let len = usize::from(u16::from_be_bytes([j[i + 2], j[i + 3]]));
        if matches!(m, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([j[i + 5], j[i + 6]]);
            let w = u16::from_be_bytes([j[i + 7], j[i + 8]]);
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// A minimal WebSocket client (RFC 6455) for the DevTools protocol: text
/// frames, masked from the client, unmasked from the browser.
struct DevTools {
    s: TcpStream,
    id: u64,
}

impl DevTools {
    fn connect(ws_url: &str) -> DevTools {
        let rest = ws_url.strip_prefix("ws://").unwrap_or_else(|| panic!("{ws_url}"));
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("DevTools {host}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap_or_else(|e| panic!("DevTools handshake: {e}"));
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "DevTools handshake: {head}");
        DevTools { s, id: 0 }
    }

    fn send(&mut self, text: &str) {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        match (u8::try_from(p.len()), u16::try_from(p.len())) {
            (Ok(n), _) if n < 126 => f.push(0x80 | n),
            (_, Ok(n)) => {
                f.push(0x80 | 126);
                f.extend_from_slice(&n.to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(p.len() as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = fastrand::u32(..).to_be_bytes();
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).unwrap();
    }

    fn recv(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap_or_else(|e| panic!("DevTools read: {e}"));
            let mut len = u64::from(h[1] & 0x7F);
            if len == 126 {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from(u16::from_be_bytes(l));
            } else if len == 127 {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from_be_bytes(l);
            }
            let mut p = vec![0u8; usize::try_from(len).unwrap()];
            self.s.read_exact(&mut p).unwrap();
            match h[0] & 0x0F {
                0x8 => panic!("the browser closed the DevTools connection"),
                0x9 | 0xA => continue,
                _ => msg.extend_from_slice(&p),
            }
            if h[0] & 0x80 != 0 {
                return String::from_utf8_lossy(&msg).into_owned();
            }
        }
    }

    /// One DevTools call; events in between are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        self.send(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let v: Value = serde_json::from_str(&self.recv()).unwrap_or_default();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JS expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    fn wait(&mut self, what: &str, timeout: Duration, expr: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            assert!(t.elapsed() < timeout, "{what}: not within {timeout:?}; page:\n{}", self.eval("document.body.innerText"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).map(val).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for c in clean.chunks(4) {
        let n = c.iter().enumerate().fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..c.len()]);
    }
    out
}

/// Headless Chromium on `url` with DevTools on a kernel-chosen port.
fn chromium(profile: &Path, url: &str) -> (ChildGuard, DevTools) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test needs Debian's chromium (apt-get install chromium; scripts/setup.sh installs it)"
    );
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(url)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let guard = ChildGuard::spawn("chromium", &mut cmd).unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let port_file = profile.join("DevToolsActivePort");
    let port: u16 = wait_for("chromium's DevToolsActivePort", Duration::from_secs(20), || {
        std::fs::read_to_string(&port_file).ok()?.lines().next()?.trim().parse().ok()
    });
    let ws = wait_for("the page's DevTools target", Duration::from_secs(20), || {
        let (code, _, body) = http(&format!("127.0.0.1:{port}"), "GET", "/json/list", &[], b"");
        let list: Value = serde_json::from_slice(&body).ok().filter(|_| code == 200)?;
        list.as_array()?
            .iter()
            .find(|t| t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url)))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
    });
    (guard, DevTools::connect(&ws))
}

fn publish_retained(port: u16, topic: &str, payload: &Value) {
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-r", "-t", topic, "-m", &payload.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mosquitto_pub {topic}");
}

/// Clicks the row's button labelled `label`, checks the confirm dialog
/// names `name`, sends; returns when the answer is shown (its text).
fn click_and_confirm(dt: &mut DevTools, label: &str, asks: &str, name: &str) -> (Instant, String) {
    let row = format!("document.querySelector('tr[data-device=\"{DEVICE}\"]')");
    let clicked = dt.eval(&format!("(() => {{ const b = [...{row}.querySelectorAll('td.actions button')].find(b => b.textContent === '{label}'); if (!b) return false; b.click(); return true; }})()"));
    assert_eq!(clicked, true, "no `{label}` button");
    let text = dt.wait(
        "the confirm dialog",
        Duration::from_secs(5),
        "document.getElementById('confirm').open && document.getElementById('confirm-text').textContent",
    );
    assert!(text.as_str().is_some_and(|t| t.contains(asks) && t.contains(DEVICE)), "dialog: {text}");
    // Nothing is sent before the operator confirms.
    assert_eq!(
        dt.eval(&format!(
            "{row}.querySelector('.answer') === null || !{row}.querySelector('.answer').textContent.startsWith('{name}')"
        )),
        true
    );
    let sent = Instant::now();
    dt.eval("document.getElementById('confirm-ok').click()");
    let answer = dt.wait(
        "the command's answer on the page",
        Duration::from_secs(20),
        &format!("(() => {{ const a = {row}.querySelector('.answer'); return a && a.textContent.startsWith('{name}:') && !a.textContent.endsWith('sending…') ? a.className + ' | ' + a.textContent : ''; }})()"),
    );
    (sent, answer.as_str().unwrap_or_default().to_owned())
}

#[test]
fn dashboard_in_headless_chromium_shows_the_real_agent_live() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(port, &mqtt_log);
    let p1 = free_udp_port();
    let _peer = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p.ts"));
    let state = dir.path().join("state");
    let config = config_toml(DEVICE, 1000, &srt_output("primary", p1, 200, None))
        + "\n[monitor]\nthumbnail_every_s = 1\nthumbnail_publish_s = 1\n"
        + &format!(
            "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\ntelemetry_interval_s = 1\n",
            state.display()
        );
    let mut agent = AgentProc::start(dir.path(), &config);
    wait_for("the device online", CONNECT, || std::fs::read_to_string(&mqtt_log).ok()?.contains("\"online\":true").then_some(()));

    // A hostile device beside it: its id is markup, its alarm a script.
    let doc = |extra: Value| {
        let mut v = json!({"v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 1});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    publish_retained(port, &format!("fleet/v1/{HOSTILE_ID}/status"), &doc(json!({"online": true, "state": "alert"})));
    let alarm = json!({"id": "h", "code": "<i>X</i>", "severity": "major", "state": "raised", "source": "s", "message": HOSTILE_MSG});
    publish_retained(port, &format!("fleet/v1/{HOSTILE_ID}/alarms"), &doc(json!({"active": [alarm]})));

    let (_dash, addr) = dashboard(port, &[]);
    let url = format!("http://{addr}/");

    // The thumbnail over HTTP: a JPEG whose SOF gives its size.
    let jpeg = wait_for("a thumbnail at /thumb", Duration::from_secs(20), || {
        let (code, head, body) = http(&addr, "GET", &format!("/thumb/{DEVICE}.jpg"), &[], b"");
        (code == 200 && head.to_ascii_lowercase().contains("content-type: image/jpeg")).then_some(body)
    });
    let (w, h) = jpeg_size(&jpeg).unwrap_or_else(|| panic!("/thumb is not a complete JPEG ({} bytes)", jpeg.len()));
    assert_eq!((w, h), (320, 180), "thumbnail size");
    record("dashboard", "thumbnail bytes", jpeg.len());

    // Refusals: a cross-site POST (no CSRF token), a DNS-rebound Host.
    let body = json!({"device": DEVICE, "name": "stream.stop"}).to_string();
    let (code, _, _) = http(&addr, "POST", "/cmd", &[("Content-Type", "application/json")], body.as_bytes());
    assert_eq!(code, 403, "POST without the CSRF token");
    let (code, _, _) =
        http(&addr, "POST", "/cmd", &[("Content-Type", "application/json"), ("X-CSRF-Token", "guess")], body.as_bytes());
    assert_eq!(code, 403, "POST with a wrong CSRF token");
    let (code, _, _) = http(&addr, "GET", "/", &[("Host", "evil.example")], b"");
    assert_eq!(code, 421, "a non-loopback Host on a loopback dashboard");
    let (code, _, _) = http(&addr, "GET", "/thumb/..%2fetc.jpg", &[], b"");
    assert_eq!(code, 404);
    let (code, head, page) = http(&addr, "GET", "/", &[], b"");
    assert_eq!(code, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");

    // The browser.
    let profile = dir.path().join("chromium");
    let (mut browser, mut dt) = chromium(&profile, &url);
    let row = format!("document.querySelector('tr[data-device=\"{DEVICE}\"]')");
    dt.wait(
        "the page to list the device online",
        Duration::from_secs(15),
        &format!("{row} && {row}.querySelector('.badge.online') !== null"),
    );
    let decoded = dt.wait(
        "the thumbnail decoded by the browser",
        Duration::from_secs(15),
        &format!("{row}.querySelector('img.thumb') && {row}.querySelector('img.thumb').dataset.decoded"),
    );
    assert_eq!(decoded, "320x180", "the <img> the browser decoded");
    let outputs = dt.wait("the output's state and rate", Duration::from_secs(15), &format!("(() => {{ const o = {row}.querySelector('.output'); return o && o.textContent.includes('kbps') ? o.textContent : ''; }})()"));
    assert!(outputs.as_str().is_some_and(|o| o.contains("primary") && o.contains("connected")), "{outputs}");

    // The hostile device is listed as text; nothing of it ran or parsed.
    let hostile = dt.eval(&format!(
        "[...document.querySelectorAll('td.device')].some(td => td.textContent === {})",
        serde_json::to_string(HOSTILE_ID).unwrap()
    ));
    assert_eq!(hostile, true, "the hostile device is listed by its literal id");
    let msg_expr = format!(
        "[...document.querySelectorAll('td.alarms .msg')].some(m => m.textContent === {})",
        serde_json::to_string(HOSTILE_MSG).unwrap()
    );
    assert_eq!(dt.eval(&msg_expr), true, "the hostile alarm message is shown as text");
    assert_eq!(
        dt.eval("document.querySelectorAll('#devices script, #devices img:not(.thumb), #devices i, #devices b[onclick]').length"),
        0,
        "device text became markup"
    );
    assert_eq!(dt.eval("typeof window.pwned"), "undefined", "device text ran as script");

    // Stop the stream from the page: confirm, answer, alarm raised.
    let (sent, answer) = click_and_confirm(&mut dt, "stream stop", "stream.stop", "stream.stop");
    assert!(answer.starts_with("answer ok") && answer.contains("succeeded"), "{answer}");
    let alarm = format!("{row}.querySelector('.alarm[data-code=\"STREAM_STOPPED\"]')");
    dt.wait("STREAM_STOPPED on the page", Duration::from_secs(5), &format!("{alarm} !== null"));
    let raised_ms = sent.elapsed().as_millis();
    record("dashboard", "stream.stop confirmed -> STREAM_STOPPED shown (ms)", raised_ms);
    assert!(dt.eval(&format!("{alarm}.textContent")).as_str().is_some_and(|t| t.contains("warning")));

    let shot = dt.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64_decode(shot["data"].as_str().unwrap_or_default());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is not a PNG");
    let shot_path: PathBuf = bin_dir().join("dashboard.png");
    std::fs::write(&shot_path, &png).unwrap();
    println!("screenshot: {} ({} bytes)", shot_path.display(), png.len());

    // Start it again: the alarm goes.
    let (sent, answer) = click_and_confirm(&mut dt, "stream start", "stream.start", "stream.start");
    assert!(answer.contains("succeeded"), "{answer}");
    dt.wait("STREAM_STOPPED gone from the page", Duration::from_secs(5), &format!("{alarm} === null"));
    let cleared_ms = sent.elapsed().as_millis();
    record("dashboard", "stream.start confirmed -> STREAM_STOPPED gone (ms)", cleared_ms);
    wait_for("the agent streaming again", Duration::from_secs(10), || agent.status().filter(|s| s["streaming"] == true));

    // A config push from the page: an invalid one is refused by the box,
    // the answer names the key, nothing changes.
    let bad = config_toml(DEVICE, 1000, &srt_output("primary", p1, 5, None));
    dt.eval(&format!("document.getElementById('config-text').value = {}", serde_json::to_string(&bad).unwrap()));
    let (_, answer) = click_and_confirm(&mut dt, "push config…", "Push this configuration", "config push");
    assert!(answer.starts_with("answer fail") && answer.contains("rejected") && answer.contains("latency_ms"), "{answer}");

    let _ = dt.call("Browser.close", json!({}));
    let _ = browser.wait_timeout(Duration::from_secs(5));
    agent.stop();
    record("dashboard", "test seconds", t0.elapsed().as_secs());
}

/// Authentication: a non-loopback address without a token is refused; with
/// a token, bearer or session cookie, nothing else.
#[test]
fn dashboard_requires_a_token_off_loopback_and_honours_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    let out = Command::new(bin_dir().join("edgectl"))
        .args(["--broker", &format!("127.0.0.1:{port}"), "--insecure-plaintext", "dashboard", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "non-loopback without --token-file: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file is required"));

    let token = "correct-horse-battery-staple-42";
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (_dash, addr) = dashboard(port, &["--token-file", file.to_str().unwrap()]);
    for path in ["/", "/events", "/thumb/x.jpg"] {
        let (code, _, _) = http(&addr, "GET", path, &[], b"");
        assert_eq!(code, 401, "{path} without credentials");
    }
    let (code, _, _) = http(&addr, "GET", "/", &[("Authorization", "Bearer wrong-token-wrong-token")], b"");
    assert_eq!(code, 401);
    let (code, _, _) = http(&addr, "GET", "/login?token=wrong", &[], b"");
    assert_eq!(code, 401);
    let (code, _, _) = http(&addr, "GET", "/", &[("Authorization", &format!("Bearer {token}"))], b"");
    assert_eq!(code, 200);
    let (code, head, _) = http(&addr, "GET", &format!("/login?token={token}"), &[], b"");
    assert_eq!(code, 303);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_owned();
    let (code, _, _) = http(&addr, "GET", "/", &[("Cookie", &cookie)], b"");
    assert_eq!(code, 200, "the session cookie");
}
