//! H.264 and HEVC encoder discovery: preference order plus a one-frame
//! trial encode.
//!
//! A GStreamer factory being registered only proves a plugin is installed:
//! `vah264enc` is registered on any machine with libva, `nvh264enc` needs a
//! driver, and `avenc_h264_omx` never works on a PC. So each candidate in
//! preference order is confirmed by encoding one small frame before it is
//! chosen (`docs/gstreamer.md#encoders`).

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Serialize;

use crate::gpu::{HwTree, Reason, Unavailable};
use crate::HalError;

/// Encoder families in the order the agent prefers them: dedicated hardware
/// first (lowest CPU, leaves headroom for the outputs), software x264 last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// VA-API (Intel/AMD iGPU) through the `va` plugin.
    Va,
    /// NVIDIA NVENC through the `nvcodec` plugin.
    Nvenc,
    /// Intel Quick Sync through the `qsv` plugin.
    Qsv,
    /// A V4L2 memory-to-memory encoder block (ARM SoCs).
    V4l2M2m,
    /// Software x264 (H.264): always works, costs CPU.
    X264,
    /// Software x265 (HEVC): works everywhere, costs about 4× x264's CPU;
    /// only sensible for small pictures or as a last resort.
    X265,
}

/// The video codec an encoder must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    #[default]
    H264,
    /// HEVC: half the bitrate for the same picture where the box has a
    /// hardware encoder for it; MediaLive accepts it in MPEG-TS inputs.
    H265,
}

impl EncoderKind {
    /// Every family, most preferred first.
    pub const PREFERENCE: [EncoderKind; 6] =
        [EncoderKind::Va, EncoderKind::Nvenc, EncoderKind::Qsv, EncoderKind::V4l2M2m, EncoderKind::X264, EncoderKind::X265];

    /// GStreamer factories that implement this family for H.264, preferred
    /// first.
    pub fn factories(self) -> &'static [&'static str] {
        self.factories_for(Codec::H264)
    }

    /// GStreamer factories of this family for `codec` (empty: the family
    /// cannot produce it).
    pub fn factories_for(self, codec: Codec) -> &'static [&'static str] {
        match (self, codec) {
            (EncoderKind::Va, Codec::H264) => &["vah264enc", "vah264lpenc"],
            (EncoderKind::Va, Codec::H265) => &["vah265enc", "vah265lpenc"],
            (EncoderKind::Nvenc, Codec::H264) => &["nvh264enc", "nvcudah264enc", "nvautogpuh264enc"],
            (EncoderKind::Nvenc, Codec::H265) => &["nvh265enc", "nvcudah265enc", "nvautogpuh265enc"],
            (EncoderKind::Qsv, Codec::H264) => &["qsvh264enc", "msdkh264enc"],
            (EncoderKind::Qsv, Codec::H265) => &["qsvh265enc", "msdkh265enc"],
            (EncoderKind::V4l2M2m, Codec::H264) => &["v4l2h264enc"],
            (EncoderKind::V4l2M2m, Codec::H265) => &["v4l2h265enc"],
            (EncoderKind::X264, Codec::H264) => &["x264enc"],
            (EncoderKind::X265, Codec::H265) => &["x265enc"],
            (EncoderKind::X264, Codec::H265) | (EncoderKind::X265, Codec::H264) => &[],
        }
    }

    /// Name used in configuration (`video.encoder`) and reports.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Va => "va",
            EncoderKind::Nvenc => "nvenc",
            EncoderKind::Qsv => "qsv",
            EncoderKind::V4l2M2m => "v4l2m2m",
            EncoderKind::X264 => "x264",
            EncoderKind::X265 => "x265",
        }
    }

    /// The raw format the family takes without an extra conversion: the
    /// software encoders want planar I420, hardware blocks NV12.
    pub fn raw_format(self) -> &'static str {
        match self {
            EncoderKind::X264 | EncoderKind::X265 => "I420",
            _ => "NV12",
        }
    }

    /// The family a factory belongs to.
    pub fn of_factory(factory: &str) -> Option<EncoderKind> {
        Self::PREFERENCE
            .into_iter()
            .find(|k| k.factories_for(Codec::H264).contains(&factory) || k.factories_for(Codec::H265).contains(&factory))
    }

    /// Parses a configuration name; `None` for unknown names.
    pub fn from_name(name: &str) -> Option<EncoderKind> {
        Self::PREFERENCE.into_iter().find(|k| k.name() == name)
    }
}

/// What the probe found out about one factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum CandidateStatus {
    /// Passed the trial encode and was picked.
    Chosen,
    /// Passed the trial encode but a more preferred encoder was picked.
    Usable,
    /// Not installed (no such GStreamer factory).
    NotInstalled,
    /// Installed but the trial encode failed, with the error.
    TrialFailed(String),
    /// Not tried because the configuration forces another encoder.
    NotRequested,
}

/// One row of the probe report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub kind: EncoderKind,
    pub factory: &'static str,
    #[serde(flatten)]
    pub status: CandidateStatus,
    /// For `not_installed` and `trial_failed`: why, as precisely as the box
    /// can tell (no device node, driver not loaded, VA driver missing,
    /// element missing, trial failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
}

/// The outcome of [`probe`]: every candidate, and which one won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the chosen encoder, if any.
    #[serde(skip)]
    pub chosen: Option<usize>,
}

impl ProbeReport {
    /// The chosen candidate, if any encoder works.
    pub fn chosen(&self) -> Option<&Candidate> {
        self.chosen.and_then(|i| self.candidates.get(i))
    }

    /// One sentence explaining the choice, for logs and fleet inventory.
    pub fn why(&self) -> String {
        let Some(chosen) = self.chosen() else {
            return "no encoder passed its trial encode".to_owned();
        };
        let skipped: Vec<String> = self
            .candidates
            .iter()
            .take_while(|c| c.factory != chosen.factory)
            .filter_map(|c| match &c.status {
                CandidateStatus::NotInstalled => Some(match &c.unavailable {
                    Some(u) if u.reason != Reason::ElementMissing => format!("{} unavailable ({})", c.factory, u.detail),
                    _ => format!("{} not installed", c.factory),
                }),
                CandidateStatus::TrialFailed(e) => Some(format!("{} failed trial ({e})", c.factory)),
                _ => None,
            })
            .collect();
        if skipped.is_empty() {
            format!("{} is the most preferred working encoder", chosen.factory)
        } else {
            format!("{} chosen; {}", chosen.factory, skipped.join("; "))
        }
    }
}

/// The narrow seam between the probe logic and GStreamer, so the preference
/// and reporting logic is tested with a fake.
pub trait EncoderBackend {
    /// Whether a factory of this name is registered.
    fn is_installed(&self, factory: &str) -> bool;
    /// Encodes one small frame; `Err` carries the reason.
    fn trial_encode(&self, factory: &str) -> Result<(), String>;
    /// What below GStreamer stands in the way of `kind` (device node,
    /// kernel driver, VA driver); `None` when nothing is seen. Only
    /// explains a failure, never decides.
    fn hardware(&self, _kind: EncoderKind) -> Option<Unavailable> {
        None
    }
}

/// Which encoder the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderRequest {
    /// Best working encoder in [`EncoderKind::PREFERENCE`] order.
    Auto,
    /// Only this family; fail if it does not work.
    Force(EncoderKind),
}

/// Walks the preference order, trial-encodes every installed candidate (so
/// the report says what else would have worked) and picks the first that works.
pub fn probe(backend: &dyn EncoderBackend, request: EncoderRequest) -> ProbeReport {
    probe_codec(backend, request, Codec::H264)
}

/// [`probe`] for a given codec: only families that can produce it are
/// listed.
pub fn probe_codec(backend: &dyn EncoderBackend, request: EncoderRequest, codec: Codec) -> ProbeReport {
    let mut candidates = Vec::new();
    let mut chosen = None;
    for kind in EncoderKind::PREFERENCE {
        for &factory in kind.factories_for(codec) {
            let requested = match request {
                EncoderRequest::Auto => true,
                EncoderRequest::Force(k) => k == kind,
            };
            let status = if !requested {
                CandidateStatus::NotRequested
            } else if !backend.is_installed(factory) {
                CandidateStatus::NotInstalled
            } else {
                match backend.trial_encode(factory) {
                    Ok(()) if chosen.is_none() => {
                        chosen = Some(candidates.len());
                        CandidateStatus::Chosen
                    }
                    Ok(()) => CandidateStatus::Usable,
                    Err(e) => CandidateStatus::TrialFailed(e),
                }
            };
            let unavailable = match &status {
                CandidateStatus::NotInstalled => Some(backend.hardware(kind).unwrap_or_else(|| Unavailable {
                    reason: Reason::ElementMissing,
                    detail: format!("GStreamer has no {factory} element"),
                })),
                CandidateStatus::TrialFailed(e) => {
                    Some(backend.hardware(kind).unwrap_or_else(|| Unavailable { reason: Reason::TrialFailed, detail: e.clone() }))
                }
                _ => None,
            };
            candidates.push(Candidate { kind, factory, status, unavailable });
        }
    }
    ProbeReport { candidates, chosen }
}

/// Like [`probe`], but an error when nothing usable was found.
pub fn choose(backend: &dyn EncoderBackend, request: EncoderRequest) -> Result<ProbeReport, HalError> {
    choose_codec(backend, request, Codec::H264)
}

/// [`choose`] for a given codec.
pub fn choose_codec(backend: &dyn EncoderBackend, request: EncoderRequest, codec: Codec) -> Result<ProbeReport, HalError> {
    let report = probe_codec(backend, request, codec);
    if report.chosen.is_some() {
        return Ok(report);
    }
    match request {
        EncoderRequest::Auto => Err(HalError::NoEncoder(report.why())),
        EncoderRequest::Force(kind) => Err(HalError::ForcedEncoderUnusable {
            name: kind.name().to_owned(),
            reason: report
                .candidates
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| format!("{}: {:?}", c.factory, c.status))
                .reduce(|a, b| format!("{a}; {b}"))
                .unwrap_or_else(|| format!("{} cannot encode {codec:?}", kind.name())),
        }),
    }
}

/// The real backend: GStreamer's registry and a one-frame pipeline.
#[derive(Debug)]
pub struct GstEncoderBackend {
    /// How long a trial encode may take before it counts as failed.
    pub trial_timeout: Duration,
    /// Where [`EncoderBackend::hardware`] looks.
    pub hw: HwTree,
}

impl Default for GstEncoderBackend {
    fn default() -> Self {
        GstEncoderBackend { trial_timeout: Duration::from_secs(5), hw: HwTree::system() }
    }
}

impl GstEncoderBackend {
    /// Initialises GStreamer (idempotent) and returns the backend.
    pub fn new() -> Result<Self, HalError> {
        gst::init().map_err(|e| HalError::GstInit(e.to_string()))?;
        Ok(Self::default())
    }
}

impl EncoderBackend for GstEncoderBackend {
    fn is_installed(&self, factory: &str) -> bool {
        gst::ElementFactory::find(factory).is_some()
    }

    fn trial_encode(&self, factory: &str) -> Result<(), String> {
        trial_encode(factory, self.trial_timeout)
    }

    fn hardware(&self, kind: EncoderKind) -> Option<Unavailable> {
        self.hw.check(kind)
    }
}

/// videotestsrc (one frame in the family's raw format) → encoder →
/// appsink; success when an encoded buffer reaches the sink before the
/// timeout.
fn trial_encode(factory: &str, timeout: Duration) -> Result<(), String> {
    let pipeline = gst::Pipeline::new();
    let make = |name: &str| gst::ElementFactory::make(name).build().map_err(|e| e.to_string());
    let src = gst::ElementFactory::make("videotestsrc").property("num-buffers", 1i32).build().map_err(|e| e.to_string())?;
    let convert = make("videoconvert")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", EncoderKind::of_factory(factory).map_or("NV12", EncoderKind::raw_format))
        .field("width", 320i32)
        .field("height", 240i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter").property("caps", &caps).build().map_err(|e| e.to_string())?;
    let enc = make(factory)?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([&src, &convert, &filter, &enc, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    gst::Element::link_many([&src, &convert, &filter, &enc, sink.upcast_ref()]).map_err(|e| format!("cannot link: {e}"))?;
    let result = run_trial(&pipeline, &sink, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run_trial(pipeline: &gst::Pipeline, sink: &gst_app::AppSink, timeout: Duration) -> Result<(), String> {
    pipeline.set_state(gst::State::Playing).map_err(|_| first_bus_error(pipeline).unwrap_or_else(|| "refused to start".to_owned()))?;
    let timeout_ct = gst::ClockTime::from_nseconds(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
    match sink.try_pull_sample(timeout_ct) {
        Some(_) => Ok(()),
        None => Err(first_bus_error(pipeline).unwrap_or_else(|| "no frame within the timeout".to_owned())),
    }
}

fn first_bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(err) = msg.view() {
            return Some(err.error().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Hand-written fake: which factories exist and what their trial does.
    struct FakeBackend(HashMap<&'static str, Result<(), String>>);

    impl EncoderBackend for FakeBackend {
        fn is_installed(&self, factory: &str) -> bool {
            self.0.contains_key(factory)
        }
        fn trial_encode(&self, factory: &str) -> Result<(), String> {
            self.0.get(factory).cloned().unwrap_or(Err("missing".into()))
        }
    }

    /// The fake's registry and trials over a fake sysfs/dev tree.
    struct FakeHw(FakeBackend, HwTree);

    impl EncoderBackend for FakeHw {
        fn is_installed(&self, factory: &str) -> bool {
            self.0.is_installed(factory)
        }
        fn trial_encode(&self, factory: &str) -> Result<(), String> {
            self.0.trial_encode(factory)
        }
        fn hardware(&self, kind: EncoderKind) -> Option<Unavailable> {
            self.1.check(kind)
        }
    }

    fn reason_of(report: &ProbeReport, factory: &str) -> Option<Reason> {
        report.candidates.iter().find(|c| c.factory == factory).and_then(|c| c.unavailable.as_ref()).map(|u| u.reason)
    }

    #[test]
    fn each_unavailable_encoder_says_why() {
        // A box like the QEMU VM: no GPU, no render node, no V4L2 node.
        let dir = tempfile::tempdir().unwrap();
        let hw = HwTree::new(dir.path().join("sys"), dir.path().join("dev"), vec![dir.path().join("va")]);
        let fake = FakeHw(FakeBackend(HashMap::from([("qsvh264enc", Err("no device".to_owned())), ("x264enc", Ok(()))])), hw.clone());
        let report = probe(&fake, EncoderRequest::Auto);
        assert_eq!(reason_of(&report, "vah264enc"), Some(Reason::NoDeviceNode));
        assert_eq!(reason_of(&report, "nvh264enc"), Some(Reason::NoDeviceNode));
        assert_eq!(reason_of(&report, "v4l2h264enc"), Some(Reason::NoDeviceNode));
        // Installed but failing: the hardware reason wins over the error.
        assert_eq!(reason_of(&report, "qsvh264enc"), Some(Reason::NoDeviceNode));
        assert_eq!(reason_of(&report, "x264enc"), None, "the chosen one has nothing to explain");
        assert!(report.why().contains("vah264enc unavailable (no /dev/dri/renderD* node"), "{}", report.why());
        let json = serde_json::to_value(&report.candidates[0]).unwrap();
        assert_eq!(json["status"], "not_installed");
        assert_eq!(json["unavailable"]["reason"], "no_device_node", "{json}");

        // Nothing below GStreamer in the way: the element or the trial is.
        let plain = FakeBackend(HashMap::from([("x265enc", Err("boom".to_owned()))]));
        let report = probe_codec(&plain, EncoderRequest::Auto, Codec::H265);
        assert_eq!(reason_of(&report, "x265enc"), Some(Reason::TrialFailed));
        let report = probe(&plain, EncoderRequest::Auto);
        assert_eq!(reason_of(&report, "x264enc"), Some(Reason::ElementMissing));
        assert_eq!(reason_of(&report, "vah264enc"), Some(Reason::ElementMissing), "the default backend sees no hardware");
    }

    #[test]
    fn prefers_hardware_that_passes_its_trial() {
        let fake =
            FakeBackend(HashMap::from([("vah264enc", Err("no VA display".to_owned())), ("nvh264enc", Ok(())), ("x264enc", Ok(()))]));
        let report = probe(&fake, EncoderRequest::Auto);
        let chosen = report.chosen().map(|c| c.factory);
        assert_eq!(chosen, Some("nvh264enc"));
        let x264 = report.candidates.iter().find(|c| c.factory == "x264enc");
        assert_eq!(x264.map(|c| &c.status), Some(&CandidateStatus::Usable));
        assert!(report.why().contains("vah264enc failed trial (no VA display)"), "{}", report.why());
    }

    #[test]
    fn falls_back_to_x264() {
        let fake = FakeBackend(HashMap::from([("x264enc", Ok(()))]));
        let report = choose(&fake, EncoderRequest::Auto);
        assert_eq!(report.ok().and_then(|r| r.chosen().map(|c| c.kind)), Some(EncoderKind::X264));
    }

    #[test]
    fn forced_encoder_that_does_not_work_is_an_error() {
        let fake = FakeBackend(HashMap::from([("x264enc", Ok(()))]));
        let err = choose(&fake, EncoderRequest::Force(EncoderKind::Va));
        assert!(matches!(err, Err(HalError::ForcedEncoderUnusable { .. })));
    }

    #[test]
    fn nothing_installed_is_an_error_with_reason() {
        let fake = FakeBackend(HashMap::new());
        match choose(&fake, EncoderRequest::Auto) {
            Err(HalError::NoEncoder(why)) => assert!(why.contains("no encoder passed")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hevc_lists_only_families_that_can_encode_it() {
        let fake = FakeBackend(HashMap::from([("x264enc", Ok(())), ("x265enc", Ok(())), ("vah265enc", Err("no VA display".into()))]));
        let report = probe_codec(&fake, EncoderRequest::Auto, Codec::H265);
        assert!(report.candidates.iter().all(|c| c.factory.contains("265")), "{report:?}");
        assert_eq!(report.chosen().map(|c| c.factory), Some("x265enc"));
        assert!(report.why().contains("vah265enc failed trial (no VA display)"), "{}", report.why());
        match choose_codec(&fake, EncoderRequest::Force(EncoderKind::X264), Codec::H265) {
            Err(HalError::ForcedEncoderUnusable { reason, .. }) => assert!(reason.contains("cannot encode H265"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn real_gstreamer_encodes_hevc_with_x265() {
        let backend = GstEncoderBackend::new().unwrap();
        let report = probe_codec(&backend, EncoderRequest::Force(EncoderKind::X265), Codec::H265);
        assert_eq!(report.chosen().map(|c| c.factory), Some("x265enc"), "{report:?}");
    }

    #[test]
    fn real_gstreamer_finds_x264_on_this_machine() {
        let backend = GstEncoderBackend::new().unwrap();
        let report = probe(&backend, EncoderRequest::Auto);
        assert!(report.chosen().is_some(), "{report:?}");
    }
}
