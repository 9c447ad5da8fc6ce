//! Hand-written fakes for tests and the demo. Both are cheap handles onto
//! shared state, so a test keeps one clone to change answers while
//! [`super::Discovery`] owns the other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::{CaptureDevice, CaptureError, DeckLinkProbe, DvQuery, V4l2Probe};

/// Answers per device path; paths without an answer get
/// [`DvQuery::UNKNOWN`], like [`super::SysfsOnlyProbe`].
#[derive(Debug, Clone, Default)]
pub struct FakeV4l2Probe {
    answers: Arc<Mutex<HashMap<PathBuf, Result<DvQuery, String>>>>,
}

impl FakeV4l2Probe {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the answer for `dev`; `Err` becomes [`CaptureError::Probe`].
    pub fn set(&self, dev: impl Into<PathBuf>, answer: Result<DvQuery, String>) {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner).insert(dev.into(), answer);
    }
}

impl V4l2Probe for FakeV4l2Probe {
    fn query(&self, dev: &Path) -> Result<DvQuery, CaptureError> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        match answers.get(dev) {
            Some(Ok(q)) => Ok(*q),
            Some(Err(reason)) => Err(CaptureError::Probe { dev: dev.to_owned(), reason: reason.clone() }),
            None => Ok(DvQuery::UNKNOWN),
        }
    }
}

/// A fixed, replaceable list of DeckLink devices, or a failure.
#[derive(Debug, Clone)]
pub struct FakeDeckLinkProbe {
    devices: Arc<Mutex<Result<Vec<CaptureDevice>, String>>>,
}

impl FakeDeckLinkProbe {
    pub fn new(devices: Vec<CaptureDevice>) -> Self {
        FakeDeckLinkProbe { devices: Arc::new(Mutex::new(Ok(devices))) }
    }

    /// Replaces the answer; `Err` becomes [`CaptureError::Gst`].
    pub fn set(&self, devices: Result<Vec<CaptureDevice>, String>) {
        *self.devices.lock().unwrap_or_else(PoisonError::into_inner) = devices;
    }
}

impl Default for FakeDeckLinkProbe {
    /// No DeckLink cards, like this machine.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl DeckLinkProbe for FakeDeckLinkProbe {
    fn devices(&self) -> Result<Vec<CaptureDevice>, CaptureError> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner).clone().map_err(CaptureError::Gst)
    }
}
