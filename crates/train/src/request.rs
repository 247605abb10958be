//! A request for a run as people write it: the keys of `actiscope train --config` (TOML), of
//! the command-line flags, of the body of `POST /api/runs` and of the dashboard's New-run form,
//! all one type. Every key is optional; what a request leaves out comes from its preset.
//!
//! Presets: `default` (what a new user gets: the APD paper's 784-40-40-40-10 MLP trained with
//! Adam, which learns the built-in digits within a few epochs) and `apd-paper` (the paper's
//! exact setting, SGD at lr 0.001, which needs hundreds of epochs to learn).

use serde::{Deserialize, Serialize};

use crate::config::{
    ConfigError, OptimizerKind, ProbeSpec, TrainConfig, TrainOrder, TrainingData, parse_widths,
};
use crate::data::DatasetSpec;
use crate::device::DeviceChoice;
use crate::model::{Activation, ModelSpec};

/// A named starting point for a run's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The paper's MLP with Adam (lr 0.001, batch 64): visibly learns within a minute.
    #[default]
    Default,
    /// The APD paper's exact setting: the same MLP with SGD at lr 0.001, batch 64.
    ApdPaper,
}

impl Preset {
    /// Every preset, in the order the New-run form lists them.
    pub const ALL: [Preset; 2] = [Preset::Default, Preset::ApdPaper];

    /// Parses `default` or `apd-paper`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|preset| preset.name() == text)
            .ok_or_else(|| {
                ConfigError::Invalid(format!("unknown preset `{text}`: use default or apd-paper"))
            })
    }

    /// The preset's name, as `--preset` and the `preset` key take it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::ApdPaper => "apd-paper",
        }
    }

    /// The full configuration of the preset.
    pub fn config(self) -> TrainConfig {
        let optimizer = match self {
            Self::Default => OptimizerKind::Adam,
            Self::ApdPaper => OptimizerKind::Sgd,
        };
        TrainConfig {
            dataset: DatasetSpec::Digits,
            model: ModelSpec::paper_mlp(),
            optimizer,
            learning_rate: 0.001,
            batch_size: 64,
            epochs: 20,
            seed: 0,
            probe: ProbeSpec::default(),
            device: DeviceChoice::Auto,
            training: Default::default(),
            checkpoint_every: 1,
        }
    }
}

/// Hidden widths as a list (`[40, 40]`) or as text (`"40,40"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Widths {
    /// `[40, 40, 40]`.
    List(Vec<i64>),
    /// `"40,40,40"`.
    Text(String),
}

impl Widths {
    fn parse(&self) -> Result<Vec<usize>, ConfigError> {
        match self {
            Self::Text(text) => parse_widths(text),
            Self::List(list) => {
                let text: Vec<String> = list.iter().map(i64::to_string).collect();
                parse_widths(&text.join(","))
            }
        }
    }
}

/// Classes as a list (`[0, 1]`) or as text (`"0,1"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Classes {
    /// `[0, 1, 2]`.
    List(Vec<i64>),
    /// `"0,1,2"`.
    Text(String),
}

impl Classes {
    fn parse(&self) -> Result<Vec<u32>, ConfigError> {
        match self {
            Self::Text(text) => TrainingData::parse_classes(text),
            Self::List(list) => list
                .iter()
                .map(|&c| {
                    u32::try_from(c)
                        .map_err(|_| invalid(format!("classes: `{c}` is not a class number")))
                })
                .collect(),
        }
    }
}

/// The settings of a run as requested; [`RunRequest::to_config`] validates them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// `default` or `apd-paper`: where the keys left out come from.
    pub preset: Option<String>,
    /// `digits`, `fashion-mnist`, `moons`, `circles`, `spirals`, `xor`, `blobs` or a directory
    /// with the four IDX files.
    pub dataset: Option<String>,
    /// Hidden widths of the MLP.
    pub hidden: Option<Widths>,
    /// `mlp` or `cnn`.
    pub model: Option<String>,
    /// `relu` or `leaky-relu`.
    pub activation: Option<String>,
    /// `sgd` or `adam`.
    pub optimizer: Option<String>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Batch size (signed, so that a negative one gets a clear message).
    pub batch: Option<i64>,
    /// Epochs (signed, as `batch`).
    pub epochs: Option<i64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Probe set, e.g. `label=1,n=500` (optionally `,from=train`).
    pub probe: Option<String>,
    /// `auto`, `wgpu`, `vulkan` or `flex`.
    pub device: Option<String>,
    /// Share of the training set that trains, in `(0, 1]` (the factorization paper's case I).
    pub fraction: Option<f64>,
    /// Only these classes train (case II).
    pub classes: Option<Classes>,
    /// `shuffled` or `by-class` (case III).
    pub order: Option<String>,
    /// Store a checkpoint every this many epochs (0: none); the default is every epoch.
    pub checkpoint_every: Option<i64>,
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

impl RunRequest {
    /// This request with every key it leaves out taken from `fallback` (flags over a file).
    pub fn or(self, fallback: RunRequest) -> RunRequest {
        RunRequest {
            preset: self.preset.or(fallback.preset),
            dataset: self.dataset.or(fallback.dataset),
            hidden: self.hidden.or(fallback.hidden),
            model: self.model.or(fallback.model),
            activation: self.activation.or(fallback.activation),
            optimizer: self.optimizer.or(fallback.optimizer),
            lr: self.lr.or(fallback.lr),
            batch: self.batch.or(fallback.batch),
            epochs: self.epochs.or(fallback.epochs),
            seed: self.seed.or(fallback.seed),
            probe: self.probe.or(fallback.probe),
            device: self.device.or(fallback.device),
            fraction: self.fraction.or(fallback.fraction),
            classes: self.classes.or(fallback.classes),
            order: self.order.or(fallback.order),
            checkpoint_every: self.checkpoint_every.or(fallback.checkpoint_every),
        }
    }

    /// The validated configuration: the preset's, with every key the request sets replaced.
    /// The error names the first bad key.
    pub fn to_config(&self) -> Result<TrainConfig, ConfigError> {
        let preset = match &self.preset {
            Some(name) => Preset::parse(name)?,
            None => Preset::default(),
        };
        let mut config = preset.config();
        if let Some(name) = &self.dataset {
            config.dataset = DatasetSpec::parse(name).map_err(|e| invalid(e.to_string()))?;
        }
        let activation = match self.activation.as_deref() {
            None | Some("relu") => Activation::Relu,
            Some("leaky-relu") => Activation::LeakyRelu {
                negative_slope: 0.01,
            },
            Some(other) => {
                return Err(invalid(format!(
                    "unknown activation `{other}`: use relu or leaky-relu"
                )));
            }
        };
        let hidden = self.hidden.as_ref().map(Widths::parse).transpose()?;
        config.model = match self.model.as_deref() {
            Some("cnn") => {
                if hidden.is_some() {
                    return Err(invalid(
                        "hidden widths are for the MLP: the CNN's layers are fixed",
                    ));
                }
                ModelSpec::Cnn { activation }
            }
            None | Some("mlp") => ModelSpec::Mlp {
                hidden: match (hidden, &config.model) {
                    (Some(hidden), _) => hidden,
                    (None, ModelSpec::Mlp { hidden, .. }) => hidden.clone(),
                    (None, ModelSpec::Cnn { .. }) => vec![40, 40, 40],
                },
                activation,
            },
            Some(other) => return Err(invalid(format!("unknown model `{other}`: use mlp or cnn"))),
        };
        if let Some(name) = &self.optimizer {
            config.optimizer = OptimizerKind::parse(name)?;
        }
        if let Some(lr) = self.lr {
            config.learning_rate = lr;
        }
        let positive = |name: &str, value: i64| {
            usize::try_from(value)
                .map_err(|_| invalid(format!("{name} must be positive, got {value}")))
        };
        if let Some(batch) = self.batch {
            config.batch_size = positive("batch size", batch)?;
        }
        if let Some(epochs) = self.epochs {
            config.epochs = positive("epochs", epochs)?;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(probe) = &self.probe {
            config.probe = ProbeSpec::parse(probe)?;
        }
        if let Some(device) = &self.device {
            config.device = DeviceChoice::parse(device).map_err(|e| invalid(e.to_string()))?;
        }
        if let Some(fraction) = self.fraction {
            config.training.fraction = fraction;
        }
        if let Some(classes) = &self.classes {
            config.training.classes = classes.parse()?;
        }
        if let Some(order) = &self.order {
            config.training.order = TrainOrder::parse(order)?;
        }
        if let Some(every) = self.checkpoint_every {
            config.checkpoint_every = usize::try_from(every)
                .map_err(|_| invalid(format!("checkpoint_every must be 0 or more, got {every}")))?;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_request_is_the_default_preset_and_the_paper_is_one_key_away() {
        let default = RunRequest::default().to_config().unwrap();
        assert_eq!(default, Preset::Default.config());
        assert_eq!(default.optimizer, OptimizerKind::Adam);
        let paper = RunRequest {
            preset: Some("apd-paper".to_owned()),
            ..RunRequest::default()
        }
        .to_config()
        .unwrap();
        assert_eq!(paper.optimizer, OptimizerKind::Sgd);
        assert_eq!(paper.learning_rate, 0.001);
        assert_eq!(paper.model, ModelSpec::paper_mlp());
        assert_eq!(paper.batch_size, 64);
    }

    #[test]
    fn training_subsets_are_keys_like_the_others() {
        let config = RunRequest {
            fraction: Some(0.25),
            classes: Some(Classes::Text("0,1".to_owned())),
            order: Some("by-class".to_owned()),
            ..RunRequest::default()
        }
        .to_config()
        .unwrap();
        assert_eq!(config.training.fraction, 0.25);
        assert_eq!(config.training.classes, [0, 1]);
        assert_eq!(config.training.order, TrainOrder::ByClass);
        let json: RunRequest =
            serde_json::from_str(r#"{"fraction": 0.5, "classes": [3, 4]}"#).unwrap();
        assert_eq!(json.to_config().unwrap().training.classes, [3, 4]);
        for (bad, needle) in [
            (r#"{"fraction": 0}"#, "fraction"),
            (r#"{"fraction": 2.5}"#, "fraction"),
            (r#"{"classes": [-1]}"#, "class number"),
            (r#"{"classes": "1,1"}"#, "twice"),
            (r#"{"order": "random"}"#, "by-class"),
        ] {
            let request: RunRequest = serde_json::from_str(bad).unwrap();
            let err = request.to_config().unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        // A configuration stored before these keys existed reads as the whole set.
        let mut stored = serde_json::to_value(TrainConfig::default()).unwrap();
        stored.as_object_mut().unwrap().remove("training");
        let read: TrainConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(read.training, TrainingData::default());
    }

    #[test]
    fn keys_override_the_preset_and_flags_override_a_file() {
        let file = RunRequest {
            preset: Some("apd-paper".to_owned()),
            lr: Some(0.05),
            hidden: Some(Widths::List(vec![20, 10])),
            epochs: Some(3),
            ..RunRequest::default()
        };
        let flags = RunRequest {
            epochs: Some(7),
            hidden: Some(Widths::Text("8,4".to_owned())),
            ..RunRequest::default()
        };
        let config = flags.or(file).to_config().unwrap();
        assert_eq!(config.optimizer, OptimizerKind::Sgd, "from the preset");
        assert_eq!(config.learning_rate, 0.05, "from the file");
        assert_eq!(config.epochs, 7, "the flag wins");
        assert_eq!(
            config.model,
            ModelSpec::Mlp {
                hidden: vec![8, 4],
                activation: Activation::Relu
            }
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let cases: [(RunRequest, &str); 8] = [
            (
                RunRequest {
                    preset: Some("fast".to_owned()),
                    ..RunRequest::default()
                },
                "preset",
            ),
            (
                RunRequest {
                    epochs: Some(0),
                    ..RunRequest::default()
                },
                "epochs",
            ),
            (
                RunRequest {
                    batch: Some(-2),
                    ..RunRequest::default()
                },
                "batch size",
            ),
            (
                RunRequest {
                    lr: Some(-1.0),
                    ..RunRequest::default()
                },
                "learning rate",
            ),
            (
                RunRequest {
                    model: Some("transformer".to_owned()),
                    ..RunRequest::default()
                },
                "model",
            ),
            (
                RunRequest {
                    activation: Some("gelu".to_owned()),
                    ..RunRequest::default()
                },
                "activation",
            ),
            (
                RunRequest {
                    hidden: Some(Widths::List(vec![40, -1])),
                    ..RunRequest::default()
                },
                "-1",
            ),
            (
                RunRequest {
                    model: Some("cnn".to_owned()),
                    hidden: Some(Widths::Text("10".to_owned())),
                    ..RunRequest::default()
                },
                "CNN",
            ),
        ];
        for (request, needle) in cases {
            let err = request.to_config().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }

    #[test]
    fn json_and_toml_spellings_read_the_same() {
        let from_json: RunRequest =
            serde_json::from_str(r#"{"hidden": [30, 20], "optimizer": "sgd", "lr": 0.1}"#).unwrap();
        let from_text: RunRequest =
            serde_json::from_str(r#"{"hidden": "30,20", "optimizer": "sgd", "lr": 0.1}"#).unwrap();
        assert_eq!(
            from_json.to_config().unwrap(),
            from_text.to_config().unwrap()
        );
        assert!(serde_json::from_str::<RunRequest>(r#"{"colour": "red"}"#).is_err());
    }
}
