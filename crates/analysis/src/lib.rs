//! The analysis core of actiscope: pure functions on plain `f32` matrices and labels.
//!
//! Owns: activation patterns (bit-packed) and their unique counts, Activation Pattern Diagrams
//! (APD), flows with strength and purity and their histograms, TopoAct-style mapper graphs
//! with identities carried across epochs, coupled NMF with its input blocks and weights, and
//! singular-value spectra (linear algebra by faer), representation similarity between layers
//! (linear CKA, SVCCA, PWCCA); the matrix type with its wire conversion, and the workspace's
//! one seeded generator with the synthetic data benchmarks share. Does not own: tensors,
//! training, I/O, networking or rendering; it never sees burn, tokio or axum types (a test
//! checks this), so every result here can be tested against hand-computed answers.

pub mod apd;
pub mod flows;
pub mod hash;
pub mod mapper;
pub mod matrix;
pub mod nmf;
pub mod patterns;
pub mod rng;
pub mod similarity;
pub mod spectra;

pub use matrix::{Matrix, MatrixError};
pub use patterns::{LayerPatterns, PatternMatrix};
