//! The factorization lens: coupled non-negative factorization of the inputs and each layer's
//! activations over the probe set, and singular-value spectra (built by
//! `actiscope-analysis::nmf`; see ../shared/papers/nmf-factorization-lens.txt).

use serde::{Deserialize, Serialize};

use crate::WireMatrix;

/// Everything that determines a coupled factorization besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmfParams {
    /// Number of factors.
    pub rank: u32,
    /// Hidden layers (0-based) whose activations join the factorization.
    pub layers: Vec<u32>,
    /// Whether the input pixels join as a block (`D` in the paper).
    pub include_inputs: bool,
    /// Scale each block by `1 / ||block||_F` so big blocks do not drown small ones.
    pub balance_blocks: bool,
    /// Upper bound on multiplicative-update rounds.
    pub max_iters: u32,
    /// Stop when the objective improves by less than this fraction in one round.
    pub tolerance: f64,
    /// Seed of the uniform `[0, 1)` initialisation.
    pub seed: u64,
}

impl Default for NmfParams {
    fn default() -> Self {
        Self {
            rank: 10,
            layers: Vec::new(),
            include_inputs: true,
            balance_blocks: true,
            max_iters: 200,
            tolerance: 1e-4,
            seed: 0,
        }
    }
}

/// One block of the factorization: the inputs or one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmfBlock {
    /// `inputs` or `layer 2` etc.
    pub name: String,
    /// Hidden layer, 0-based; `None` for the input block.
    pub layer_idx: Option<u32>,
    /// The block's loadings: one row per feature (pixel or neuron), one column per factor
    /// (`P_i` or `O_j` in the paper). For the input block a row is a pixel, so column `k`
    /// reshaped to the image is factor `k`'s latent image.
    pub loadings: WireMatrix,
    /// Root-mean-square reconstruction error of this block (in its own, unscaled units).
    pub rmse: f64,
}

/// The result of one coupled factorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmfResult {
    /// The parameters.
    pub params: NmfParams,
    /// Epoch of the activations.
    pub epoch: u32,
    /// Blocks in order: inputs first when included, then the layers.
    pub blocks: Vec<NmfBlock>,
    /// Per-instance factor weights (`F`): one row per probe instance, one column per factor.
    pub instance_weights: WireMatrix,
    /// For each factor, the probe positions with the largest weights, largest first (up to 16).
    pub top_instances: Vec<Vec<u32>>,
    /// Objective after each round (it never rises).
    pub objective: Vec<f64>,
    /// Root-mean-square error over all blocks together (unscaled).
    pub rmse: f64,
    /// Image height and width when the inputs are images, for drawing latent images.
    pub image_shape: Option<(u32, u32)>,
    /// Where the fit ran and why, in words: the device first (`CPU`, or the GPU's
    /// description), then `; ` and the reason. Empty from servers that did not say.
    #[serde(default)]
    pub fitted_on: String,
}

/// Reconstruction error against rank, for one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmseCurve {
    /// Epoch.
    pub epoch: u32,
    /// `(rank, rmse)` pairs, ascending rank.
    pub points: Vec<(u32, f64)>,
    /// Root mean square of the factorized values themselves (all blocks, unscaled), so that
    /// `rmse / data_rms` compares epochs whose activations differ in size.
    pub data_rms: f64,
}

/// Singular values of each layer's activation matrix over the probe set, for one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spectra {
    /// Epoch.
    pub epoch: u32,
    /// One descending list per hidden layer.
    pub layers: Vec<Vec<f32>>,
}
