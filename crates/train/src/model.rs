//! The networks actiscope trains: a ReLU/LeakyReLU MLP of any widths and the small CNN of the
//! factorization paper. Both return every hidden layer's pre-activations from `forward`, so
//! activation capture needs no hooks.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{leaky_relu, relu};
use serde::{Deserialize, Serialize};

/// The non-linearity between layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, else `negative_slope * x`.
    LeakyRelu {
        /// Slope for negative inputs, e.g. 0.01.
        negative_slope: f64,
    },
}

impl Activation {
    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => relu(x),
            Self::LeakyRelu { negative_slope } => leaky_relu(x, negative_slope),
        }
    }

    /// Slope for negative inputs (0 for ReLU), kept in the module as a plain number.
    fn negative_slope(self) -> f64 {
        match self {
            Self::Relu => 0.0,
            Self::LeakyRelu { negative_slope } => negative_slope,
        }
    }

    fn from_slope(negative_slope: f64) -> Self {
        if negative_slope == 0.0 {
            Self::Relu
        } else {
            Self::LeakyRelu { negative_slope }
        }
    }
}

/// What `forward` returns: the logits and each hidden layer's pre-activations.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, classes]`.
    pub logits: Tensor<2>,
    /// One `[batch, units]` tensor per hidden layer, before the non-linearity. For conv layers
    /// the units are channel x position after max-pooling (channel-major), flattened.
    pub pre_activations: Vec<Tensor<2>>,
}

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features (784 for 28x28 images, 2 for the planar sets).
    pub inputs: usize,
    /// Width of every hidden layer; the APD paper uses `[40, 40, 40]`.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Negative slope of the activation; 0 is ReLU.
    #[config(default = 0.0)]
    pub negative_slope: f64,
}

impl MlpConfig {
    /// Builds the network on `device` with burn's default (Kaiming-uniform) initialisation.
    pub fn init(&self, device: &Device) -> Mlp {
        let mut widths = vec![self.inputs];
        widths.extend(&self.hidden);
        let hidden = widths
            .windows(2)
            .map(|w| match *w {
                [from, to] => LinearConfig::new(from, to).init(device),
                _ => LinearConfig::new(1, 1).init(device),
            })
            .collect();
        let last = widths.last().copied().unwrap_or(self.inputs);
        Mlp {
            hidden,
            output: LinearConfig::new(last, self.classes).init(device),
            negative_slope: self.negative_slope,
        }
    }
}

/// A multi-layer perceptron with a piecewise-linear activation.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    output: Linear,
    #[module(skip)]
    negative_slope: f64,
}

impl Mlp {
    /// Builds an MLP from explicit weights: one `(weight, bias)` per layer, hidden layers
    /// first and the output layer last, `weight` as `inputs` rows of `outputs` values.
    /// Returns `None` when the shapes do not chain.
    pub fn from_weights(
        layers: &[(Vec<Vec<f32>>, Vec<f32>)],
        negative_slope: f64,
        device: &Device,
    ) -> Option<Self> {
        let mut linears = Vec::with_capacity(layers.len());
        let mut width = layers.first()?.0.len();
        for (weight, bias) in layers {
            let outputs = bias.len();
            if weight.len() != width || weight.iter().any(|row| row.len() != outputs) {
                return None;
            }
            let flat: Vec<f32> = weight.iter().flatten().copied().collect();
            linears.push(Linear {
                weight: burn::module::Param::from_tensor(Tensor::<2>::from_data(
                    TensorData::new(flat, [width, outputs]),
                    device,
                )),
                bias: Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(
                    TensorData::new(bias.clone(), [outputs]),
                    device,
                ))),
            });
            width = outputs;
        }
        let output = linears.pop()?;
        Some(Self {
            hidden: linears,
            output,
            negative_slope,
        })
    }

    /// `input`: `[batch, inputs]` -> logits `[batch, classes]` and one `[batch, width]`
    /// pre-activation tensor per hidden layer.
    pub fn forward(&self, input: Tensor<2>) -> ForwardOutput {
        let activation = Activation::from_slope(self.negative_slope);
        let mut x = input;
        let mut pre_activations = Vec::with_capacity(self.hidden.len());
        for layer in &self.hidden {
            let pre = layer.forward(x);
            pre_activations.push(pre.clone());
            x = activation.apply(pre);
        }
        ForwardOutput {
            logits: self.output.forward(x),
            pre_activations,
        }
    }
}

/// Configuration of [`Cnn`]: conv 1->10 5x5, max-pool 2, act, conv 10->20 5x5, max-pool 2,
/// act, fully connected -> classes (the factorization paper's network).
#[derive(Config, Debug)]
pub struct CnnConfig {
    /// Image height and width (28 for MNIST).
    #[config(default = 28)]
    pub image_side: usize,
    /// Output classes.
    #[config(default = 10)]
    pub classes: usize,
    /// Negative slope of the activation; 0 is ReLU.
    #[config(default = 0.0)]
    pub negative_slope: f64,
}

impl CnnConfig {
    /// Side of the feature map after both conv + pool stages.
    fn final_side(&self) -> usize {
        ((self.image_side.saturating_sub(4)) / 2).saturating_sub(4) / 2
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Cnn {
        let side = self.final_side();
        Cnn {
            conv1: Conv2dConfig::new([1, 10], [5, 5]).init(device),
            conv2: Conv2dConfig::new([10, 20], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            output: LinearConfig::new(20 * side * side, self.classes).init(device),
            image_side: self.image_side,
            negative_slope: self.negative_slope,
        }
    }
}

/// The small convolutional network of the factorization paper.
#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    output: Linear,
    #[module(skip)]
    image_side: usize,
    #[module(skip)]
    negative_slope: f64,
}

impl Cnn {
    /// `input`: `[batch, side * side]` (flattened images) -> logits `[batch, classes]`, and the
    /// pooled pre-activations of both conv stages, `[batch, 10 * 12 * 12]` and
    /// `[batch, 20 * 4 * 4]` for 28x28 inputs.
    pub fn forward(&self, input: Tensor<2>) -> ForwardOutput {
        let activation = Activation::from_slope(self.negative_slope);
        let [batch, _] = input.dims();
        let x = input.reshape([batch, 1, self.image_side, self.image_side]);
        let pre1 = self.pool.forward(self.conv1.forward(x));
        let a1 = activation.apply(pre1.clone());
        let pre2 = self.pool.forward(self.conv2.forward(a1));
        let a2 = activation.apply(pre2.clone());
        let flat1: Tensor<2> = pre1.flatten(1, 3);
        let flat2: Tensor<2> = pre2.flatten(1, 3);
        let logits = self.output.forward(a2.flatten(1, 3));
        ForwardOutput {
            logits,
            pre_activations: vec![flat1, flat2],
        }
    }
}

/// Which architecture to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSpec {
    /// An MLP with these hidden widths.
    Mlp {
        /// Hidden widths, e.g. `[40, 40, 40]`.
        hidden: Vec<usize>,
        /// Activation.
        activation: Activation,
    },
    /// The factorization paper's CNN (square single-channel images only).
    Cnn {
        /// Activation.
        activation: Activation,
    },
}

impl ModelSpec {
    /// The APD paper's network: three hidden layers of 40 ReLU units.
    pub fn paper_mlp() -> Self {
        Self::Mlp {
            hidden: vec![40, 40, 40],
            activation: Activation::Relu,
        }
    }

    /// Short description, e.g. `mlp 40-40-40 relu`.
    pub fn describe(&self) -> String {
        let name = |a: &Activation| match a {
            Activation::Relu => "relu".to_owned(),
            Activation::LeakyRelu { negative_slope } => format!("leaky-relu({negative_slope})"),
        };
        match self {
            Self::Mlp { hidden, activation } => {
                let widths: Vec<String> = hidden.iter().map(usize::to_string).collect();
                format!("mlp {} {}", widths.join("-"), name(activation))
            }
            Self::Cnn { activation } => format!("cnn {}", name(activation)),
        }
    }
}

/// A built network of either kind.
// One network lives per run, so the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`Cnn`].
    Cnn(Cnn),
}

impl Network {
    /// Builds `spec` for `inputs` features (or a `side x side` image for the CNN) and `classes`.
    pub fn init(spec: &ModelSpec, inputs: usize, classes: usize, device: &Device) -> Self {
        match spec {
            ModelSpec::Mlp { hidden, activation } => Self::Mlp(
                MlpConfig::new(inputs, hidden.clone(), classes)
                    .with_negative_slope(activation.negative_slope())
                    .init(device),
            ),
            ModelSpec::Cnn { activation } => Self::Cnn(
                CnnConfig::new()
                    .with_image_side((inputs as f64).sqrt().round() as usize)
                    .with_classes(classes)
                    .with_negative_slope(activation.negative_slope())
                    .init(device),
            ),
        }
    }

    /// `input`: `[batch, inputs]` -> logits and hidden pre-activations (see each network).
    pub fn forward(&self, input: Tensor<2>) -> ForwardOutput {
        match self {
            Self::Mlp(m) => m.forward(input),
            Self::Cnn(c) => c.forward(input),
        }
    }
}
