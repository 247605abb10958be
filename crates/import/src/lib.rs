//! Reads run directories of activations written by another framework (usually PyTorch, through
//! `python/actiscope_writer.py`): `run.toml`, `labels.npy`, an optional `inputs.npy`, and one
//! entry per epoch, `epoch-0001.safetensors` or a folder `epoch-0001/` of `<layer>.npy` files.
//!
//! Owns: the layout of such a directory (`layout`), `run.toml` (`spec`), the element types and
//! their conversion to `f32` (`dtype`), `.npy`/`.npz` arrays (`npy`, headers parsed by `npyz`)
//! and safetensors tensors (`tensors`, headers parsed by `safetensors`), read as streams of
//! rows so an epoch of any size imports in bounded memory, and the one error type naming the
//! file, the tensor and the reason (`error`). `run_dir` ties them together. Does not own:
//! patterns, APDs or storage (the server turns the rows into those); it knows nothing of
//! burn, axum or the browser.

mod array;
mod dtype;
mod error;
mod layout;
mod npy;
mod run_dir;
mod spec;
mod tensors;

pub use array::{ArrayInfo, RowChunks};
pub use error::ImportError;
pub use layout::{EpochEntry, EpochFormat, FINISHED_MARKER};
pub use run_dir::{EpochExtras, Inputs, RunDir};
pub use spec::{DEFAULT_PROBE, RunSpec};

#[cfg(test)]
mod tests;
