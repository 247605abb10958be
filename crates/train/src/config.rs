//! A run's configuration and its validation: every bad value is refused with one clear message
//! before anything is loaded or written.

use serde::{Deserialize, Serialize};

use crate::data::DatasetSpec;
use crate::device::DeviceChoice;
use crate::model::ModelSpec;

/// Most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// Largest batch size.
pub const MAX_BATCH: usize = 65_536;
/// Widest hidden layer.
pub const MAX_WIDTH: usize = 65_536;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent (the APD paper's choice, lr 0.001).
    Sgd,
    /// Adam with burn's default betas.
    Adam,
}

impl OptimizerKind {
    /// Parses `sgd` or `adam`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "sgd" => Ok(Self::Sgd),
            "adam" => Ok(Self::Adam),
            other => Err(ConfigError::Invalid(format!(
                "unknown optimizer `{other}`: use sgd or adam"
            ))),
        }
    }
}

/// Which set the probe instances are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeSource {
    /// The fixed held-out test set (the default: the same instances for every run).
    Test,
    /// The training set.
    Train,
}

/// The probe set: the instances whose APD, raw activations and losses are kept every epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Only instances with this true label, or all labels.
    pub label: Option<u32>,
    /// How many instances (the first ones matching, in set order).
    pub count: usize,
    /// Where from.
    pub source: ProbeSource,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            label: None,
            count: 500,
            source: ProbeSource::Test,
        }
    }
}

impl ProbeSpec {
    /// Parses `label=1,n=500[,from=test|train]`; every key is optional.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut spec = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || ConfigError::Invalid(format!("probe: cannot read `{part}`"));
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            match key.trim() {
                "label" => spec.label = Some(value.trim().parse().map_err(|_| bad())?),
                "n" => spec.count = value.trim().parse().map_err(|_| bad())?,
                "from" => {
                    spec.source = match value.trim() {
                        "test" => ProbeSource::Test,
                        "train" => ProbeSource::Train,
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            }
        }
        if spec.count == 0 {
            return Err(ConfigError::Invalid(
                "probe: n must be at least 1".to_owned(),
            ));
        }
        Ok(spec)
    }
}

/// Everything that defines a run. Same config and device => same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The data.
    pub dataset: DatasetSpec,
    /// The network.
    pub model: ModelSpec,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate, `> 0`.
    pub learning_rate: f64,
    /// Instances per optimisation step.
    pub batch_size: usize,
    /// Epochs to train.
    pub epochs: usize,
    /// Seed of the initialisation, the validation split and the batch order.
    pub seed: u64,
    /// The probe set.
    pub probe: ProbeSpec,
    /// Where to train.
    pub device: DeviceChoice,
}

impl Default for TrainConfig {
    /// What a run gets when nothing is asked for: [`Preset::Default`](crate::request::Preset),
    /// the APD paper's 784-40-40-40-10 MLP on the built-in digits, trained with Adam.
    fn default() -> Self {
        crate::request::Preset::Default.config()
    }
}

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The message names the field and the allowed range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl TrainConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "learning rate must be a finite number > 0, got {}",
                self.learning_rate
            ));
        }
        if self.learning_rate > 10.0 {
            return invalid(format!(
                "learning rate {} is absurdly large (max 10)",
                self.learning_rate
            ));
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return invalid(format!(
                "epochs must be in 1..={MAX_EPOCHS}, got {}",
                self.epochs
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return invalid(format!(
                "batch size must be in 1..={MAX_BATCH}, got {}",
                self.batch_size
            ));
        }
        if let ModelSpec::Mlp { hidden, .. } = &self.model {
            if hidden.is_empty() {
                return invalid("the MLP needs at least one hidden layer".to_owned());
            }
            if let Some(bad) = hidden.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
                return invalid(format!(
                    "hidden widths must be in 1..={MAX_WIDTH}, got {bad}"
                ));
            }
        }
        if self.probe.count == 0 {
            return invalid("probe: n must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Parses hidden widths written `40,40,40`; zero, negative or non-numeric widths are refused.
pub fn parse_widths(text: &str) -> Result<Vec<usize>, ConfigError> {
    text.split(',')
        .map(|w| {
            let w = w.trim();
            match w.parse::<i64>() {
                Ok(v) if v >= 1 && v as usize <= MAX_WIDTH => Ok(v as usize),
                Ok(v) => Err(ConfigError::Invalid(format!(
                    "hidden widths must be in 1..={MAX_WIDTH}, got {v}"
                ))),
                Err(_) => Err(ConfigError::Invalid(format!(
                    "hidden width `{w}` is not a number"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_network_with_adam_and_valid() {
        let c = TrainConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.learning_rate, 0.001);
        assert_eq!(c.optimizer, OptimizerKind::Adam);
        assert_eq!(c.model, ModelSpec::paper_mlp());
    }

    #[test]
    fn bad_values_are_named() {
        let check = |mutate: &dyn Fn(&mut TrainConfig), needle: &str| {
            let mut c = TrainConfig::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        };
        check(&|c| c.learning_rate = 0.0, "learning rate");
        check(&|c| c.learning_rate = -1.0, "learning rate");
        check(&|c| c.learning_rate = f64::NAN, "learning rate");
        check(&|c| c.learning_rate = 1e9, "absurdly");
        check(&|c| c.epochs = 0, "epochs");
        check(&|c| c.epochs = MAX_EPOCHS + 1, "epochs");
        check(&|c| c.batch_size = 0, "batch size");
        check(
            &|c| {
                c.model = ModelSpec::Mlp {
                    hidden: vec![40, 0],
                    activation: crate::model::Activation::Relu,
                }
            },
            "widths",
        );
        assert!(
            parse_widths("40,-3")
                .unwrap_err()
                .to_string()
                .contains("-3")
        );
        assert!(parse_widths("40,x").is_err());
        assert_eq!(parse_widths("40, 20").unwrap(), [40, 20]);
    }

    #[test]
    fn probe_specs_parse() {
        assert_eq!(
            ProbeSpec::parse("label=1,n=500").unwrap(),
            ProbeSpec {
                label: Some(1),
                count: 500,
                source: ProbeSource::Test
            }
        );
        assert_eq!(
            ProbeSpec::parse("n=20,from=train").unwrap().source,
            ProbeSource::Train
        );
        assert!(ProbeSpec::parse("n=0").is_err());
        assert!(ProbeSpec::parse("colour=red").is_err());
        assert!(ProbeSpec::parse("label=x").is_err());
    }
}
