//! `edgectl dashboard --listen ADDR`: a live web page of the fleet.
//!
//! One MQTT subscription (QoS 0, like `watch`) feeds a [`model::Model`];
//! every change goes to the browsers as a Server-Sent Event carrying the
//! device's card (JSON). Routes:
//!
//! ```text
//! GET  /                  the page (embedded; inline CSS and JS, no CDN)
//! GET  /events            SSE: `snapshot` (all cards), then `device` (one)
//! GET  /thumb/DEVICE.jpg  the newest thumbnail, image/jpeg
//! POST /cmd               {"device","name","args"}: run a command
//! POST /config            {"device","config","confirm"}: push a config
//! GET  /login?token=T     sets the session cookie (when a token is set)
//! ```
//!
//! A command or config push opens its own short broker connection, as
//! `edgectl cmd` does, so a slow device never stalls the live view.

mod auth;
mod model;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use fleet::clock::unix_ms_now;
use fleet::topics;
use fleet::wire::{self, CommandRequest, CommandResponse, ConfigStatus, DesiredConfig, ReportedConfig};
use fleet::Command;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::time::Instant;

use crate::cmd::wait_report;
use crate::conn::{BrokerArgs, Ctl};
use crate::{show, Exit};

const PAGE: &str = include_str!("dashboard.html");
/// Largest POST body (a config is a few KiB).
const MAX_BODY: usize = 64 * 1024;
/// Open HTTP connections; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 128;
/// Live `/events` streams.
const MAX_STREAMS: usize = 32;
/// Commands and pushes in flight at once.
const MAX_ACTIONS: usize = 4;
/// Updates queued for all streams; a stream that falls further behind gets
/// a fresh snapshot instead.
const UPDATES: usize = 1024;

#[derive(Debug, clap::Args)]
pub struct DashArgs {
    /// Address to serve on, e.g. 127.0.0.1:8080 (port 0: any; the address
    /// is printed). Anything but loopback needs --token-file.
    #[arg(long)]
    listen: SocketAddr,
    /// File holding the operators' token (16+ characters): every request
    /// then needs `Authorization: Bearer TOKEN` or the cookie from
    /// `/login?token=TOKEN`.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

struct App {
    broker: BrokerArgs,
    auth: auth::Auth,
    model: Mutex<model::Model>,
    updates: broadcast::Sender<Bytes>,
    streams: Arc<Semaphore>,
    actions: Semaphore,
}

impl App {
    fn model(&self) -> std::sync::MutexGuard<'_, model::Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

pub async fn run(broker: &BrokerArgs, a: &DashArgs) -> Result<Exit> {
    let auth = match auth::Auth::new(a.listen, a.token_file.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("edgectl: {e:#}");
            return Ok(Exit::Usage);
        }
    };
    // Fail early on a wrong broker or TLS setting.
    let ctl = Ctl::connect(broker).await?;
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    let local = listener.local_addr()?;
    if auth.required() {
        eprintln!("edgectl: authentication required: Authorization: Bearer TOKEN, or open /login?token=TOKEN once");
    } else {
        eprintln!("edgectl: no authentication (loopback only: anyone on this machine can use the dashboard)");
    }
    println!("dashboard on http://{local}/");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let (updates, _) = broadcast::channel(UPDATES);
    let app = Arc::new(App {
        broker: broker.clone(),
        auth,
        model: Mutex::new(model::Model::default()),
        updates,
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        actions: Semaphore::new(MAX_ACTIONS),
    });
    tokio::spawn(subscribe(app.clone(), ctl));
    let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = conns.clone().acquire_owned().await?;
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: wait, don't spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(64 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = conn.await;
            drop(permit);
        });
    }
    Ok(Exit::Ok)
}

/// The live subscription; reconnects (retained state comes back) if the
/// broker goes away.
async fn subscribe(app: Arc<App>, first: Ctl) {
    let filters: Vec<String> =
        [topics::STATUS, topics::INFO, topics::STATE, topics::ALARMS, topics::TELEMETRY, topics::THUMBNAIL, topics::CONFIG_REPORTED]
            .iter()
            .map(|s| topics::topic("+", s))
            .collect();
    let mut ctl = Some(first);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut c = match ctl.take() {
            Some(c) => c,
            None => match Ctl::connect(&app.broker).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("dashboard: {e:#}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
        };
        // QoS 0 as in `watch`: a view must never make the broker queue.
        if let Err(e) = c.subscribe_qos(&filters, rumqttc::QoS::AtMostOnce).await {
            tracing::warn!("dashboard: subscribe: {e:#}");
            continue;
        }
        backoff = Duration::from_secs(1);
        let _ = app.updates.send(sse("broker", &json!({"connected": true})));
        loop {
            match c.next(Instant::now() + Duration::from_secs(3600)).await {
                Ok(Some(m)) => {
                    let card = {
                        let mut model = app.model();
                        model.apply(&m.topic, &m.payload, unix_ms_now()).and_then(|d| model.card(&d))
                    };
                    if let Some(card) = card {
                        let _ = app.updates.send(sse("device", &card));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("dashboard: {e:#}");
                    let _ = app.updates.send(sse("broker", &json!({"connected": false, "error": format!("{e:#}")})));
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, "application/json", v.to_string())
}

fn header_str(req: &Request<Incoming>, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let host = header_str(&req, header::HOST);
    if !app.auth.host_ok(host) {
        return text(StatusCode::MISDIRECTED_REQUEST, "this dashboard answers to a loopback Host only");
    }
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path == "/login" {
        if !app.auth.required() {
            return redirect();
        }
        let token = req.uri().query().unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or_default();
        return match app.auth.login(token) {
            Some(cookie) => {
                let mut r = redirect();
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            None => text(StatusCode::UNAUTHORIZED, "wrong token"),
        };
    }
    if !app.auth.allows(header_str(&req, header::AUTHORIZATION), header_str(&req, header::COOKIE)) {
        let mut r =
            text(StatusCode::UNAUTHORIZED, "authentication required: open /login?token=TOKEN, or send Authorization: Bearer TOKEN");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/") => page(app),
        (Method::GET, "/events") => events(app),
        (Method::GET, p) if p.starts_with("/thumb/") => thumbnail(app, p),
        (Method::POST, "/cmd" | "/config") => {
            let csrf = header_str(&req, auth::CSRF_HEADER);
            if !app.auth.csrf_ok(csrf, header_str(&req, header::ORIGIN), host) {
                return text(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
            }
            if !header_str(&req, header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")) {
                return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json expected");
            }
            // Bounded in size and in time (a slow sender holds a connection).
            let body = match tokio::time::timeout(Duration::from_secs(10), Limited::new(req.into_body(), MAX_BODY).collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or broken"),
                Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body not received within 10 s"),
            };
            let Ok(_permit) = app.actions.try_acquire() else {
                return text(StatusCode::TOO_MANY_REQUESTS, "too many commands in flight; try again");
            };
            let (status, v) = if path == "/cmd" { post_cmd(app, &body).await } else { post_config(app, &body).await };
            json_response(status, &v)
        }
        (Method::GET | Method::POST, _) => text(StatusCode::NOT_FOUND, "not found"),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

fn redirect() -> Response<Body> {
    let mut r = text(StatusCode::SEE_OTHER, "see /");
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
    r
}

fn page(app: &App) -> Response<Body> {
    let html = PAGE.replace("{{CSRF}}", &app.auth.csrf).replace("{{NONCE}}", &app.auth.nonce);
    let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", html);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{}'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        app.auth.nonce
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn thumbnail(app: &App, path: &str) -> Response<Body> {
    let id = path.strip_prefix("/thumb/").and_then(|p| p.strip_suffix(".jpg")).unwrap_or_default();
    if topics::validate_device_id(id).is_err() {
        return text(StatusCode::NOT_FOUND, "no such device");
    }
    match app.model().devices.get(id).and_then(|d| d.thumb.clone()) {
        Some(jpeg) => respond(StatusCode::OK, "image/jpeg", jpeg),
        None => text(StatusCode::NOT_FOUND, "no thumbnail yet"),
    }
}

/// An SSE body fed by a channel; ends when the feeding task stops.
struct Stream(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn events(app: &Arc<App>) -> Response<Body> {
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many live views open");
    };
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let mut updates = app.updates.subscribe();
    let app2 = app.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let snapshot = |app: &App| sse("snapshot", &app.model().snapshot());
        if tx.send(snapshot(&app2)).await.is_err() {
            return;
        }
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        loop {
            let next = tokio::select! {
                u = updates.recv() => match u {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(_)) => snapshot(&app2),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
                () = tx.closed() => return,
            };
            if tx.send(next).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(BoxBody::new(Stream(rx)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CmdBody {
    device: String,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    device: String,
    /// TOML, or JSON when it starts with `{`.
    config: String,
    #[serde(default)]
    confirm: bool,
}

fn answer(ok: bool, text: impl Into<String>) -> (StatusCode, Value) {
    (StatusCode::OK, json!({"ok": ok, "text": text.into()}))
}

fn bad(msg: impl std::fmt::Display) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({"ok": false, "text": msg.to_string()}))
}

async fn post_cmd(app: &App, body: &[u8]) -> (StatusCode, Value) {
    let b: CmdBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if let Err(e) = topics::validate_device_id(&b.device) {
        return bad(e);
    }
    let command = match Command::parse(&b.name, &b.args.unwrap_or_else(|| json!({}))) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let deadline = Instant::now() + app.broker.timeout();
    let r = async {
        let mut ctl = Ctl::connect(&app.broker).await?;
        let r = send(&mut ctl, &b.device, &command, deadline).await;
        ctl.close().await;
        r
    }
    .await;
    match r {
        Ok(Some(r)) => answer(r.state == wire::CommandState::Succeeded, show::command(&b.device, command.name(), &r)),
        Ok(None) => answer(false, format!("no answer from {} within {} s", b.device, app.broker.timeout)),
        Err(e) => (StatusCode::BAD_GATEWAY, json!({"ok": false, "text": format!("{e:#}")})),
    }
}

/// Publishes `command` and waits for its terminal answer (as `edgectl cmd`).
async fn send(ctl: &mut Ctl, device: &str, command: &Command, deadline: Instant) -> Result<Option<CommandResponse>> {
    let res_topic = topics::topic(device, topics::CMD_RES);
    ctl.subscribe(std::slice::from_ref(&res_topic)).await?;
    ctl.sync(deadline).await?;
    let id = crate::cmd::new_id();
    let left = u64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(0);
    let req = CommandRequest {
        id: id.clone(),
        name: command.name().to_owned(),
        args: command.args(),
        expires_at: Some(unix_ms_now() + left),
        timeout_s: Some(30),
    };
    ctl.publish(&topics::topic(device, topics::CMD_REQ), serde_json::to_vec(&req)?, false, deadline).await?;
    while let Some(m) = ctl.next(deadline).await? {
        if m.topic != res_topic {
            continue;
        }
        match wire::parse::<CommandResponse>(&m.payload) {
            Ok(r) if r.id == id && r.state.is_terminal() => return Ok(Some(r)),
            _ => {}
        }
    }
    Ok(None)
}

fn parse_config(text: &str) -> Result<Value> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).context("JSON");
    }
    let t: toml::Value = toml::from_str(text).context("TOML")?;
    Ok(serde_json::to_value(t)?)
}

async fn post_config(app: &App, body: &[u8]) -> (StatusCode, Value) {
    let b: ConfigBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if let Err(e) = topics::validate_device_id(&b.device) {
        return bad(e);
    }
    let config = match parse_config(&b.config) {
        Ok(c) => c,
        Err(e) => return bad(format!("{e:#}")),
    };
    let deadline = Instant::now() + app.broker.timeout();
    let r = async {
        let mut ctl = Ctl::connect(&app.broker).await?;
        // As `edgectl config push`: clear passphrases are sealed to the box
        // before anything is published (docs/secrets.md).
        let mut config = config;
        let target = crate::seal::SealTarget::default();
        let r = match crate::seal::seal_document(&mut ctl, &app.broker, &b.device, &target, &mut config).await {
            Ok(_) => push(&mut ctl, &b.device, config, b.confirm, deadline).await,
            Err(e) => Err(e),
        };
        ctl.close().await;
        r
    }
    .await;
    match r {
        Ok(Ok(r)) => {
            answer(matches!(r.status, ConfigStatus::Applied | ConfigStatus::PendingConfirm), show::config_report(&b.device, &r))
        }
        Ok(Err(msg)) => answer(false, msg),
        Err(e) => (StatusCode::BAD_GATEWAY, json!({"ok": false, "text": format!("{e:#}")})),
    }
}

/// Publishes the next version and waits for the report (as `edgectl
/// config push [--confirm]`). `Ok(Err(_))`: no answer in time.
async fn push(ctl: &mut Ctl, device: &str, config: Value, confirm: bool, deadline: Instant) -> Result<Result<ReportedConfig, String>> {
    let reported = topics::topic(device, topics::CONFIG_REPORTED);
    let desired = topics::topic(device, topics::CONFIG_DESIRED);
    ctl.subscribe(&[reported.clone(), desired.clone()]).await?;
    let mut highest = 0;
    for m in ctl.sync(deadline).await? {
        let v = if m.topic == desired {
            serde_json::from_slice::<Value>(&m.payload).ok().and_then(|v| v.get("version").and_then(Value::as_u64))
        } else {
            wire::parse::<ReportedConfig>(&m.payload).ok().map(|r| r.av)
        };
        highest = highest.max(v.unwrap_or(0));
    }
    let version = highest + 1;
    let doc = DesiredConfig { version, confirm_within_s: confirm.then_some(60), config };
    ctl.publish(&desired, serde_json::to_vec(&doc)?, true, deadline).await?;
    let Some(mut r) = wait_report(ctl, &reported, version, None, deadline).await? else {
        return Ok(Err(format!("pushed version {version}; no report from {device} in time")));
    };
    if r.status == ConfigStatus::PendingConfirm && confirm {
        let cmd = Command::ConfigConfirm { version };
        match send(ctl, device, &cmd, deadline).await? {
            Some(c) if c.state == wire::CommandState::Succeeded => {}
            Some(c) => return Ok(Err(show::command(device, cmd.name(), &c))),
            None => return Ok(Err(format!("no answer to config.confirm from {device} in time"))),
        }
        match wait_report(ctl, &reported, version, Some(ConfigStatus::PendingConfirm), deadline).await? {
            Some(r2) => r = r2,
            None => return Ok(Err(format!("confirmed, but no report of version {version} in time"))),
        }
    }
    Ok(Ok(r))
}
