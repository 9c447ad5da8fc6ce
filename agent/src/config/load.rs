//! Loading: TOML text → [`AgentConfig`], with errors a person can act on.
//!
//! serde reports *what* went wrong; `serde_path_to_error` adds *where* in the
//! structure (`outputs[1].latency_ms`); the spanned TOML tree turns that path
//! into a line and column. The path lookup is needed because errors inside
//! internally tagged enums (`kind = "srt"`) come from buffered content that
//! has lost its position in the file.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::AgentConfig;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: {path}: {source}
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid, with the key path and position of the problem.
    #[error("{0}")]
    Invalid(Box<InvalidConfig>),
}

/// One configuration problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    /// The file, when loaded from one.
    pub file: Option<PathBuf>,
    /// Dotted key path, e.g. `outputs[0].latency_ms`; empty for the document.
    pub key: String,
    /// 1-based line and column, when the position is known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
        } else {
            f.write_str("<config>")?;
        }
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": key `{}`: {}", self.key, self.message)
        }
    }
}

/// Reads and parses a configuration file.
pub fn from_file(path: &Path) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    from_str(&text).map_err(|e| match e {
        ConfigError::Invalid(mut inv) => {
            inv.file = Some(path.to_owned());
            ConfigError::Invalid(inv)
        }
        other => other,
    })
}

/// Parses configuration text.
pub fn from_str(text: &str) -> Result<AgentConfig, ConfigError> {
    parse(text, true)
}

/// Parses without the cross-field rules (the caller completes the document
/// first, then calls [`AgentConfig::validate`]).
pub fn from_str_unvalidated(text: &str) -> Result<AgentConfig, ConfigError> {
    parse(text, false)
}

fn parse(text: &str, validate: bool) -> Result<AgentConfig, ConfigError> {
    let tree = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
        invalid(String::new(), line, column, clean_message(e.message()))
    })?;
    let de = toml::de::Deserializer::from(tree.clone());
    let config: AgentConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        // The path stays a list of segments from here on: a key may hold
        // any character (`"z[]]"`, `"a.b"`), so its printed form cannot be
        // parsed back.
        let segments = segments_of(e.path());
        let inner = e.into_inner();
        let raw = inner.message().to_owned();
        let (segments, raw) = refine_tagged(text, &segments).unwrap_or((segments, raw));
        let (segments, span) = match locate(&tree, &segments, &raw) {
            Some((segs, span)) => (segs, Some(span)),
            None => (segments, inner.span()),
        };
        let key = key_string(&segments);
        let message = redact_secret(&segments, clean_message(&raw));
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        invalid(key, line, column, message)
    })?;
    if !validate {
        return Ok(config);
    }
    config.validate().map_err(|(key, message)| {
        // A default value has no position; fall back to its table.
        let segments = parse_path(&key);
        let parent = &segments[..segments.len().saturating_sub(1)];
        let span = locate(&tree, &segments, &message).or_else(|| locate(&tree, parent, "")).map(|(_, s)| s);
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        invalid(key, line, column, message)
    })?;
    Ok(config)
}

/// Keys whose values are secrets: an error about one never shows its value.
const SECRET_KEYS: &[&str] = &["passphrase", "url"];

/// For a secret key, replaces every `` `quoted` `` part of the message,
/// which is where serde puts the offending value (``invalid type: integer
/// `123456789012`, expected ...``). The secret types already word their own
/// errors without the value; this holds for any error serde makes up.
fn redact_secret(segments: &[Segment], message: String) -> String {
    let secret = segments.iter().any(|s| matches!(s, Segment::Key(k) if SECRET_KEYS.contains(&k.as_str())));
    if !secret || !message.contains('`') {
        return message;
    }
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            out.push_str("<redacted>");
        }
    }
    out
}

/// Errors inside an internally tagged table (`kind = "..."`) come out of
/// serde's buffered content, which loses the field path. Deserialising that
/// one table again, as the variant its `kind` names, recovers it.
fn refine_tagged(text: &str, segments: &[Segment]) -> Option<(Vec<Segment>, String)> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let mut value = toml::Value::Table(doc);
    for seg in segments {
        value = match seg {
            Segment::Key(k) => value.as_table()?.get(k)?.clone(),
            Segment::Index(i) => value.as_array()?.get(*i)?.clone(),
        };
    }
    let mut table = value.as_table()?.clone();
    let kind = table.remove("kind")?;
    let body = toml::Value::Table(table);
    let in_outputs = matches!(segments, [Segment::Key(k), Segment::Index(_), ..] if k == "outputs");
    let err = match (in_outputs, kind.as_str()?) {
        (true, "srt") => serde_path_to_error::deserialize::<_, super::SrtOutputConfig>(body).err()?,
        (true, "rtp") => serde_path_to_error::deserialize::<_, super::RtpOutputConfig>(body).err()?,
        (true, "rtp-fec") => serde_path_to_error::deserialize::<_, super::RtpFecOutputConfig>(body).err()?,
        (true, "rtmp") => serde_path_to_error::deserialize::<_, super::RtmpOutputConfig>(body).err()?,
        (true, "rist") => serde_path_to_error::deserialize::<_, super::RistOutputConfig>(body).err()?,
        _ => return None,
    };
    let mut full = segments.to_vec();
    full.extend(segments_of(err.path()));
    Some((full, err.inner().message().to_owned()))
}

fn invalid(key: String, line: Option<usize>, column: Option<usize>, message: String) -> ConfigError {
    ConfigError::Invalid(Box::new(InvalidConfig { file: None, key, line, column, message }))
}

/// Trimmed, with control characters shown as escapes (one line): a message
/// may quote a key or value from the document, which may hold anything.
fn clean_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The segments of a path from `serde_path_to_error`, as they are (never
/// through its printed form, which is ambiguous for keys holding `.` or `[`).
fn segments_of(path: &serde_path_to_error::Path) -> Vec<Segment> {
    path.iter()
        .map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Segment::Index(*index),
            serde_path_to_error::Segment::Map { key } => Segment::Key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Segment::Key(variant.clone()),
            serde_path_to_error::Segment::Unknown => Segment::Key("?".to_owned()),
        })
        .collect()
}

/// The printed key path, e.g. `outputs[0].latency_ms`. A key that is not
/// bare (`A-Za-z0-9_-`) is printed as a quoted TOML key, `"z[]]"`, so the
/// path says exactly which key is meant.
fn key_string(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                    continue;
                }
                out.push('"');
                for c in k.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
        }
    }
    out
}

/// Finds the position of the key at `segments` in the tree. For "unknown
/// field `x`" errors the path may name the table that holds `x`; then `x` is
/// looked up in it and the returned path includes it.
fn locate(tree: &Spanned<DeTable<'_>>, segments: &[Segment], message: &str) -> Option<(Vec<Segment>, std::ops::Range<usize>)> {
    let names_unknown = |name: &str| message.starts_with(&format!("unknown field `{name}`"));
    let unknown = message.starts_with("unknown field `");
    // serde_path_to_error sometimes already ends the path with the unknown
    // key itself; walk only to the table that holds it.
    let path_names_key = unknown && matches!(segments.last(), Some(Segment::Key(l)) if names_unknown(l));
    let walk = if path_names_key { &segments[..segments.len() - 1] } else { segments };
    let mut table: &DeTable<'_> = tree.get_ref();
    let mut span = tree.span();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in walk {
        let next = match (seg, value.map(|v| v.get_ref())) {
            (Segment::Key(k), None) => table.get(k.as_str()),
            (Segment::Key(k), Some(v)) => v.get(k.as_str()),
            (Segment::Index(i), Some(v)) => v.get(*i),
            (Segment::Index(_), None) => None,
        }?;
        span = next.span();
        value = Some(next);
        if let DeValue::Table(t) = next.get_ref() {
            table = t;
        }
    }
    if unknown {
        let (k, _) = table.iter().find(|(k, _)| names_unknown(k.get_ref()))?;
        let mut full = walk.to_vec();
        full.push(Segment::Key(k.get_ref().to_string()));
        return Some((full, k.span()));
    }
    Some((segments.to_vec(), span))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Parses a key path written by this crate's own rules (`outputs[1].name`,
/// from [`AgentConfig::validate`]). Total: any text gives some segments and
/// nothing panics; a part that is not `name[i][j]` stays one key.
fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match split_indices(part) {
            Some((name, indices)) => {
                if !name.is_empty() {
                    out.push(Segment::Key(name.to_owned()));
                }
                out.extend(indices.into_iter().map(Segment::Index));
            }
            None => out.push(Segment::Key(part.to_owned())),
        }
    }
    out
}

/// `name[0][1]` → (`name`, [0, 1]); `name` → (`name`, []); anything else
/// (`z[]]`, `a[1]b`) → None.
fn split_indices(part: &str) -> Option<(&str, Vec<usize>)> {
    let Some((name, mut rest)) = part.split_once('[') else {
        return Some((part, Vec::new()));
    };
    let mut indices = Vec::new();
    loop {
        let (index, after) = rest.split_once(']')?;
        indices.push(index.parse().ok()?);
        if after.is_empty() {
            return Some((name, indices));
        }
        rest = after.strip_prefix('[')?;
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The error `text` must give (tests of every config module).
#[cfg(test)]
pub(crate) fn invalid_for_test(text: &str) -> InvalidConfig {
    match from_str(text) {
        Err(ConfigError::Invalid(inv)) => *inv,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::invalid_for_test as err;
    use super::*;
    use crate::config::{OutputConfig, PacingConfig};

    const GOOD: &str = r#"
device_id = "demo-01"

[input]
kind = "test-pattern"

[[outputs]]
name = "primary"
kind = "srt"
address = "127.0.0.1:9001"
latency_ms = 500
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let cfg = from_str(GOOD).unwrap();
        assert_eq!(cfg.transport_stream.audio_pid.get(), 256);
        assert_eq!(cfg.outputs[0].name().as_str(), "primary");
    }

    #[test]
    fn unknown_key_in_output_names_key_and_line() {
        let e = err(&GOOD.replace("latency_ms = 500", "latnecy_ms = 500"));
        assert_eq!(e.key, "outputs[0].latnecy_ms");
        assert_eq!(e.line, Some(11));
        assert_eq!(e.column, Some(1));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn rtp_pacing_defaults_to_auto_and_a_bad_value_names_the_key() {
        let rtp =
            GOOD.replace("kind = \"srt\"", "kind = \"rtp-fec\"\nfec_columns = 10\nfec_rows = 10").replace("latency_ms = 500", "");
        let pacing = |cfg: &AgentConfig| match &cfg.outputs[0] {
            OutputConfig::RtpFec(o) => o.rtp().pacing,
            other => panic!("{other:?}"),
        };
        assert_eq!(pacing(&from_str(&rtp).unwrap()), PacingConfig::Auto);
        assert_eq!(pacing(&from_str(&format!("{rtp}pacing = \"kernel\"\n")).unwrap()), PacingConfig::Kernel);
        let e = err(&format!("{rtp}pacing = \"fq\"\n"));
        assert_eq!(e.key, "outputs[0].pacing");
        assert!(e.message.contains("auto") && e.message.contains("userspace"), "{}", e.message);
    }

    #[test]
    fn unknown_top_level_key() {
        let e = err(&format!("colour = 1\n{GOOD}"));
        assert_eq!(e.key, "colour");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err(&GOOD.replace("latency_ms = 500", "latency_ms = \"fast\""));
        assert_eq!(e.key, "outputs[0].latency_ms");
        assert_eq!(e.line, Some(11));
        assert_eq!(e.column, Some(14));
    }

    #[test]
    fn out_of_range_value() {
        let e = err(&GOOD.replace("latency_ms = 500", "latency_ms = 5"));
        assert_eq!(e.key, "outputs[0].latency_ms");
        assert!(e.message.contains("20..=15000"), "{}", e.message);
        assert_eq!(e.line, Some(11));
    }

    #[test]
    fn short_passphrase_is_rejected_without_echoing_it() {
        let e = err(&GOOD.replace("latency_ms = 500", "passphrase = \"short\""));
        assert_eq!(e.key, "outputs[0].passphrase");
        assert!(!e.to_string().contains("short\""), "{e}");
    }

    #[test]
    fn adapt_keys_are_checked_with_positions() {
        let ok = from_str(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 800\n")).unwrap();
        let a = ok.adapt.unwrap();
        assert_eq!((a.mode, a.min_bitrate_kbps.get(), a.srt_overhead_percent.get()), (crate::config::AdaptMode::FollowAll, 800, 25));
        let e = err(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 50\n"));
        assert_eq!((e.key.as_str(), e.line), ("adapt.min_bitrate_kbps", Some(14)));
        assert!(e.message.contains("100..=100000"), "{}", e.message);
        let e = err(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 800\nmode = \"follow-worst\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("adapt.mode", Some(15)));
        let e = err(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 800\nsrt_overhead_percent = 200\n"));
        assert_eq!((e.key.as_str(), e.line), ("adapt.srt_overhead_percent", Some(15)));
        let e = err(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 800\nmax_bitrate_kbps = 900\n"));
        assert!(e.message.contains("max_bitrate_kbps"), "{}", e.message);
        assert_eq!(e.line, Some(15));
        // The floor above the ceiling (2500 by default): the floor's line.
        let e = err(&format!("{GOOD}\n[adapt]\nmin_bitrate_kbps = 3000\n"));
        assert_eq!((e.key.as_str(), e.line, e.column), ("adapt.min_bitrate_kbps", Some(14), Some(20)));
        assert!(e.message.contains("above video.bitrate_kbps"), "{}", e.message);
        // x264 forced, CBR by default: it could not follow; named at [adapt].
        let e = err(&format!("{GOOD}\n[video]\nencoder = \"x264\"\n\n[adapt]\nmin_bitrate_kbps = 800\n"));
        assert_eq!((e.key.as_str(), e.line), ("adapt", Some(16)), "{e}");
        assert!(e.message.contains("vbr"), "{}", e.message);
        assert!(from_str(&format!(
            "{GOOD}\n[video]\nencoder = \"x264\"\nrate_control = \"vbr\"\n\n[adapt]\nmin_bitrate_kbps = 800\n"
        ))
        .is_ok());
    }

    #[test]
    fn monitor_keys_are_checked_with_positions() {
        let ok = from_str(&format!("{GOOD}\n[monitor]\nblack_after_s = 2\nsilent_dbfs = -50\n")).unwrap();
        assert_eq!((ok.monitor.black_after_s.get(), ok.monitor.silent_dbfs.get(), ok.monitor.frozen_after_s.get()), (2, -50, 10));
        assert_eq!(from_str(GOOD).unwrap().monitor, crate::config::MonitorConfig::default());
        let e = err(&format!("{GOOD}\n[monitor]\nblack_luma_max = 300\n"));
        assert_eq!((e.key.as_str(), e.line), ("monitor.black_luma_max", Some(14)));
        let e = err(&format!("{GOOD}\n[monitor]\nblack_after_s = 5\nsilent_dbfs = 3\n"));
        assert_eq!((e.key.as_str(), e.line), ("monitor.silent_dbfs", Some(15)));
        let e = err(&format!("{GOOD}\n[monitor]\nfrozen_for_s = 5\n"));
        assert!(e.message.contains("frozen_for_s"), "{}", e.message);
        assert_eq!(e.line, Some(14));
    }

    #[test]
    fn medialive_input_keys_are_checked_with_positions() {
        let out = |body: &str| format!("{GOOD}\n[[outputs]]\nname = \"ml\"\nkind = \"rtp\"\n{body}");
        let ok = from_str(&out("medialive_input_id = \"1234567\"\npipeline = \"B\"\n")).unwrap();
        let t = ok.outputs[1].target();
        assert_eq!((t.medialive_input_id.map(|i| i.as_str()), t.pipeline), (Some("1234567"), Some(edge_cloud::Pipeline::B)));
        let e = err(&out("address = \"127.0.0.1:5000\"\nmedialive_input_id = \"1234567\"\npipeline = \"A\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].medialive_input_id", Some(17)));
        assert!(e.message.contains("one of address, flow_arn or medialive_input_id"), "{}", e.message);
        let e = err(&out("medialive_input_id = \"1234567\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].medialive_input_id", Some(16)));
        assert!(e.message.contains("pipeline"), "{}", e.message);
        let e = err(&out("medialive_input_id = \"1234567\"\npipeline = \"C\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].pipeline", Some(17)));
        let e = err(&out("address = \"127.0.0.1:5000\"\npipeline = \"A\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].pipeline", Some(17)));
        let e = err(&out("medialive_input_id = \"12 34\"\npipeline = \"A\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].medialive_input_id", Some(16)));
        let e = err(&out("medialive_input_id = \"1234567\"\npipeline = \"A\"\nmanage_whitelist = true\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[1].manage_whitelist", Some(18)));
        // An SRT listener fed to an SRT_CALLER input keeps `listen`; the
        // input's region may be named.
        let listener = format!(
            "{GOOD}\n[[outputs]]\nname = \"ml\"\nkind = \"srt\"\nmode = \"listener\"\nlisten = \"0.0.0.0:9001\"\n\
             medialive_input_id = \"1234567\"\npipeline = \"A\"\nregion = \"eu-west-1\"\n"
        );
        assert!(from_str(&listener).is_ok());
        let e = err(&listener.replace("listen = \"0.0.0.0:9001\"\n", ""));
        assert_eq!(e.key, "outputs[1].listen");
    }

    #[test]
    fn cross_field_rules_have_positions() {
        let e = err(&format!("{GOOD}\n[transport_stream]\nvideo_pid = 256\n"));
        assert_eq!(e.key, "transport_stream.video_pid");
        assert_eq!((e.line, e.column), (Some(14), Some(13)));
        assert!(e.message.contains("video_pid and audio_pid"), "{}", e.message);
    }

    #[test]
    fn syntax_error_has_position() {
        let e = err("device_id = \n");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn missing_section_is_named() {
        let e = err("device_id = \"x\"\n[input]\nkind = \"auto\"\n");
        assert!(e.message.contains("missing field `outputs`"), "{}", e.message);
    }

    #[test]
    fn input_errors_name_the_key() {
        let e = err(&GOOD.replace("kind = \"test-pattern\"", "kind = \"v4l2\"\ndevice = \"video 0\""));
        assert_eq!(e.key, "input.device");
        let e = err(&GOOD.replace("kind = \"test-pattern\"", "kind = \"decklink\"\nconection = \"sdi\""));
        assert!(e.key.starts_with("input"), "{}", e.key);
        assert!(e.message.contains("conection"), "{}", e.message);
        assert_eq!(e.line, Some(6));
        let e = err(&format!("{GOOD}\n[audio]\nsource = \"embedded\"\n"));
        assert_eq!(e.key, "audio.source");
        assert!(e.message.contains("decklink"), "{}", e.message);
        let e = err(&format!("{GOOD}\n[audio]\nsource = \"alsa\"\n"));
        assert_eq!(e.key, "audio.alsa_device");
        let ok = from_str(&GOOD.replace("kind = \"test-pattern\"", "kind = \"v4l2\"\ndevice = \"v4l2-pci-0000:03:00.0\"")).unwrap();
        assert_eq!(ok.input.kind_name(), "v4l2");
        let auto = from_str(&GOOD.replace("[input]\nkind = \"test-pattern\"\n", "")).unwrap();
        assert_eq!(auto.input.kind_name(), "auto", "a box with no [input] finds its own");
    }

    const ARN: &str = "arn:aws:mediaconnect:eu-west-1:111122223333:flow:1-abc:venue";

    #[test]
    fn output_by_flow_arn_parses_without_address() {
        let text = GOOD.replace("address = \"127.0.0.1:9001\"", &format!("flow_arn = \"{ARN}\"\nstart_flow_if_standby = true"));
        let cfg = from_str(&format!("{text}\n[aws]\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:5055\"\n")).unwrap();
        let t = cfg.outputs[0].target();
        assert_eq!(t.flow_arn.map(|a| a.region()), Some("eu-west-1"));
        assert!(t.address.is_none() && t.start_flow_if_standby);
    }

    #[test]
    fn address_and_flow_arn_together_name_the_key_and_line() {
        let e = err(&GOOD.replace("latency_ms = 500", &format!("flow_arn = \"{ARN}\"")));
        assert_eq!(e.key, "outputs[0].flow_arn");
        assert_eq!(e.line, Some(11));
        assert!(e.message.contains("either address or flow_arn"), "{}", e.message);
    }

    #[test]
    fn neither_address_nor_flow_arn_is_refused_at_the_output() {
        let e = err(&GOOD.replace("address = \"127.0.0.1:9001\"\n", ""));
        assert_eq!(e.key, "outputs[0].address");
        assert_eq!(e.line, Some(7), "points at the output's [[outputs]] header");
        assert!(e.message.contains("address (host:port) or flow_arn"), "{}", e.message);
    }

    #[test]
    fn flow_options_need_flow_arn_and_bad_arns_are_named() {
        let e = err(&GOOD.replace("latency_ms = 500", "manage_whitelist = true"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].manage_whitelist", Some(11)));
        let e = err(&GOOD.replace("address = \"127.0.0.1:9001\"", "flow_arn = \"arn:aws:s3:::bucket\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].flow_arn", Some(10)));
        assert!(e.message.contains("not a MediaConnect flow ARN"), "{}", e.message);
        let e = err(&format!("{GOOD}\n[aws]\nregion = \"Mars\"\n"));
        assert_eq!(e.key, "aws.region");
        let e = err(&format!("{GOOD}\n[aws]\nsecret_access_key = \"x\"\n"));
        assert_eq!(e.key, "aws.secret_access_key", "credentials are not configuration keys");
    }

    #[test]
    fn flow_arn_example_parses() {
        from_str(include_str!("../../../examples/flow-arn.toml")).unwrap();
    }

    #[test]
    fn medialive_input_id_example_parses() {
        from_str(include_str!("../../../examples/medialive-input-id.toml")).unwrap();
    }

    #[test]
    fn srt_listener_keys_are_checked_with_positions() {
        use crate::config::{OutputConfig, SrtMode};
        let listener = GOOD.replace("address = \"127.0.0.1:9001\"", "mode = \"listener\"\nlisten = \"127.0.0.1:9001\"");
        let cfg = from_str(&listener).unwrap();
        let OutputConfig::Srt(srt) = &cfg.outputs[0] else { panic!("srt output expected") };
        assert_eq!((srt.mode, srt.listen_addr()), (SrtMode::Listener, Some("127.0.0.1:9001".parse().unwrap())));
        let OutputConfig::Srt(caller) = &from_str(GOOD).unwrap().outputs[0] else { panic!("srt output expected") };
        assert_eq!((caller.mode, caller.listen_addr()), (SrtMode::Caller, None), "caller stays the default");

        let e = err(&listener.replace("mode = \"listener\"", "mode = \"broadcast\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].mode", Some(10)), "{e}");
        assert!(["`caller`", "`listener`", "`rendezvous`"].iter().all(|m| e.message.contains(m)), "{}", e.message);
        let e = err(&listener.replace("listen = \"127.0.0.1:9001\"\n", ""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].listen", Some(7)), "points at the output's header: {e}");
        assert!(e.message.contains("needs listen"), "{}", e.message);
        let e = err(&listener.replace("127.0.0.1:9001", "127.0.0.1:0"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].listen", Some(11)), "{e}");
        assert!(e.message.contains("port 0"), "{}", e.message);
        let e = err(&listener.replace("127.0.0.1:9001", "encoder.local:9001"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].listen", Some(11)), "{e}");
        let e = err(&listener.replace("latency_ms = 500", "address = \"127.0.0.1:9002\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].address", Some(12)), "{e}");
        assert!(e.message.contains("mode = \"caller\""), "{}", e.message);
        let e = err(&listener.replace("latency_ms = 500", "bind = \"127.0.0.1:5000\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].bind", Some(12)), "{e}");
        let e = err(&GOOD.replace("latency_ms = 500", "listen = \"127.0.0.1:9002\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].listen", Some(11)), "{e}");
        assert!(e.message.contains("mode = \"listener\""), "{}", e.message);
        let e = err(&listener.replace("latency_ms = 500", "pbkeylen = 32"));
        assert_eq!(e.key, "outputs[0].pbkeylen", "{e}");

        // A written caller has no `mode` key (documents stay as they were);
        // a listener keeps both keys.
        let caller_text = toml::to_string(&from_str(GOOD).unwrap()).unwrap();
        assert!(!caller_text.contains("mode") && !caller_text.contains("listen"), "{caller_text}");
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(from_str(&text).unwrap(), cfg, "{text}");
    }

    #[test]
    fn srt_rendezvous_keys_are_checked_with_positions() {
        use crate::config::{OutputConfig, SrtMode};
        // address on line 10, mode 11, bind 12.
        let rendezvous = GOOD.replace("latency_ms = 500", "mode = \"rendezvous\"\nbind = \"127.0.0.1:9002\"");
        let cfg = from_str(&rendezvous).unwrap();
        let OutputConfig::Srt(srt) = &cfg.outputs[0] else { panic!("srt output expected") };
        assert_eq!((srt.mode, srt.listen_addr()), (SrtMode::Rendezvous, None));
        assert_eq!(srt.bind.map(|b| b.addr()), Some("127.0.0.1:9002".parse().unwrap()));
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(from_str(&text).unwrap(), cfg, "{text}");

        let e = err(&rendezvous.replace("bind = \"127.0.0.1:9002\"", ""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].bind", Some(7)), "points at the output's header: {e}");
        assert!(e.message.contains("needs bind"), "{}", e.message);
        let e = err(&rendezvous.replace("127.0.0.1:9002", "127.0.0.1:0"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].bind", Some(12)), "{e}");
        assert!(e.message.contains("fixed port"), "{}", e.message);
        let e = err(&rendezvous.replace("address = \"127.0.0.1:9001\"\n", ""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].address", Some(7)), "{e}");
        assert!(e.message.contains("needs address"), "{}", e.message);
        let e = err(&rendezvous.replace("address = \"127.0.0.1:9001\"", "medialive_input_id = \"1234567\"\npipeline = \"A\""));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].medialive_input_id", Some(10)), "{e}");
        assert!(e.message.contains("given by address"), "{}", e.message);
        let e = err(&rendezvous.replace("bind = ", "listen = \"127.0.0.1:9003\"\nbind = "));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].listen", Some(12)), "{e}");
    }

    #[test]
    fn srt_listener_example_parses() {
        let cfg = from_str(include_str!("../../../examples/srt-listener.toml")).unwrap();
        let ports: Vec<_> = cfg
            .outputs
            .iter()
            .filter_map(|o| match o {
                crate::config::OutputConfig::Srt(s) => s.listen_addr().map(|a| a.port()),
                _ => None,
            })
            .collect();
        assert_eq!(ports, [9001, 9002]);
    }

    #[test]
    fn key_with_brackets_is_an_error_not_a_panic() {
        // Issue #15: `"z[]]"` made the path parser slice out of bounds.
        for key in ["z[]]", "z[", "]", "[0]", "a.b", "a[1]b", "x[99999999999999999999]", "é[😀]", "", "q\"uote", "t`ick"] {
            let quoted = toml::Value::String(key.to_owned()).to_string();
            let e = err(&format!("{quoted} = 1\n{GOOD}"));
            assert_eq!(e.line, Some(1), "{key:?}: {e}");
            assert!(e.message.starts_with("unknown field"), "{key:?}: {e}");
            let e = err(&GOOD.replace("latency_ms = 500", &format!("{quoted} = 1")));
            assert!(e.key.starts_with("outputs[0]."), "{key:?}: {e}");
            assert_eq!(e.line, Some(11), "{key:?}: {e}");
        }
        let e = err(&format!("\"z[]]\" = 1\n{GOOD}"));
        assert_eq!(e.key, "\"z[]]\"", "a key that is not bare is shown quoted");
        let e = err(&format!("{GOOD}\n[video.\"a.b\"]\nx = 1\n"));
        assert_eq!(e.key, "video.\"a.b\"");
        assert_eq!(e.line, Some(13), "the key in the table header");
    }

    #[test]
    fn parse_path_reads_our_paths_and_never_panics() {
        use Segment::{Index, Key};
        assert_eq!(parse_path("outputs[1].name"), [Key("outputs".into()), Index(1), Key("name".into())]);
        assert_eq!(parse_path("a[0][2]"), [Key("a".into()), Index(0), Index(2)]);
        assert_eq!(parse_path(""), []);
        for odd in ["z[]]", "]", "[", "a[1]b", "[]", "a[", "a]", "x[1][", "..[..]..", "é[😀]"] {
            let segs = parse_path(odd);
            assert!(segs.iter().all(|s| matches!(s, Key(k) if !k.is_empty()) || matches!(s, Index(_))), "{odd}: {segs:?}");
        }
    }

    #[test]
    fn passphrase_of_the_wrong_type_is_not_echoed() {
        // Issue #15: a number where the string belongs came back verbatim in
        // the error (log, retained config/reported).
        for value in ["123456789012", "1234567.8901", "[\"correct-horse-battery\"]", "{ s = \"correct-horse-battery\" }", "true"] {
            let e = err(&GOOD.replace("latency_ms = 500", &format!("passphrase = {value}")));
            assert_eq!(e.key, "outputs[0].passphrase", "{value}: {e}");
            assert_eq!(e.line, Some(11), "{value}: {e}");
            let shown = format!("{e} {e:?}");
            for secret in ["123456789012", "1234567.8901", "8901", "correct-horse", "`true`"] {
                assert!(!shown.contains(secret), "{value}: {shown}");
            }
            assert!(e.message.contains("invalid type"), "{value}: {e}");
        }
    }

    #[test]
    fn secret_key_messages_are_redacted_whatever_serde_says() {
        let segs = parse_path("outputs[0].passphrase");
        let m = redact_secret(&segs, "invalid type: integer `123456789012`, expected a string".into());
        assert_eq!(m, "invalid type: integer <redacted>, expected a string");
        let other = parse_path("outputs[0].latency_ms");
        assert!(redact_secret(&other, "x `5`".into()).contains("`5`"));
    }

    #[test]
    fn unknown_output_kind() {
        let e = err(&GOOD.replace("kind = \"srt\"", "kind = \"zixi\""));
        assert!(e.key.starts_with("outputs[0]"), "{}", e.key);
        assert!(e.message.contains("zixi"), "{}", e.message);
    }
}

/// Hostile input: whatever bytes arrive as a configuration, loading returns
/// a config or an error and never panics. Runs on stable (proptest) with a
/// bounded case count; PROPTEST_CASES raises it for longer local runs. Any
/// failure proptest finds is saved under `proptest-regressions/` and replayed
/// on every run after that.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const SEED: &str = include_str!("../../../examples/dual-srt.toml");

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = from_str(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = from_str(&String::from_utf8_lossy(&bytes));
        }

        /// Mutations of a real configuration reach deep into the types.
        #[test]
        fn mutated_example_never_panics(cuts in proptest::collection::vec((0usize..SEED.len(), 0usize..40, "\\PC{0,12}"), 1..6)) {
            let mut text = SEED.to_owned();
            for (at, len, insert) in cuts {
                let start = at.min(text.len());
                let end = (start + len).min(text.len());
                if text.is_char_boundary(start) && text.is_char_boundary(end) {
                    text.replace_range(start..end, &insert);
                }
            }
            if let Err(ConfigError::Invalid(inv)) = from_str(&text) {
                // Every error says what is wrong.
                prop_assert!(!inv.message.is_empty());
            }
        }

        /// Keys are where a path parser breaks: brackets, dots, quotes,
        /// backslashes, control characters and unicode, as a quoted key at
        /// the top, inside a section or output, as a dotted key
        /// (`"a[" . "]b" = 1`) and as a table header. Issue #15
        /// (`"z[]]" = 1`) is the kind of case this finds.
        #[test]
        fn hostile_keys_never_panic(
            parts in proptest::collection::vec(KEY, 1..4),
            line in 0usize..SEED.lines().count(),
            value in prop_oneof![Just("1"), Just("\"x\""), Just("[1]"), Just("{ a = 1 }"), Just("123456789012")],
        ) {
            let dotted = parts.iter().map(|p| toml::Value::String(p.clone()).to_string()).collect::<Vec<_>>().join(".");
            let entry = format!("{dotted} = {value}");
            let mut lines: Vec<&str> = SEED.lines().collect();
            lines.insert(line, &entry);
            check(&from_str(&lines.join("\n")), &entry)?;
            check(&from_str(&format!("{entry}\n{SEED}")), &entry)?;
            let header = format!("{SEED}\n[{dotted}]\nx = 1\n");
            check(&from_str(&header), &header)?;
        }

        /// The desired-config route: JSON with the same keys, turned into
        /// TOML text the way `fleet_device::parse_desired` does it.
        #[test]
        fn hostile_json_keys_never_panic(key in KEY, nested in any::<bool>(), value in prop_oneof![
            Just(serde_json::json!(1)),
            Just(serde_json::json!("x")),
            Just(serde_json::json!(123456789012_u64)),
            Just(serde_json::json!({"a": [1]})),
        ]) {
            let mut doc = serde_json::json!({
                "device_id": "demo-01",
                "outputs": [{"name": "primary", "kind": "srt", "address": "127.0.0.1:9001"}],
            });
            let target = if nested { &mut doc["outputs"][0] } else { &mut doc };
            if let Some(map) = target.as_object_mut() {
                map.insert(key.clone(), value);
            }
            if let Ok(text) = toml::to_string(&doc) {
                check(&from_str_unvalidated(&text), &key)?;
            }
        }
    }

    /// Key text: anything a path parser might trip on.
    const KEY: &str = "[\\[\\]\\.\"'\\\\` a-z0-9_=#é€😀\\x00-\\x1f\\x7f\\u{9b}-]{0,10}";

    /// An error, if any, says what is wrong on one line and never shows a
    /// secret's value.
    fn check(result: &Result<AgentConfig, ConfigError>, input: &str) -> Result<(), TestCaseError> {
        if let Err(ConfigError::Invalid(inv)) = result {
            prop_assert!(!inv.message.is_empty(), "{input:?}");
            prop_assert!(!inv.message.chars().any(char::is_control), "{input:?}: {inv:?}");
            if inv.key.ends_with("passphrase") {
                prop_assert!(!inv.to_string().contains("123456789012"), "{input:?}: {inv}");
            }
        }
        Ok(())
    }
}
