//! `run.toml`: what an imported run is called, its layers in order, its classes, the
//! threshold above which a unit counts as active, and how many instances the lenses keep.

use std::path::Path;

use serde::Deserialize;

use crate::error::ImportError;

/// Instances kept for the per-instance lenses when `run.toml` does not say.
pub const DEFAULT_PROBE: usize = 1000;

/// The contents of `run.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A name for people.
    pub name: String,
    /// Hidden layers, in order; each epoch holds one tensor per name.
    pub layers: Vec<String>,
    /// Class names; labels and predictions are indices into them.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// A unit is active (its pattern bit is 1) when its value is `> threshold`.
    #[serde(default)]
    pub threshold: f32,
    /// Instances (the first ones) kept for the APD, flows, mapper, NMF and similarity;
    /// default [`DEFAULT_PROBE`] or all when fewer.
    #[serde(default)]
    pub probe: Option<usize>,
}

impl RunSpec {
    /// Parses and checks the `run.toml` text `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ImportError> {
        let invalid = |reason: String| ImportError::invalid(path, None, reason);
        let spec: Self = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if spec.name.trim().is_empty() {
            return Err(invalid("`name` is empty".to_owned()));
        }
        if spec.layers.is_empty() {
            return Err(invalid("`layers` names no layer".to_owned()));
        }
        for (i, layer) in spec.layers.iter().enumerate() {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
            if layer.is_empty() || !layer.chars().all(allowed) {
                return Err(invalid(format!(
                    "layer name {layer:?}: use letters, digits, `_`, `-` and `.`"
                )));
            }
            if spec
                .layers
                .get(..i)
                .is_some_and(|before| before.contains(layer))
            {
                return Err(invalid(format!("layer {layer:?} is listed twice")));
            }
            if ["predictions", "losses"].contains(&layer.as_str()) {
                return Err(invalid(format!(
                    "layer name {layer:?} is reserved for an epoch's extra tensors"
                )));
            }
        }
        if !spec.threshold.is_finite() {
            return Err(invalid(format!(
                "threshold {} is not finite",
                spec.threshold
            )));
        }
        if spec.probe == Some(0) {
            return Err(invalid(
                "probe = 0 keeps no instance for the lenses".to_owned(),
            ));
        }
        if spec.classes.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid("`classes` is empty".to_owned()));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunSpec, String> {
        RunSpec::parse(text, Path::new("run.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_spec_parses_and_defaults_fill_in() {
        let spec = parse("name = \"mlp\"\nlayers = [\"fc1\", \"fc2\"]\n").unwrap();
        assert_eq!(spec.layers, ["fc1", "fc2"]);
        assert_eq!(
            (spec.threshold, spec.probe, spec.classes),
            (0.0, None, None)
        );
        let spec = parse(
            "name = \"m\"\nlayers = [\"a\"]\nclasses = [\"x\", \"y\"]\nthreshold = 0.5\nprobe = 7\n",
        )
        .unwrap();
        assert_eq!((spec.threshold, spec.probe), (0.5, Some(7)));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("name = \"m\"\nlayers = []\n", "no layer"),
            ("name = \"m\"\nlayers = [\"a\", \"a\"]\n", "twice"),
            ("name = \"m\"\nlayers = [\"a/b\"]\n", "letters"),
            ("name = \"m\"\nlayers = [\"losses\"]\n", "reserved"),
            ("name = \"\"\nlayers = [\"a\"]\n", "empty"),
            ("name = \"m\"\nlayers = [\"a\"]\nprobe = 0\n", "probe"),
            (
                "name = \"m\"\nlayers = [\"a\"]\nlayer = 3\n",
                "unknown field",
            ),
            ("layers = [\"a\"]\n", "name"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains(expected) && err.contains("run.toml"),
                "{text}: {err}"
            );
        }
    }
}
