//! Representation similarity between two layers' activations over the same instances: linear
//! CKA (Kornblith et al. 2019), biased and debiased, SVCCA (Raghu et al. 2017), PWCCA (Morcos
//! et al. 2018) and the mean squared CCA correlation. This file owns the public API: the
//! errors, the options, the result of the CCA family and the [`Method`] a caller picks
//! generically with [`similarity`], or for a whole grid of matrices with
//! [`similarity_grid`]. The maths lives in `cka` (feature-space Gram statistics) and `cca`
//! (reduction, canonical correlations, projection weights, and one matrix reduced once for
//! many comparisons); `grid` reuses those reductions across a grid; `prepare` checks and
//! lays out the input; `parallel` runs two independent halves on two threads. Pure: no
//! I/O, nothing kept between calls.
//!
//! Both matrices are instances x neurons ([`Matrix`]) with the same instances in the same row
//! order; their neuron counts may differ. Centring, decompositions and every sum are in
//! `f64`; only CKA's large products are taken in `f32` blocks of rows, summed in `f64`
//! (see `cka` for the accuracy).

mod cca;
mod cka;
mod grid;
mod parallel;
mod prepare;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::Matrix;

pub use cca::{pwcca, svcca};
pub use cka::{linear_cka, linear_cka_debiased};
pub use grid::similarity_grid;

/// Which of the two compared matrices an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The first argument (`x`).
    First,
    /// The second argument (`y`).
    Second,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operand::First => "first",
            Operand::Second => "second",
        })
    }
}

/// Errors of the similarity measures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimilarityError {
    /// The two matrices do not describe the same instances.
    #[error("the first matrix has {first} instances (rows) but the second has {second}")]
    InstanceMismatch {
        /// Rows of the first matrix.
        first: usize,
        /// Rows of the second matrix.
        second: usize,
    },
    /// A value is NaN or infinite.
    #[error("the {operand} matrix holds {value} at instance (row) {row}, neuron (column) {column}")]
    NotFinite {
        /// The matrix holding it.
        operand: Operand,
        /// Its row (instance), from 0.
        row: usize,
        /// Its column (neuron), from 0.
        column: usize,
        /// The value itself.
        value: f32,
    },
    /// The measure needs more instances than it was given.
    #[error("{instances} instances are too few: this measure needs at least {needed}")]
    TooFewInstances {
        /// Instances given.
        instances: usize,
        /// Instances needed.
        needed: usize,
    },
    /// Fewer instances than the kept directions need: `instances` instances (centred) span at
    /// most `span` dimensions, and two subspaces of `first` and `second` dimensions with
    /// `first + second > span` share a direction whatever the data, so CCA would report
    /// correlations of 1 that say nothing about the layers.
    #[error(
        "fewer instances than kept directions: {instances} instances span at most {span} \
         dimensions, fewer than the {first} + {second} kept directions, so CCA would find \
         correlations of 1 whatever the data; use more instances or a smaller keep fraction"
    )]
    TooFewInstancesForDirections {
        /// Instances given.
        instances: usize,
        /// Dimensions they span: `instances - 1` when centred, `instances` otherwise.
        span: usize,
        /// Directions kept from the first matrix.
        first: usize,
        /// Directions kept from the second matrix.
        second: usize,
    },
    /// Every neuron of one matrix is constant over the instances (or the matrix has no
    /// columns): there is no activity to compare.
    #[error("the {operand} matrix has no neuron that varies over the instances")]
    NoVariance {
        /// The matrix without activity.
        operand: Operand,
    },
    /// The debiased (unbiased HSIC) estimate of a matrix's similarity with itself is not
    /// positive, which happens with very few instances; debiased CKA is undefined then.
    #[error(
        "the debiased self-similarity of the {operand} matrix is {value}, not positive: too \
         few instances for debiased CKA"
    )]
    NonPositiveSelfSimilarity {
        /// The matrix concerned.
        operand: Operand,
        /// The estimate.
        value: f64,
    },
    /// The fraction of variance to keep is not in `(0, 1]`.
    #[error("the fraction of variance to keep must be in (0, 1], not {0}")]
    KeepFraction(f64),
    /// A singular value decomposition did not converge.
    #[error("a singular value decomposition did not converge")]
    Svd,
}

impl SimilarityError {
    /// The same error told about `operand` (for those about one matrix).
    pub fn about(self, operand: Operand) -> Self {
        match self {
            SimilarityError::NotFinite {
                row, column, value, ..
            } => SimilarityError::NotFinite {
                operand,
                row,
                column,
                value,
            },
            SimilarityError::NoVariance { .. } => SimilarityError::NoVariance { operand },
            SimilarityError::NonPositiveSelfSimilarity { value, .. } => {
                SimilarityError::NonPositiveSelfSimilarity { operand, value }
            }
            other => other,
        }
    }
}

/// Options of [`svcca`] and [`pwcca`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvccaOptions {
    /// Fraction of each layer's variance to keep, in `(0, 1]`: after centring, a layer keeps
    /// its `k` leading singular directions for the smallest `k` whose squared singular
    /// values sum to at least `keep_fraction` of the total. Directions with a singular value
    /// at or below `max(instances, neurons) * f64::EPSILON` times the largest (numerically
    /// zero, as in numpy's `matrix_rank`) are never kept, so `1.0` keeps the numerical rank:
    /// plain CCA on the full data. (In `f64`, a direction whose squared singular value is
    /// below the rounding of the total, about `1e-16` of it, cannot reach it and is not kept
    /// even at `1.0`.)
    pub keep_fraction: f64,
    /// Centre each neuron (subtract its mean over the instances) first. `true` is CCA as
    /// defined; `false` computes the correlations about the origin instead, as the
    /// google-research CKA notebook's `cca` helper does (its published mean squared CCA
    /// correlation 0.54312 is of uncentred data). With centring, a neuron is dead when it is
    /// constant; without, when it is zero everywhere.
    pub centre: bool,
}

impl SvccaOptions {
    /// Plain CCA: centred, every direction of the numerical rank kept.
    pub const CCA: SvccaOptions = SvccaOptions {
        keep_fraction: 1.0,
        centre: true,
    };
}

impl Default for SvccaOptions {
    /// SVCCA as in Raghu et al.: centred, 99% of the variance kept.
    fn default() -> Self {
        SvccaOptions {
            keep_fraction: 0.99,
            centre: true,
        }
    }
}

/// Canonical correlations between two layers, from [`svcca`] or [`pwcca`].
#[derive(Debug, Clone, PartialEq)]
pub struct CcaResult {
    /// The canonical correlations, descending, each in `[0, 1]`; as many as the smaller of
    /// the two kept direction counts.
    pub coefficients: Vec<f64>,
    /// Mean of the coefficients (the SVCCA similarity).
    pub mean: f64,
    /// Mean of the squared coefficients (`R²_CCA` of Kornblith et al.).
    pub mean_squared: f64,
    /// Directions kept from the first and the second matrix.
    pub kept: (usize, usize),
    /// Dead neurons (constant over the instances; zero everywhere without centring) dropped
    /// from the first and the second matrix before the CCA.
    pub dropped_dead: (usize, usize),
    /// The projection-weighted mean of the coefficients (PWCCA), from [`pwcca`] only.
    pub pwcca: Option<f64>,
}

/// A similarity measure for [`similarity`], each giving one number in `[0, 1]` (1 for
/// identical representations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`linear_cka`].
    Cka,
    /// [`linear_cka_debiased`].
    CkaDebiased,
    /// The mean coefficient of [`svcca`] with the default options (99% of the variance).
    Svcca,
    /// [`pwcca`] on the full data ([`SvccaOptions::CCA`]), as Morcos et al. use it.
    Pwcca,
}

impl Method {
    /// Every method, in declaration order.
    pub const ALL: [Method; 4] = [
        Method::Cka,
        Method::CkaDebiased,
        Method::Svcca,
        Method::Pwcca,
    ];

    /// The method's name: `cka`, `cka-debiased`, `svcca` or `pwcca`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Cka => "cka",
            Method::CkaDebiased => "cka-debiased",
            Method::Svcca => "svcca",
            Method::Pwcca => "pwcca",
        }
    }

    /// The method called `name` (as [`Method::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The similarity of `x` and `y` (instances x neurons, same instances) by `method`.
pub fn similarity(method: Method, x: &Matrix, y: &Matrix) -> Result<f64, SimilarityError> {
    match method {
        Method::Cka => linear_cka(x, y),
        Method::CkaDebiased => linear_cka_debiased(x, y),
        Method::Svcca => svcca(x, y, &SvccaOptions::default()).map(|r| r.mean),
        Method::Pwcca => {
            // `pwcca` always fills the field; the mean is only a formal fallback.
            pwcca(x, y, &SvccaOptions::CCA).map(|r| r.pwcca.unwrap_or(r.mean))
        }
    }
}
