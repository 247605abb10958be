//! A run's checkpoint: the network's weights and the optimizer's state in burn's record
//! format (burnpack bytes), the batch-order generator's state and the epoch they are after,
//! so a run resumed from it trains the next epoch exactly as the uninterrupted run would have.
//!
//! On disk (or in a store blob) a checkpoint is `ACTISCOPE-CKPT1`, then little-endian `u64`s:
//! the epoch, the generator state, the weights' length; then the weights and the optimizer
//! state. Bytes that do not read as that are refused with [`CheckpointError`].

/// The first bytes of every checkpoint.
const MAGIC: &[u8] = b"ACTISCOPE-CKPT1";

/// Why bytes are not a checkpoint, or a checkpoint does not fit the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint: {0}")]
pub struct CheckpointError(pub String);

/// Everything a run needs to go on after an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The 1-based epoch whose end this is.
    pub epoch: usize,
    /// State of the generator that shuffles each epoch's batches.
    pub order_state: u64,
    /// The network's weights (burnpack bytes of its record).
    pub weights: Vec<u8>,
    /// The optimizer's state (burnpack bytes of its record).
    pub optimizer: Vec<u8>,
}

impl Checkpoint {
    /// The checkpoint as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(MAGIC.len() + 24 + self.weights.len() + self.optimizer.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.epoch as u64).to_le_bytes());
        out.extend_from_slice(&self.order_state.to_le_bytes());
        out.extend_from_slice(&(self.weights.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.weights);
        out.extend_from_slice(&self.optimizer);
        out
    }

    /// Reads bytes written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let bad = |what: &str| CheckpointError(what.to_owned());
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not an actiscope checkpoint (wrong leading bytes)"))?;
        let word = |at: usize| -> Result<u64, CheckpointError> {
            rest.get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| bad("cut short in its header"))
        };
        let epoch = usize::try_from(word(0)?).map_err(|_| bad("epoch out of range"))?;
        let order_state = word(8)?;
        let weights_len = usize::try_from(word(16)?).map_err(|_| bad("length out of range"))?;
        let body = rest.get(24..).unwrap_or(&[]);
        if weights_len > body.len() {
            return Err(bad("cut short in its weights"));
        }
        let (weights, optimizer) = body.split_at(weights_len);
        Ok(Self {
            epoch,
            order_state,
            weights: weights.to_vec(),
            optimizer: optimizer.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        let checkpoint = Checkpoint {
            epoch: 7,
            order_state: 0xdead_beef,
            weights: vec![1, 2, 3],
            optimizer: vec![9, 8],
        };
        let bytes = checkpoint.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), checkpoint);
        assert!(Checkpoint::from_bytes(b"garbage").is_err());
        assert!(Checkpoint::from_bytes(&bytes[..MAGIC.len() + 10]).is_err());
        let mut long = bytes.clone();
        long.truncate(MAGIC.len() + 24 + 1);
        assert!(
            Checkpoint::from_bytes(&long)
                .unwrap_err()
                .to_string()
                .contains("weights")
        );
    }
}
