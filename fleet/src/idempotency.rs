//! The idempotency cache: the last ~256 command ids with their final
//! results, persisted so that a repeated `reboot` after the reboot gets the
//! stored answer instead of a second reboot.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{CommandState, ReasonCode};

/// What the cache remembers about one id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub state: CommandState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// Bounded LRU of id → outcome (oldest insert evicted first).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyCache {
    cap: usize,
    entries: VecDeque<(String, Outcome)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Persisted {
    entries: Vec<(String, Outcome)>,
}

impl IdempotencyCache {
    /// An empty cache holding at most `cap` ids.
    pub fn new(cap: usize) -> IdempotencyCache {
        IdempotencyCache { cap, entries: VecDeque::new() }
    }

    /// The outcome of `id`, if remembered.
    pub fn get(&self, id: &str) -> Option<&Outcome> {
        self.entries.iter().find(|(k, _)| k == id).map(|(_, o)| o)
    }

    /// Records (or replaces) the outcome of `id`.
    pub fn put(&mut self, id: &str, outcome: Outcome) {
        self.entries.retain(|(k, _)| k != id);
        self.entries.push_back((id.to_owned(), outcome));
        while self.entries.len() > self.cap {
            self.entries.pop_front();
        }
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// JSON for the store. Unfinished commands are saved as failed: after a
    /// restart nobody will finish them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries = self
            .entries
            .iter()
            .map(|(k, o)| {
                let o = if o.state.is_terminal() {
                    o.clone()
                } else {
                    Outcome {
                        state: CommandState::Failed,
                        reason: Some(ReasonCode::Internal),
                        detail: "interrupted by a restart".into(),
                        result: None,
                    }
                };
                (k.clone(), o)
            })
            .collect();
        serde_json::to_vec(&Persisted { entries }).unwrap_or_default()
    }

    /// Restores a cache saved by [`IdempotencyCache::to_bytes`].
    pub fn from_bytes(cap: usize, bytes: &[u8]) -> Result<IdempotencyCache, String> {
        let p: Persisted = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut c = IdempotencyCache::new(cap);
        for (k, o) in p.entries {
            c.put(&k, o);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> Outcome {
        Outcome { state: CommandState::Succeeded, reason: None, detail: String::new(), result: None }
    }

    #[test]
    fn evicts_oldest_and_round_trips() {
        let mut c = IdempotencyCache::new(3);
        for i in 0..5 {
            c.put(&format!("id{i}"), done());
        }
        assert_eq!(c.len(), 3);
        assert!(c.get("id1").is_none());
        assert!(c.get("id4").is_some());
        let c2 = IdempotencyCache::from_bytes(3, &c.to_bytes()).unwrap();
        assert_eq!(c2.get("id3"), Some(&done()));
    }

    #[test]
    fn unfinished_commands_are_saved_as_failed() {
        let mut c = IdempotencyCache::new(3);
        c.put("x", Outcome { state: CommandState::Accepted, reason: None, detail: String::new(), result: None });
        let c2 = IdempotencyCache::from_bytes(3, &c.to_bytes()).unwrap();
        assert_eq!(c2.get("x").map(|o| o.state), Some(CommandState::Failed));
    }
}
