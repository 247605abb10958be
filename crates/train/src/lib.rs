//! The training engine of actiscope.
//!
//! Owns: datasets (the built-in digits, IDX files, synthetic 2-D sets), burn models, the
//! training loop, devices, and the capture of per-layer activations after each epoch, handed
//! to `actiscope-analysis` as plain matrices; run requests and their presets (`request`);
//! `--device auto`'s timing of a model's steps on the CPU and the GPU (`auto`); where the
//! GPU's autotune results persist between processes (`gpu_cache`); the NMF lens's update
//! rounds on a burn device and where a fit runs (`nmf`).
//! Does not own: the analyses themselves, storage, networking or anything the browser shows.

pub mod auto;
pub mod capture;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod gpu_cache;
pub mod model;
pub mod nmf;
pub mod request;
pub mod training;

pub use config::{OptimizerKind, ProbeSource, ProbeSpec, TrainConfig};
pub use request::{Preset, RunRequest};
pub use training::{EpochMetrics, EpochReport, PendingEpoch, Preparation, TrainError, Trainer};
