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

/// The order in which training instances are visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TrainOrder {
    /// Reshuffled every epoch (the default).
    #[default]
    Shuffled,
    /// Class by class, unshuffled, classes in the order `classes` lists them (ascending when
    /// it lists none): the factorization paper's case III.
    ByClass,
}

impl TrainOrder {
    /// Parses `shuffled` or `by-class`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "shuffled" => Ok(Self::Shuffled),
            "by-class" => Ok(Self::ByClass),
            other => Err(ConfigError::Invalid(format!(
                "unknown order `{other}`: use shuffled or by-class"
            ))),
        }
    }
}

/// Seed mixed into the run's seed for the shuffle that `fraction` takes the first part of.
const FRACTION_ORDER_SEED: u64 = 0x0f2a_c710;

/// Which part of the training set trains the network, and in which order: the factorization
/// paper's case studies (I: a fraction of the shuffled set, II: some classes only, III: class
/// by class). Validation, test and probe sets stay whole, so runs compare on the same
/// instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingData {
    /// Share of the training set kept, in `(0, 1]`: the first part of a seeded shuffle
    /// (after `classes` has filtered it).
    pub fraction: f64,
    /// Only instances of these classes; empty keeps every class.
    pub classes: Vec<u32>,
    /// Batch order.
    pub order: TrainOrder,
}

impl Default for TrainingData {
    fn default() -> Self {
        Self {
            fraction: 1.0,
            classes: Vec::new(),
            order: TrainOrder::Shuffled,
        }
    }
}

impl TrainingData {
    /// Parses classes written `0,1,2`.
    pub fn parse_classes(text: &str) -> Result<Vec<u32>, ConfigError> {
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<u32>().map_err(|_| {
                    ConfigError::Invalid(format!("classes: `{t}` is not a class number"))
                })
            })
            .collect()
    }

    /// Checks the fraction and the class list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.fraction.is_finite() && self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "fraction must be in (0, 1], got {}",
                self.fraction
            )));
        }
        for (i, class) in self.classes.iter().enumerate() {
            if self
                .classes
                .get(..i)
                .is_some_and(|before| before.contains(class))
            {
                return Err(ConfigError::Invalid(format!(
                    "classes: {class} is listed twice"
                )));
            }
        }
        Ok(())
    }

    /// How the training set was cut, for run names: `None` when it is whole and shuffled.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.fraction < 1.0 {
            parts.push(format!("{}% of the training set", self.fraction * 100.0));
        }
        if !self.classes.is_empty() {
            let list: Vec<String> = self.classes.iter().map(u32::to_string).collect();
            parts.push(format!("classes {}", list.join(",")));
        }
        if self.order == TrainOrder::ByClass {
            parts.push("class by class".to_owned());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// The training instances kept, in the order an epoch visits them before any shuffle:
    /// `labels` are the training set's, `class_count` the data's classes, `seed` the run's.
    pub fn select(
        &self,
        labels: &[u32],
        class_count: usize,
        seed: u64,
    ) -> Result<Vec<usize>, ConfigError> {
        if let Some(&class) = self.classes.iter().find(|&&c| c as usize >= class_count) {
            return Err(ConfigError::Invalid(format!(
                "classes: the data has classes 0 to {}, not {class}",
                class_count.saturating_sub(1)
            )));
        }
        let wanted = |i: usize| {
            self.classes.is_empty() || labels.get(i).is_some_and(|l| self.classes.contains(l))
        };
        let mut order: Vec<usize> = (0..labels.len()).filter(|&i| wanted(i)).collect();
        actiscope_analysis::rng::SplitMix64::new(seed ^ FRACTION_ORDER_SEED).shuffle(&mut order);
        let keep = ((self.fraction * order.len() as f64).ceil() as usize).min(order.len());
        order.truncate(keep);
        if order.is_empty() {
            return Err(ConfigError::Invalid(
                "no training instance is left after fraction and classes".to_owned(),
            ));
        }
        order.sort_unstable();
        if self.order == TrainOrder::ByClass {
            let rank = |i: &usize| {
                let label = labels.get(*i).copied().unwrap_or(0);
                self.classes
                    .iter()
                    .position(|&c| c == label)
                    .unwrap_or(label as usize)
            };
            order.sort_by_key(rank);
        }
        Ok(order)
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
    /// Which part of the training set trains, in which order (all of it, shuffled, unless
    /// asked otherwise; configurations stored before this key existed read as that).
    #[serde(default)]
    pub training: TrainingData,
    /// Store a checkpoint (weights and optimizer state) every this many epochs and after the
    /// last; a run keeps only its newest. 0 stores none.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

/// Checkpoints of runs whose configuration does not say: every epoch.
fn default_checkpoint_every() -> usize {
    1
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
        self.training.validate()
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
    fn training_subsets_keep_a_fraction_of_some_classes_in_the_asked_order() {
        // Ten instances of each of three classes, ordered by class as the digits are.
        let labels: Vec<u32> = (0..30).map(|i| i / 10).collect();
        let whole = TrainingData::default().select(&labels, 3, 7).unwrap();
        assert_eq!(whole, (0..30).collect::<Vec<_>>());
        let half = TrainingData {
            fraction: 0.5,
            ..TrainingData::default()
        };
        let kept = half.select(&labels, 3, 7).unwrap();
        assert_eq!(kept.len(), 15);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        // The first half of a shuffle, not the first half of the file: every class is in it.
        for class in 0..3 {
            assert!(kept.iter().any(|&i| labels[i] == class), "class {class}");
        }
        assert_eq!(kept, half.select(&labels, 3, 7).unwrap(), "seeded");
        assert_ne!(kept, half.select(&labels, 3, 8).unwrap());
        let some = TrainingData {
            classes: vec![2, 0],
            order: TrainOrder::ByClass,
            ..TrainingData::default()
        };
        let kept = some.select(&labels, 3, 7).unwrap();
        let seen: Vec<u32> = kept.iter().map(|&i| labels[i]).collect();
        assert_eq!(
            seen,
            [vec![2; 10], vec![0; 10]].concat(),
            "class 2 first, as listed"
        );
        assert!(
            some.describe()
                .unwrap()
                .contains("classes 2,0, class by class")
        );
        assert!(TrainingData::default().describe().is_none());
        let err = TrainingData {
            classes: vec![5],
            ..TrainingData::default()
        }
        .select(&labels, 3, 7)
        .unwrap_err();
        assert!(err.to_string().contains("0 to 2, not 5"), "{err}");
        assert!(TrainingData::parse_classes("0, 1,x").is_err());
        assert_eq!(TrainOrder::parse("by-class").unwrap(), TrainOrder::ByClass);
        assert!(TrainOrder::parse("random").is_err());
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
        check(&|c| c.training.fraction = 0.0, "fraction");
        check(&|c| c.training.fraction = 1.5, "fraction");
        check(&|c| c.training.fraction = f64::NAN, "fraction");
        check(&|c| c.training.classes = vec![1, 2, 1], "listed twice");
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
