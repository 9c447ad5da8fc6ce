//! The agent's recent log lines in memory, for `logs.fetch` (`edgectl logs`).
//!
//! # Design
//!
//! [`RingLayer`] sits beside the fmt layer in `main.rs` and sees every
//! event the same filter lets through. Each becomes one [`LogLine`]
//! (number, time, level, target, message and fields on one line) in a
//! [`LogRing`] bounded by [`MAX_LINES`] lines and [`MAX_BYTES`] bytes,
//! whichever is reached first; the oldest lines go. Lines are numbered from
//! 1 without gaps, so a reader that asks for `since_seq` learns from the
//! first number it gets whether lines it wanted were already evicted.
//!
//! The ring is process-wide like the tracing subscriber that feeds it
//! ([`install`], [`global`]): the fleet device reads it without any wiring
//! through the controller.
//!
//! # Secrets
//!
//! The agent keeps passphrases and stream keys out of its log lines by
//! design. As defence in depth every line is also passed through
//! [`redact`] before it is stored: fields named like a secret
//! (`passphrase`, `password`, `*key`, `*token`, `*secret`) are stored as
//! `[redacted]` whatever their value, the same `key=value` / `key: value`
//! patterns in message text are blanked, and so are the stream key in
//! `rtmp://host/app/<key>` and the password in `scheme://user:pass@host`.
//!
//! # Limitations
//!
//! Redaction is by name and shape: a secret logged under an innocent name
//! in free text is not recognised. Over-redaction is accepted (`hotkey=1`
//! shows as `hotkey=[redacted]`). The ring holds minutes, not days, on a
//! busy box: the per-second status lines take most of it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Most lines kept.
pub const MAX_LINES: usize = 2000;
/// Most bytes kept (message, target and timestamp of every line).
pub const MAX_BYTES: usize = 512 * 1024;
/// A longer message is cut to this many bytes (and marked `…`): a single
/// line must always fit an answer.
pub const MAX_LINE_BYTES: usize = 2048;
/// What redacted values are replaced with.
pub const REDACTED: &str = "[redacted]";

/// One log line as `logs.fetch` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// 1, 2, 3 … in the order logged, never reused.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    #[serde(skip)]
    pub unix_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: &'static str,
    pub target: String,
    /// The message and its fields (`key=value`), redacted.
    pub msg: String,
}

impl LogLine {
    /// What the line counts against [`MAX_BYTES`].
    fn weight(&self) -> usize {
        self.ts.len() + self.target.len() + self.msg.len() + 32
    }
}

/// Which lines a `logs.fetch` wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// Lines numbered this or later: the oldest of them first. Without it,
    /// the newest lines.
    pub since_seq: Option<u64>,
    /// Lines logged at this unix millisecond or later.
    pub since_ms: Option<u64>,
    pub max_lines: usize,
}

/// The answer to a `logs.fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogsResult {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// The `since_seq` of the next poll: one above the last line returned,
    /// or, when none was, where the ring will continue.
    pub next_seq: u64,
    /// Lines the query asked for were evicted from the ring before it came.
    pub dropped: bool,
    /// Fewer lines than matched came back to stay under the size limit.
    pub truncated: bool,
    /// More matching lines follow `next_seq` (poll again at once).
    pub more: bool,
}

/// The bounded ring itself (pure: time comes in with each line).
#[derive(Debug)]
pub struct LogRing {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    max_lines: usize,
    max_bytes: usize,
}

impl Default for LogRing {
    fn default() -> Self {
        LogRing::new(MAX_LINES, MAX_BYTES)
    }
}

impl LogRing {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        LogRing { lines: VecDeque::new(), bytes: 0, next_seq: 1, max_lines: max_lines.max(1), max_bytes }
    }

    /// Stores a line (redacted, cut to [`MAX_LINE_BYTES`]), evicting the
    /// oldest ones beyond the bounds; returns its number.
    pub fn push(&mut self, at: SystemTime, level: &'static str, target: &str, msg: &str) -> u64 {
        let mut msg = redact(msg).into_owned();
        if msg.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES - '…'.len_utf8();
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push('…');
        }
        let unix_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let line =
            LogLine { seq: self.next_seq, ts: humantime_ms(unix_ms), unix_ms, level, target: target.chars().take(128).collect(), msg };
        self.next_seq += 1;
        self.bytes += line.weight();
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines || (self.bytes > self.max_bytes && self.lines.len() > 1) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.weight();
            }
        }
        self.next_seq - 1
    }

    /// Lines held now.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes held now (as counted against the bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The lines `q` asks for, at most `budget` bytes of them as JSON.
    pub fn fetch(&self, q: &LogQuery, budget: usize) -> LogsResult {
        let first_held = self.lines.front().map_or(self.next_seq, |l| l.seq);
        let evicted_any = first_held > 1;
        // Lines the query starts from (by number and by time) were evicted.
        let dropped = evicted_any
            && (q.since_seq.is_some() || q.since_ms.is_some())
            && q.since_seq.is_none_or(|s| s < first_held)
            && q.since_ms.is_none_or(|ms| self.lines.front().is_some_and(|l| l.unix_ms > ms));
        let matching: Vec<&LogLine> = self
            .lines
            .iter()
            .filter(|l| q.since_seq.is_none_or(|s| l.seq >= s) && q.since_ms.is_none_or(|ms| l.unix_ms >= ms))
            .collect();
        let max_lines = q.max_lines.max(1);
        let forward = q.since_seq.is_some();
        // Forward (following): the oldest first; otherwise the newest.
        let window: Vec<&LogLine> = if forward {
            matching.iter().take(max_lines).copied().collect()
        } else {
            matching[matching.len().saturating_sub(max_lines)..].to_vec()
        };
        let mut used: usize = 2; // []
        let mut kept: VecDeque<&LogLine> = VecDeque::new();
        let mut truncated = false;
        let order: Box<dyn Iterator<Item = &&LogLine>> = if forward { Box::new(window.iter()) } else { Box::new(window.iter().rev()) };
        for l in order {
            let size = serde_json::to_vec(l).map_or(usize::MAX, |v| v.len()) + 1;
            if used.saturating_add(size) > budget {
                truncated = true;
                break;
            }
            used += size;
            if forward {
                kept.push_back(l);
            } else {
                kept.push_front(l);
            }
        }
        let last = kept.back().map(|l| l.seq);
        let next_seq = match (last, q.since_seq) {
            (Some(s), _) => s + 1,
            (None, Some(s)) => s.max(first_held).min(self.next_seq),
            (None, None) => self.next_seq,
        };
        let more = forward && matching.len() > kept.len();
        LogsResult { lines: kept.into_iter().cloned().collect(), next_seq, dropped, truncated, more }
    }
}

fn humantime_ms(unix_ms: u64) -> String {
    fleet::clock::Now { mono: std::time::Instant::now(), wall: UNIX_EPOCH + Duration::from_millis(unix_ms) }.rfc3339()
}

static RING: OnceLock<Mutex<LogRing>> = OnceLock::new();

/// The process's ring (created on first use) and the layer that feeds it.
pub fn install() -> RingLayer {
    RingLayer { ring: RING.get_or_init(Mutex::default) }
}

/// The process's ring, if [`install`] ran (the `edge-agent` binary).
pub fn global() -> Option<&'static Mutex<LogRing>> {
    RING.get()
}

/// Answers a `logs.fetch` from the process's ring.
pub fn fetch(q: &LogQuery, budget: usize) -> Option<LogsResult> {
    global().map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).fetch(q, budget))
}

/// A tracing layer that stores every event it sees in the ring.
#[derive(Debug, Clone, Copy)]
pub struct RingLayer {
    ring: &'static Mutex<LogRing>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let mut line = v.message;
        if !v.fields.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&v.fields);
        }
        // Nothing here logs, so the lock cannot be re-entered.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.push(SystemTime::now(), meta.level().as_str(), meta.target(), &line);
    }
}

/// The message, then ` key=value` for each field (strings quoted as the
/// fmt layer shows them; secret-named fields blanked).
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl LineVisitor {
    fn field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let name = field.name().strip_prefix("r#").unwrap_or(field.name());
        if is_secret_name(name) {
            let _ = write!(self.fields, "{name}={REDACTED}");
        } else {
            let _ = write!(self.fields, "{name}={value}");
        }
        // Bounded while it is built: a huge field must not cost memory.
        if self.fields.len() > 2 * MAX_LINE_BYTES {
            let mut cut = 2 * MAX_LINE_BYTES;
            while !self.fields.is_char_boundary(cut) {
                cut -= 1;
            }
            self.fields.truncate(cut);
        }
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// Names whose values are secrets: `passphrase`, `password`, `secret`,
/// `token` anywhere, or ending in `key` (`stream_key`, `fleet.tls.key`).
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["passphrase", "password", "passwd", "secret", "token"].iter().any(|w| n.contains(w)) || n.ends_with("key")
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// `s` with secret-looking values replaced by [`REDACTED`]:
/// `passphrase=…`, `"password": "…"`, `token: …`, `?key=…`, the stream key
/// in `rtmp://host/app/KEY` and the password in `scheme://user:PASS@host`.
pub fn redact(s: &str) -> Cow<'_, str> {
    let urls = redact_urls(s);
    match redact_pairs(&urls) {
        Cow::Borrowed(_) => urls,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// Where an unquoted value ends: whitespace or punctuation that closes it.
fn value_end(s: &str, from: usize) -> usize {
    s[from..]
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '&' | ')' | '"' | '\'' | '}' | ']'))
        .map_or(s.len(), |i| from + i)
}

fn redact_pairs(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !is_ident_byte(b[i]) || (i > 0 && is_ident_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident_byte(b[i]) {
            i += 1;
        }
        let name = &s[start..i];
        let mut j = i;
        if b.get(j) == Some(&b'"') {
            j += 1;
        }
        let sep = b.get(j).copied();
        if !matches!(sep, Some(b'=') | Some(b':')) || !is_secret_name(name) {
            continue;
        }
        j += 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        // `key:` followed by nothing, or `http://` after a scheme-like name.
        if j >= b.len() || (sep == Some(b':') && s[j..].starts_with("//")) {
            continue;
        }
        let (vstart, vend) = if b[j] == b'"' || b[j] == b'\'' {
            let q = b[j];
            let mut k = j + 1;
            while k < b.len() && b[k] != q {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            (j + 1, k.min(b.len()))
        } else {
            (j, value_end(s, j))
        };
        if vend > vstart && !s[vstart..].starts_with(REDACTED) {
            out.push_str(&s[copied..vstart]);
            out.push_str(REDACTED);
            copied = vend;
        }
        i = vend.max(i);
    }
    if copied == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

fn redact_urls(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("://") {
        let scheme_start =
            rest[..pos].rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).map_or(0, |i| i + 1);
        let scheme = rest[scheme_start..pos].to_ascii_lowercase();
        let body = pos + 3;
        let end = value_end(rest, body);
        let url = &rest[body..end];
        out.push_str(&rest[..body]);
        let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let colon = authority[..at].find(':').unwrap_or(at);
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        if scheme == "rtmp" || scheme == "rtmps" {
            // /app/KEY…: the application is kept, everything after it is the key.
            let after_app = path.get(1..).and_then(|p| p.find('/')).map(|i| i + 2);
            match after_app {
                Some(k) if k < path.len() => {
                    out.push_str(&path[..k]);
                    out.push_str(REDACTED);
                }
                _ => out.push_str(path),
            }
        } else {
            out.push_str(path);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_447_241 + s)
    }

    fn q(since_seq: Option<u64>, since_ms: Option<u64>, max_lines: usize) -> LogQuery {
        LogQuery { since_seq, since_ms, max_lines }
    }

    fn seqs(r: &LogsResult) -> Vec<u64> {
        r.lines.iter().map(|l| l.seq).collect()
    }

    #[test]
    fn lines_are_numbered_timestamped_and_bounded_by_count() {
        let mut ring = LogRing::new(3, MAX_BYTES);
        for i in 0..5 {
            assert_eq!(ring.push(at(i), "INFO", "agent", &format!("line {i}")), i + 1);
        }
        assert_eq!(ring.len(), 3);
        let r = ring.fetch(&q(None, None, 10), usize::MAX);
        assert_eq!(seqs(&r), [3, 4, 5]);
        assert_eq!(r.lines[0].ts, "2026-12-05T05:07:23.000Z");
        assert_eq!((r.lines[0].level, r.lines[0].target.as_str(), r.lines[0].msg.as_str()), ("INFO", "agent", "line 2"));
        assert_eq!((r.next_seq, r.dropped, r.truncated, r.more), (6, false, false, false));
    }

    #[test]
    fn the_byte_bound_evicts_and_long_lines_are_cut() {
        let mut ring = LogRing::new(MAX_LINES, 10_000);
        for i in 0..100 {
            ring.push(at(i), "WARN", "agent", &"x".repeat(900));
        }
        assert!(ring.bytes() <= 10_000, "{}", ring.bytes());
        assert_eq!(ring.len(), 10_000 / (900 + 24 + 5 + 32));
        ring.push(at(100), "WARN", "agent", &"é".repeat(MAX_LINE_BYTES));
        let r = ring.fetch(&q(Some(101), None, 1), usize::MAX);
        assert!(r.lines[0].msg.len() <= MAX_LINE_BYTES && r.lines[0].msg.ends_with('…'), "{}", r.lines[0].msg.len());
        // The defaults: 2000 lines or 512 KiB, whichever is smaller.
        let mut ring = LogRing::default();
        for i in 0..3000 {
            ring.push(at(i), "INFO", "agent", "short");
        }
        assert_eq!(ring.len(), MAX_LINES);
        for i in 0..3000 {
            ring.push(at(i), "INFO", "agent", &"y".repeat(1000));
        }
        assert!(ring.bytes() <= MAX_BYTES && ring.len() < MAX_LINES, "{} {}", ring.bytes(), ring.len());
    }

    #[test]
    fn since_seq_pages_forward_and_reports_evicted_lines() {
        let mut ring = LogRing::new(10, MAX_BYTES);
        for i in 0..15 {
            ring.push(at(i), "INFO", "agent", &format!("line {i}"));
        }
        // Held: 6..=15.
        let r = ring.fetch(&q(Some(8), None, 3), usize::MAX);
        assert_eq!((seqs(&r), r.next_seq, r.more, r.dropped), (vec![8, 9, 10], 11, true, false));
        let r = ring.fetch(&q(Some(r.next_seq), None, 100), usize::MAX);
        assert_eq!((seqs(&r), r.next_seq, r.more), ((11..=15).collect(), 16, false));
        // Nothing new: the same next_seq again, nothing dropped.
        let r = ring.fetch(&q(Some(16), None, 100), usize::MAX);
        assert_eq!((r.lines.len(), r.next_seq, r.dropped), (0, 16, false));
        // Asked from before the oldest line held: dropped.
        let r = ring.fetch(&q(Some(2), None, 100), usize::MAX);
        assert_eq!((seqs(&r).first(), r.dropped), (Some(&6), true));
        // A next_seq from the future (another process) is not trusted.
        assert_eq!(ring.fetch(&q(Some(999), None, 5), usize::MAX).next_seq, 16);
    }

    #[test]
    fn since_time_filters_and_the_newest_lines_come_without_since_seq() {
        let mut ring = LogRing::new(100, MAX_BYTES);
        for i in 0..20 {
            ring.push(at(i), "INFO", "agent", &format!("line {i}"));
        }
        let since = (1_796_447_241 + 15) * 1000;
        let r = ring.fetch(&q(None, Some(since), 100), usize::MAX);
        assert_eq!(seqs(&r), (16..=20).collect::<Vec<_>>());
        let r = ring.fetch(&q(None, None, 4), usize::MAX);
        assert_eq!((seqs(&r), r.next_seq), (vec![17, 18, 19, 20], 21));
        let r = ring.fetch(&q(Some(3), Some(since), 2), usize::MAX);
        assert_eq!((seqs(&r), r.more), (vec![16, 17], true));
        assert!(!ring.fetch(&q(None, Some(0), 100), usize::MAX).dropped, "nothing evicted yet");
        let mut small = LogRing::new(5, MAX_BYTES);
        for i in 0..10 {
            small.push(at(i), "INFO", "agent", "x");
        }
        let t = |s: u64| Some((1_796_447_241 + s) * 1000);
        assert!(small.fetch(&q(Some(0), t(2), 100), usize::MAX).dropped, "lines from second 2 are gone");
        assert!(!small.fetch(&q(Some(0), t(7), 100), usize::MAX).dropped, "lines from second 7 are all held");
        assert!(small.fetch(&q(None, t(0), 100), usize::MAX).dropped);
    }

    #[test]
    fn answers_fit_the_budget_and_say_so() {
        let mut ring = LogRing::default();
        for i in 0..1000 {
            ring.push(at(i), "INFO", "agent::controller", &format!("{i} {}", "z".repeat(300)));
        }
        let budget = fleet::command::LOGS_RESULT_BUDGET;
        let tail = ring.fetch(&q(None, None, 1000), budget);
        let size = serde_json::to_vec(&tail.lines).unwrap().len();
        assert!(size <= budget && size > budget - 500, "{size}");
        assert!(tail.truncated && !tail.more);
        assert_eq!(tail.lines.last().unwrap().seq, 1000, "the newest lines are kept");
        let fwd = ring.fetch(&q(Some(1), None, 1000), budget);
        assert!(fwd.truncated && fwd.more);
        assert_eq!(fwd.lines[0].seq, 1, "the oldest lines are kept when paging forward");
        assert_eq!(fwd.next_seq, fwd.lines.last().unwrap().seq + 1);
        // The whole cmd/res with the longest id stays under the message cap.
        let doc = serde_json::json!({"v":1,"ts":"2026-12-05T05:07:21.000Z","seq":u64::MAX,"bdseq":u64::MAX,
            "id":"i".repeat(64),"state":"succeeded","detail":"","duplicate":false,"result":fwd});
        assert!(serde_json::to_vec(&doc).unwrap().len() <= fleet::limits::MAX_MESSAGE);
    }

    #[test]
    fn secret_pairs_are_redacted() {
        let cases = [
            ("srt passphrase=correct-horse-battery set", "srt passphrase=[redacted] set"),
            ("password=\"hunter2 x\" user=bob", "password=\"[redacted]\" user=bob"),
            ("{\"passphrase\":\"abc\",\"latency\":200}", "{\"passphrase\":\"[redacted]\",\"latency\":200}"),
            ("token: eyJhbGciOi, next", "token: [redacted], next"),
            ("stream_key=live_123 aws_secret_access_key=AKIA/x", "stream_key=[redacted] aws_secret_access_key=[redacted]"),
            ("srt://h:9000?streamid=a&passphrase=s3cret&latency=200", "srt://h:9000?streamid=a&passphrase=[redacted]&latency=200"),
            ("fleet.tls.key=/etc/k.pem secret='x y'", "fleet.tls.key=[redacted] secret='[redacted]'"),
            ("Key=A token=\"a\\\"b\" z", "Key=[redacted] token=\"[redacted]\" z"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), want, "{raw}");
        }
        for plain in
            ["keyframe_interval=50 pbkeylen=16", "error: connection refused", "key=", "passphrase: ", "bitrate_kbps=2500 ts 1.2 Mb/s"]
        {
            assert!(matches!(redact(plain), Cow::Borrowed(_)), "{plain}: {}", redact(plain));
        }
        assert_eq!(redact(REDACTED), REDACTED);
    }

    #[test]
    fn stream_keys_in_urls_and_url_passwords_are_redacted() {
        let cases = [
            (
                "publishing to rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl now",
                "publishing to rtmp://a.rtmp.youtube.com/live2/[redacted] now",
            ),
            ("url=\"RTMPS://x:443/app/key/more?x=1\"", "url=\"RTMPS://x:443/app/[redacted]\""),
            ("rtmp://host/app and rtmp://host/", "rtmp://host/app and rtmp://host/"),
            ("https://user:pa55@example.com/path", "https://user:[redacted]@example.com/path"),
            ("http://example.com/a/b", "http://example.com/a/b"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), want, "{raw}");
        }
    }

    #[test]
    fn the_layer_stores_events_with_fields_and_redacts_secret_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let ring: &'static Mutex<LogRing> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::registry().with(RingLayer { ring });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(output = "primary", passphrase = "correct-horse", n = 3, "output connected");
            tracing::warn!(target: "status", "publishing to rtmp://h/live/sk_123");
        });
        let r = ring.lock().unwrap().fetch(&q(None, None, 10), usize::MAX);
        assert_eq!(r.lines.len(), 2);
        assert_eq!(r.lines[0].msg, "output connected output=\"primary\" passphrase=[redacted] n=3");
        assert_eq!((r.lines[1].level, r.lines[1].target.as_str()), ("WARN", "status"));
        assert_eq!(r.lines[1].msg, "publishing to rtmp://h/live/[redacted]");
    }
}
