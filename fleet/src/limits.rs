//! Size and rate limits (`docs/fleet-protocol.md#limits`, AWS IoT Core quotas).
//!
//! Everything stays under AWS IoT Core's 128 KB payload cap so the same
//! protocol runs on any broker.

/// Hard cap on any payload, and the MQTT maximum packet size both ways
/// (rumqttc defaults to 10 KiB and disconnects on anything bigger).
pub const MAX_PACKET: usize = 128 * 1024;
/// Non-retained messages: commands, responses, events, telemetry.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Retained documents: desired config, info, state, alarms, reported config.
pub const MAX_RETAINED: usize = 64 * 1024;
/// Command ids (AWS `clientToken` is at most 64 bytes).
pub const MAX_ID_LEN: usize = 64;
/// Device ids: MQTT client id, certificate CN, one topic level.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// Outgoing token bucket for telemetry: 1 message/s, burst 20.
pub const PUBLISH_RATE_PER_S: f64 = 1.0;
/// Burst of the outgoing token bucket.
pub const PUBLISH_BURST: f64 = 20.0;
/// Incoming commands: 5/s (burst 5), otherwise `rate_limited`.
pub const COMMAND_RATE_PER_S: f64 = 5.0;
/// Burst of the command token bucket.
pub const COMMAND_BURST: f64 = 5.0;
/// Commands accepted but not finished, otherwise `rate_limited`.
pub const MAX_COMMANDS_IN_FLIGHT: usize = 10;
/// Command ids remembered with their results (idempotency).
pub const IDEMPOTENCY_ENTRIES: usize = 256;

/// Telemetry interval bounds and default, in seconds.
pub const TELEMETRY_MIN_S: u32 = 1;
/// Slowest telemetry interval.
pub const TELEMETRY_MAX_S: u32 = 60;
/// Default telemetry interval.
pub const TELEMETRY_DEFAULT_S: u32 = 10;
/// Longest `telemetry.boost`.
pub const BOOST_MAX_S: u32 = 3600;
/// Command `timeout_s` bounds (Azure direct methods: 5–300 s) and default.
pub const COMMAND_TIMEOUT_MAX_S: u32 = 300;
/// Upper bound of `timeout_s` for long-running commands (`firmware.update`:
/// download, verify and install a root slot on a slow uplink).
pub const LONG_COMMAND_TIMEOUT_MAX_S: u32 = 3600;
/// Default command timeout.
pub const COMMAND_TIMEOUT_DEFAULT_S: u32 = 30;
/// Longest confirm window of a risky config change.
pub const CONFIRM_WITHIN_MAX_S: u32 = 3600;
