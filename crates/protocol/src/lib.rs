//! Wire types shared by the actiscope server and the browser dashboard.
//!
//! Owns: the websocket message types, their versioned binary envelope (postcard) and the
//! JSON shapes of the REST API. Does not own: any I/O, sockets, storage or analysis code; the
//! server and the frontend both depend on this crate and on nothing of each other.

pub mod apd;
pub mod mapper;
pub mod nmf;
pub mod similarity;

use serde::{Deserialize, Serialize};

/// Version of the websocket envelope. Bump it whenever a message changes shape; a peer that
/// receives another version refuses the frame instead of misreading it.
///
/// Version 3 added [`ServerMessage::Deflated`] and version 4 [`ServerMessage::Preparing`],
/// each as a new last variant, changing nothing else, so every version-2 frame (and every
/// blob a version-2 server stored) still reads as version 4: see
/// [`OLDEST_READABLE_VERSION`].
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest envelope version [`decode`] accepts: versions from this one to
/// [`PROTOCOL_VERSION`] encode every message they share identically.
pub const OLDEST_READABLE_VERSION: u16 = 2;

/// Deflate level of [`encode_deflated`]: the fastest, since the frames are mostly short
/// integers and bit strings that compress about 3x even so.
const DEFLATE_LEVEL: u8 = 1;

/// Largest websocket frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Errors raised while encoding or decoding a frame.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame could not be decoded as an envelope at all.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The frame carried an envelope of another protocol version.
    #[error(
        "protocol version {found} is not supported (this build reads {OLDEST_READABLE_VERSION} to {PROTOCOL_VERSION})"
    )]
    Version {
        /// Version found in the frame.
        found: u16,
    },
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len_bytes} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge {
        /// Size of the refused frame.
        len_bytes: usize,
    },
    /// A [`ServerMessage::Deflated`] frame did not inflate within [`MAX_FRAME_BYTES`].
    #[error("deflated frame cannot be inflated within {MAX_FRAME_BYTES} bytes: {reason}")]
    Inflate {
        /// What went wrong.
        reason: String,
    },
    /// A [`ServerMessage::Deflated`] frame held another deflated message.
    #[error("a deflated frame holds another deflated frame")]
    NestedDeflate,
}

/// The versioned envelope around every binary websocket frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Always [`PROTOCOL_VERSION`] for frames this build writes.
    pub version: u16,
    /// The message itself.
    pub message: T,
}

/// Encodes a message into a binary frame (versioned envelope, postcard).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let envelope = Envelope {
        version: PROTOCOL_VERSION,
        message,
    };
    Ok(postcard::to_stdvec(&envelope)?)
}

/// Decodes a binary frame written by [`encode`], refusing other versions and oversized frames.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<T, ProtocolError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge {
            len_bytes: frame.len(),
        });
    }
    // The version is the envelope's first field, so it can be read before the message.
    let (version, _) = postcard::take_from_bytes::<u16>(frame)?;
    if !(OLDEST_READABLE_VERSION..=PROTOCOL_VERSION).contains(&version) {
        return Err(ProtocolError::Version { found: version });
    }
    let envelope: Envelope<T> = postcard::from_bytes(frame)?;
    Ok(envelope.message)
}

/// Encodes `message` deflated, inside a [`ServerMessage::Deflated`] frame. The server sends
/// the large frames (epochs, images) this way: they shrink about 3x, and it compresses each
/// once however many clients receive it.
pub fn encode_deflated(message: &ServerMessage) -> Result<Vec<u8>, ProtocolError> {
    let plain = postcard::to_stdvec(message)?;
    // A reader inflates to at most the frame limit: refuse here what it would refuse there.
    if plain.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge {
            len_bytes: plain.len(),
        });
    }
    encode(&ServerMessage::Deflated {
        deflated: miniz_oxide::deflate::compress_to_vec(&plain, DEFLATE_LEVEL),
    })
}

/// Decodes a server frame, inflating a [`ServerMessage::Deflated`] one (to at most
/// [`MAX_FRAME_BYTES`]); never returns `Deflated`.
pub fn decode_server_message(frame: &[u8]) -> Result<ServerMessage, ProtocolError> {
    match decode::<ServerMessage>(frame)? {
        ServerMessage::Deflated { deflated } => {
            let plain =
                miniz_oxide::inflate::decompress_to_vec_with_limit(&deflated, MAX_FRAME_BYTES)
                    .map_err(|e| ProtocolError::Inflate {
                        reason: e.to_string(),
                    })?;
            match postcard::from_bytes::<ServerMessage>(&plain)? {
                ServerMessage::Deflated { .. } => Err(ProtocolError::NestedDeflate),
                message => Ok(message),
            }
        }
        message => Ok(message),
    }
}

/// What the server knows about itself; served as JSON by `GET /api/health` and sent in
/// [`ServerMessage::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Crate version of the server.
    pub version: String,
    /// Envelope version the server speaks.
    pub protocol_version: u16,
    /// Seconds since the server started.
    pub uptime_secs: f64,
    /// Target triple and profile the server was built for, e.g. `x86_64-linux (debug)`.
    pub build: String,
    /// Number of runs in the store.
    pub run_count: u64,
}

/// Per-epoch metrics of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean cross-entropy over the training set after the epoch.
    pub train_loss: f64,
    /// Mean cross-entropy over the validation set after the epoch.
    pub val_loss: f64,
    /// Accuracy over the training set after the epoch.
    pub train_accuracy: f64,
    /// Accuracy over the validation set after the epoch.
    pub val_accuracy: f64,
    /// Mean of the minibatch losses seen while training the epoch.
    pub minibatch_loss: f64,
    /// `|A*_l(D)|` over the training set, one count per hidden layer.
    pub unique_patterns: Vec<usize>,
    /// Wall time spent in optimisation steps.
    pub train_secs: f64,
    /// Wall time spent capturing and counting patterns, and evaluating.
    pub capture_secs: f64,
    /// The loss became NaN or infinite: the run stops here.
    pub diverged: bool,
}

/// The probe instances of an epoch: who they are and how the network saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInstances {
    /// Index of each probe instance in its source set (test or train).
    pub indices: Vec<u32>,
    /// True labels.
    pub labels: Vec<u32>,
    /// Predicted labels.
    pub predictions: Vec<u32>,
    /// Per-instance cross-entropy.
    pub losses: Vec<f32>,
}

/// Everything the dashboard shows for one epoch, computed once and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSnapshot {
    /// The metrics.
    pub metrics: EpochMetrics,
    /// The APD of the probe set.
    pub apd: apd::Apd,
    /// Flows over the last two hidden layers (or the only one) of the probe set.
    pub flows: apd::FlowTable,
    /// The probe instances.
    pub probe: ProbeInstances,
}

/// A dense row-major matrix on the wire (e.g. one layer's activations over the probe set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMatrix {
    /// Rows (instances).
    pub rows: u32,
    /// Columns (units).
    pub cols: u32,
    /// `rows * cols` values.
    pub values: Vec<f32>,
}

/// A stored or live run, as listed by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Store id.
    pub run_id: i64,
    /// Human-readable name, e.g. `mlp 40-40-40 relu on digits`.
    pub name: String,
    /// Dataset name.
    pub dataset: String,
    /// Model description.
    pub model: String,
    /// Device description, e.g. `flex (CPU; no GPU adapter found)`.
    pub device: String,
    /// SHA-256 (hex) of the data the run saw; empty for runs stored by older versions.
    pub dataset_sha256: String,
    /// `running`, `completed`, `stopped`, `diverged`, `interrupted` or `queued`.
    pub status: String,
    /// Epochs the run was asked to train.
    pub epochs_planned: u32,
    /// Epochs stored so far.
    pub epochs_stored: u32,
    /// Hidden layers of the network.
    pub hidden_layers: u32,
}

/// The probe set's images, sent once per run so the inspector can draw instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeImages {
    /// Image height; 0 when the data are not images (planar sets).
    pub rows: u32,
    /// Image width.
    pub cols: u32,
    /// `count * rows * cols` bytes, 0 = background; or for planar sets, the points as
    /// `count * 2` floats in `points`.
    pub pixels: Vec<u8>,
    /// Planar points (x, y interleaved) when the data are not images.
    pub points: Vec<f32>,
}

/// Messages the browser sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Asks the server to answer with [`ServerMessage::Pong`] carrying the same nonce.
    Ping {
        /// Echoed back unchanged.
        nonce: u64,
    },
    /// Follow a run: the server sends its summary, its probe images, every stored epoch from
    /// `from_epoch` on (1-based), then each new epoch as it is stored. Replaces any earlier
    /// subscription of this connection.
    Subscribe {
        /// The run.
        run_id: i64,
        /// First epoch wanted; epochs the client already holds are skipped.
        from_epoch: u32,
    },
}

/// Messages the server sends to the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// First frame on every connection.
    Hello(ServerInfo),
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The nonce of the ping.
        nonce: u64,
    },
    /// The server refused a frame; the connection stays open.
    Error {
        /// Human-readable reason.
        reason: String,
    },
    /// All runs in the store (sent after `Hello` and whenever a run starts or ends).
    Runs(Vec<RunSummary>),
    /// The subscribed run's summary (sent on subscription and when its status changes).
    Run(RunSummary),
    /// The subscribed run's probe images.
    Images {
        /// The run.
        run_id: i64,
        /// The images or points.
        images: ProbeImages,
    },
    /// One epoch of the subscribed run, in epoch order, never twice.
    Epoch {
        /// The run.
        run_id: i64,
        /// The snapshot.
        snapshot: Box<EpochSnapshot>,
    },
    /// Progress of the epoch in flight.
    Progress {
        /// The run.
        run_id: i64,
        /// 1-based epoch being trained.
        epoch: u32,
        /// Batches done.
        batches_done: u32,
        /// Batches in the epoch.
        batches_total: u32,
    },
    /// Another message, postcard-encoded (without envelope) and then deflated (raw deflate,
    /// RFC 1951); see [`encode_deflated`] and [`decode_server_message`].
    Deflated {
        /// The deflated bytes.
        deflated: Vec<u8>,
    },
    /// The run's GPU is being prepared before the first epoch its process trains: each kind
    /// of work the epochs do, run once so kernels compile and tune up front.
    Preparing {
        /// The run.
        run_id: i64,
        /// Steps finished.
        steps_done: u32,
        /// Steps in all; `steps_done == steps_total` once the GPU is ready.
        steps_total: u32,
        /// The step now running, for people; empty once done.
        step: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_message() {
        let messages = vec![
            ServerMessage::Hello(ServerInfo {
                version: "1.2.3".into(),
                protocol_version: PROTOCOL_VERSION,
                uptime_secs: 1.5,
                build: "test".into(),
                run_count: 7,
            }),
            ServerMessage::Pong { nonce: u64::MAX },
            ServerMessage::Error {
                reason: "nope".into(),
            },
        ];
        for message in messages {
            let frame = encode(&message).map_err(|e| e.to_string());
            let back: Result<ServerMessage, _> = decode(&frame.clone().unwrap_or_default());
            assert_eq!(back.ok(), Some(message), "frame {frame:?}");
        }
    }

    #[test]
    fn deflated_frames_round_trip_and_shrink() {
        let message = ServerMessage::Error {
            reason: "0110100111".repeat(5_000),
        };
        let plain = encode(&message).unwrap_or_default();
        let deflated = encode_deflated(&message).unwrap_or_default();
        assert!(
            deflated.len() * 10 < plain.len(),
            "{} vs {}",
            deflated.len(),
            plain.len()
        );
        assert_eq!(decode_server_message(&deflated).ok(), Some(message.clone()));
        // Plain frames pass through.
        assert_eq!(decode_server_message(&plain).ok(), Some(message));
        // What a reader could not inflate is not written.
        let huge = ServerMessage::Error {
            reason: "0".repeat(MAX_FRAME_BYTES + 1),
        };
        assert!(matches!(
            encode_deflated(&huge),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_deflated_frames_are_refused() {
        let frame =
            |deflated: Vec<u8>| encode(&ServerMessage::Deflated { deflated }).unwrap_or_default();
        // Not deflate data.
        assert!(matches!(
            decode_server_message(&frame(vec![0xff; 64])),
            Err(ProtocolError::Inflate { .. })
        ));
        // A bomb: a small frame that would inflate beyond the frame limit.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![0u8; MAX_FRAME_BYTES + 1], 1);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decode_server_message(&frame(bomb)),
            Err(ProtocolError::Inflate { .. })
        ));
        // Deflated inside deflated.
        let inner =
            postcard::to_stdvec(&ServerMessage::Deflated { deflated: vec![] }).unwrap_or_default();
        assert!(matches!(
            decode_server_message(&frame(miniz_oxide::deflate::compress_to_vec(&inner, 1))),
            Err(ProtocolError::NestedDeflate)
        ));
    }

    #[test]
    fn version_2_frames_still_read() {
        let old = |version: u16| {
            postcard::to_stdvec(&Envelope {
                version,
                message: ServerMessage::Pong { nonce: 9 },
            })
            .unwrap_or_default()
        };
        assert_eq!(
            decode::<ServerMessage>(&old(2)).ok(),
            Some(ServerMessage::Pong { nonce: 9 })
        );
        assert!(matches!(
            decode::<ServerMessage>(&old(1)),
            Err(ProtocolError::Version { found: 1 })
        ));
    }

    #[test]
    fn refuses_another_version() {
        let frame = postcard::to_stdvec(&Envelope {
            version: PROTOCOL_VERSION + 1,
            message: ClientMessage::Ping { nonce: 1 },
        })
        .unwrap_or_default();
        match decode::<ClientMessage>(&frame) {
            Err(ProtocolError::Version { found }) => assert_eq!(found, PROTOCOL_VERSION + 1),
            other => panic!("expected a version error, got {other:?}"),
        }
    }

    #[test]
    fn refuses_garbage_and_empty_frames() {
        assert!(decode::<ClientMessage>(&[]).is_err());
        assert!(decode::<ClientMessage>(&[1, 0, 0xff, 0xff, 0xff]).is_err());
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            decode::<ClientMessage>(&huge),
            Err(ProtocolError::TooLarge { .. })
        ));
    }
}
