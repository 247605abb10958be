//! A run's device preparation as other processes see it. The process that trains a run on a
//! GPU tells each step of [`actiscope_train::Trainer::prepare_device`]: a server's own runs
//! straight to its sessions, and every run through the store (the run's `preparation_json`,
//! [`StoredPreparation`] as JSON), where the servers that show the run find it
//! ([`crate::watch`]). Both send sessions the same `Preparing` frame. Every process that
//! trains (a server's slots, `actiscope train`, a worker) stores each step, in
//! [`crate::runner::run_to_completion`].

use std::sync::Mutex;

use actiscope_store::{Store, StoreError};
use actiscope_train::Preparation;
use serde::{Deserialize, Serialize};

/// Stores the step the trainer of run `run_id` told (see the module docs), for the servers
/// that show the run; the run trains on whether or not this works.
pub fn store_step(store: &Mutex<Store>, run_id: i64, step: &Preparation) -> Result<(), StoreError> {
    let store = store
        .lock()
        .map_err(|_| StoreError::Invalid("the run store failed earlier".to_owned()))?;
    store.set_preparation(run_id, &StoredPreparation::of(step).to_json())?;
    Ok(())
}

/// One preparation step as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPreparation {
    /// Steps finished.
    pub steps_done: u32,
    /// Steps in all; `steps_done == steps_total` once the device is ready.
    pub steps_total: u32,
    /// The step now running, for people; empty once done.
    pub step: String,
}

impl StoredPreparation {
    /// What the trainer told.
    pub fn of(preparation: &Preparation) -> StoredPreparation {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        StoredPreparation {
            steps_done: count(preparation.done),
            steps_total: count(preparation.total),
            step: preparation.step.clone(),
        }
    }

    /// As the store keeps it.
    pub fn to_json(&self) -> String {
        // A struct of numbers and a string always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What the store kept, or `None` when nothing (or something unreadable) was.
    pub fn from_json(json: &str) -> Option<StoredPreparation> {
        serde_json::from_str(json).ok()
    }

    /// The `Preparing` frame for run `run_id`'s sessions.
    pub fn frame(&self, run_id: i64) -> Option<bytes::Bytes> {
        let message = actiscope_protocol::ServerMessage::Preparing {
            run_id,
            steps_done: self.steps_done,
            steps_total: self.steps_total,
            step: self.step.clone(),
        };
        actiscope_protocol::encode(&message)
            .ok()
            .map(bytes::Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_survives_the_store_and_becomes_a_frame() {
        let step = StoredPreparation {
            steps_done: 2,
            steps_total: 5,
            step: "capturing the training set (900 instances)".to_owned(),
        };
        assert_eq!(
            StoredPreparation::from_json(&step.to_json()),
            Some(step.clone())
        );
        assert_eq!(StoredPreparation::from_json(""), None);
        assert_eq!(StoredPreparation::from_json("{garbage"), None);
        let frame = step.frame(7).expect("encodes");
        let decoded = actiscope_protocol::decode_server_message(&frame).expect("decodes");
        assert_eq!(
            decoded,
            actiscope_protocol::ServerMessage::Preparing {
                run_id: 7,
                steps_done: 2,
                steps_total: 5,
                step: step.step,
            }
        );
    }
}
