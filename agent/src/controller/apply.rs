//! Applying a configuration at the least disruptive depth:
//! - a video bitrate change goes live into the running encoder (x264's
//!   `bitrate` is mutable while playing), with no pipeline restart;
//! - an output that is added, removed or changed is started or stopped on
//!   its own; the other outputs and the encoder never notice;
//! - only input, codec, audio or transport-stream changes rebuild the
//!   pipeline, and the first RTMP output added or the last one removed
//!   (the FLV branch is part of the graph).
//!
//! The raw configuration (JSON, secrets included) is kept as the rollback
//! target and persisted atomically (write, fsync, rename) so a power cut
//! leaves the old or the new file, both valid.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use tracing::{info, warn};

use super::{ControlError, Controller};
use crate::cloud::Cloud;
use crate::config::{AgentConfig, VideoConfig};
use crate::pipeline;

impl Controller {
    /// Applies a validated configuration and persists it. Returns what was
    /// done, for logs and the fleet answer.
    pub(super) fn apply(&mut self, new: AgentConfig, raw: Value) -> Result<Vec<String>, ControlError> {
        let old = self.cfg.clone();
        let mut done = Vec::new();
        let rebuild = needs_rebuild(&old, &new);
        if new.video.encoder != old.video.encoder || new.video.codec != old.video.codec {
            let report = pipeline::encoder::choose_encoder(&new).map_err(|e| ControlError::Encoder(e.to_string()))?;
            let chosen = report.chosen().ok_or_else(|| ControlError::Encoder(report.why()))?;
            (self.kind, self.factory) = (chosen.kind, chosen.factory.to_owned());
            self.report = report;
        }
        *self.live_cfg.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        if new.aws != old.aws {
            // New clients and links: every flow-named output restarts below.
            self.cloud = Arc::new(Cloud::new(&new));
            done.push("aws settings".to_owned());
        }
        self.fan.set_nominal_bps(new.nominal_ts_bps());
        if new.rtp_ssrc() != old.rtp_ssrc() {
            self.fan.set_ssrc(new.rtp_ssrc());
            done.push("rtp ssrc".to_owned());
        }
        if rebuild && self.pipeline.is_some() {
            self.stop_pipeline();
            self.start_pipeline()?;
            done.push("pipeline rebuilt".to_owned());
        } else if new.video.bitrate_kbps != old.video.bitrate_kbps {
            // The rate controller's next word is applied afresh over this.
            self.adapt_applied = None;
            let live = self.pipeline.as_ref().and_then(|p| p.encoder.lock().unwrap_or_else(|e| e.into_inner()).clone());
            match live.map(|enc| pipeline::encoder::set_bitrate(&enc, new.video.bitrate_kbps.get())) {
                Some(Ok(())) | None => done.push(format!("video bitrate {} kbit/s live", new.video.bitrate_kbps.get())),
                Some(Err(e)) => {
                    warn!(error = %e, "live bitrate change refused; rebuilding the pipeline");
                    self.stop_pipeline();
                    self.start_pipeline()?;
                    done.push("pipeline rebuilt for bitrate".to_owned());
                }
            }
        }
        if new.monitor != old.monitor {
            // Thresholds go live; the thumbnail's size and rate come with
            // the next pipeline start (they are elements of the graph).
            if let Some(p) = &self.pipeline {
                p.stats.content.configure(pipeline::monitor::Thresholds::from_config(&new));
            }
            done.push("content monitor thresholds live".to_owned());
        }
        self.cfg = new.clone();
        let names: BTreeSet<String> = old.outputs.iter().chain(new.outputs.iter()).map(|o| o.name().as_str().to_owned()).collect();
        for name in names {
            let before = old.outputs.iter().find(|o| o.name().as_str() == name);
            let after = new.outputs.iter().find(|o| o.name().as_str() == name);
            let on_new_cloud = new.aws != old.aws && after.is_some_and(|o| o.target().flow_arn.is_some());
            if before != after || on_new_cloud {
                self.replace_output(&name, after)?;
                done.push(format!("output {name} {}", if after.is_some() { "restarted" } else { "removed" }));
            }
        }
        // Keep the configured order for status and telemetry.
        let order: Vec<String> = self.cfg.outputs.iter().map(|o| o.name().as_str().to_owned()).collect();
        self.outputs.sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
        self.raw = raw;
        self.persist_raw();
        info!(changes = ?done, "configuration applied");
        Ok(done)
    }

    /// Writes the raw configuration atomically; a failure (disk full) is
    /// kept for the alarm and never stops the stream.
    pub(crate) fn persist_raw(&mut self) {
        let Some(path) = &self.persist else { return };
        let written = serde_json::to_vec_pretty(&self.raw)
            .map_err(std::io::Error::other)
            .and_then(|bytes| fleet::store::write_atomically(path, &bytes));
        self.persist_error = match written {
            Ok(()) => None,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot persist the applied configuration");
                Some(format!("{}: {e}", path.display()))
            }
        };
    }
}

/// Whether going from `old` to `new` changes the pipeline's graph or its
/// elements' fixed settings: input, audio, transport stream, device id,
/// video settings other than the (live) bitrate, and the FLV branch, which
/// exists while there is an RTMP output (the first one added or the last
/// one removed).
fn needs_rebuild(old: &AgentConfig, new: &AgentConfig) -> bool {
    old.input != new.input
        || old.audio != new.audio
        || old.transport_stream != new.transport_stream
        || old.device_id != new.device_id
        || VideoConfig { bitrate_kbps: new.video.bitrate_kbps, ..old.video.clone() } != new.video
        || pipeline::flv::wanted(old) != pipeline::flv::wanted(new)
}

#[cfg(test)]
mod tests {
    use super::needs_rebuild;
    use crate::config::{from_str, AgentConfig};

    const BASE: &str = "device_id = \"apply-01\"\n[input]\nkind = \"test-pattern\"\n[video]\nbitrate_kbps = 2500\n\
        [[outputs]]\nname = \"primary\"\nkind = \"srt\"\naddress = \"127.0.0.1:9001\"\n";
    const RTMP: &str = "[[outputs]]\nname = \"a\"\nkind = \"rtmp\"\nurl = \"rtmp://127.0.0.1:1935/live/a\"\n";
    const RTMP_B: &str = "[[outputs]]\nname = \"b\"\nkind = \"rtmp\"\nurl = \"rtmp://127.0.0.1:1936/live/b\"\n";

    fn cfg(text: &str) -> AgentConfig {
        from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn outputs_and_the_bitrate_never_rebuild_but_the_flv_branch_does() {
        let base = cfg(BASE);
        let with_a = cfg(&format!("{BASE}{RTMP}"));
        let with_ab = cfg(&format!("{BASE}{RTMP}{RTMP_B}"));
        assert!(!needs_rebuild(&base, &cfg(&BASE.replace("2500", "1800"))), "a bitrate change goes live");
        assert!(!needs_rebuild(&base, &cfg(&BASE.replace("9001", "9005"))), "an SRT output change is that output's");
        assert!(needs_rebuild(&base, &with_a), "the first RTMP output needs the FLV branch");
        assert!(needs_rebuild(&with_a, &base), "the last RTMP output gone, the branch goes");
        assert!(!needs_rebuild(&with_a, &with_ab), "a second RTMP output uses the branch there is");
        assert!(needs_rebuild(&base, &cfg(&BASE.replace("apply-01", "apply-02"))));
    }
}
