use thiserror::Error;

/// Errors from the hardware abstraction layer.
#[derive(Debug, Error)]
pub enum HalError {
    /// GStreamer could not be initialised: {0}
    #[error("GStreamer could not be initialised: {0}")]
    GstInit(String),
    /// No H.264 encoder passed its trial encode.
    #[error("no working H.264 encoder: {0}")]
    NoEncoder(String),
    /// The configuration forces an encoder that is not usable here.
    #[error("forced encoder {name} is not usable: {reason}")]
    ForcedEncoderUnusable { name: String, reason: String },
}
