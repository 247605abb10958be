//! On-demand analyses of stored epochs: mapper graphs ([`mapper`]), the coupled NMF and RMSE
//! against rank ([`nmf`]), singular-value spectra ([`spectra`]), flows over any run of
//! layers ([`flows`]) and representation similarity across layers, epochs and runs
//! ([`similarity`]).
//!
//! Each request loads the stored probe data of one epoch ([`probe`]), runs the pure analysis
//! from `actiscope-analysis` and caches the JSON answer per (run, epoch, parameters) through
//! [`crate::answers`], so scrubbing back and forth costs one computation per epoch. The maths
//! lives in `actiscope-analysis`; these files only choose the data and the parameters.

pub mod flows;
pub mod mapper;
pub mod nmf;
pub mod probe;
pub mod similarity;
pub mod spectra;

pub use flows::flows_json;
pub use mapper::mapper_json;
pub use nmf::{MAX_CURVE_RANKS, MAX_ITERS, MAX_RANK, nmf_json, rmse_json};
pub use spectra::spectra_json;
