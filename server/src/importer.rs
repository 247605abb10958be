//! Imported runs: a run directory written by another framework (read by `actiscope-import`)
//! turned into stored epochs exactly like a trained run's, so every lens, figure and export
//! works on it. Unique-pattern counts cover every instance; the per-instance views (APD,
//! flows, mapper, NMF, similarity) use the first `probe` instances, whose activations are
//! stored. Used by `actiscope import` and by `POST /api/imports`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use actiscope_analysis::Matrix;
use actiscope_analysis::patterns::{PatternMatrix, count_unique};
use actiscope_import::{EpochEntry, ImportError, Inputs, RunDir};
use actiscope_protocol::{EpochMetrics, EpochSnapshot, ProbeImages};
use actiscope_store::{NewRun, Store};
use serde::{Deserialize, Serialize};

use crate::runner::{IMAGES_KIND, ProbeParts, RunError, store_epoch};

/// How often `--follow` looks for new epochs.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What an imported run stores as its configuration (`{"imported": …}` in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedRun {
    /// The run directory it was imported from.
    pub directory: String,
    /// Its layers, in order.
    pub layers: Vec<String>,
    /// Units of each layer.
    pub units: Vec<usize>,
    /// Instances whose patterns are counted.
    pub instances: usize,
    /// Instances kept for the per-instance lenses (the first ones).
    pub probe: usize,
    /// A unit is active when its value is `> threshold`.
    pub threshold: f32,
    /// Class names, when given.
    pub classes: Option<Vec<String>>,
    /// Epochs in the directory when the import started.
    pub epochs_found: usize,
}

/// The JSON an imported run stores as its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedConfig {
    /// What was imported.
    pub imported: ImportedRun,
}

impl ImportedRun {
    /// `imported fc1 12, fc2 8`: for the run list.
    pub fn describe(&self) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, name)| match self.units.get(i) {
                Some(units) => format!("{name} {units}"),
                None => name.clone(),
            })
            .collect();
        format!("imported {}", layers.join(", "))
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The directory holds something it must not: the user's input (exit status 2).
    #[error(transparent)]
    Input(#[from] ImportError),
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] RunError),
}

/// Checks the epochs present in `run` before anything is stored: numbered from 1 without a
/// gap, every layer in every epoch with the same units. Returns the epochs and the units.
pub fn check(run: &RunDir) -> Result<(Vec<EpochEntry>, Vec<usize>), ImportError> {
    let entries = run.epochs()?;
    check_numbers(&entries, 0)?;
    let mut units: Option<Vec<usize>> = None;
    for entry in &entries {
        let found = run.check_epoch(entry)?;
        check_units(units.as_deref(), &found, entry)?;
        units.get_or_insert(found);
    }
    Ok((entries, units.unwrap_or_default()))
}

/// Epochs after `last` must be `last + 1, last + 2, …`.
fn check_numbers(entries: &[EpochEntry], last: u32) -> Result<(), ImportError> {
    for (expected, entry) in (last + 1..).zip(entries.iter().filter(|e| e.number > last)) {
        if entry.number != expected {
            return Err(ImportError::invalid(
                &entry.path,
                None,
                format!(
                    "epoch {expected} is missing: epochs count up from 1 without gaps, and this \
                     one is epoch {}",
                    entry.number
                ),
            ));
        }
    }
    Ok(())
}

fn check_units(
    expected: Option<&[usize]>,
    found: &[usize],
    entry: &EpochEntry,
) -> Result<(), ImportError> {
    match expected {
        Some(expected) if expected != found => Err(ImportError::invalid(
            &entry.path,
            None,
            format!("layers have {found:?} units here but {expected:?} in the first epoch"),
        )),
        _ => Ok(()),
    }
}

/// Instances kept for the per-instance lenses, given the layers' `units`: what `run.toml`
/// asks for (or the default) when their activations fit one stored epoch (a blob over the
/// protocol's frame limit could be written but never read back). A default that does not fit
/// shrinks to what does; an explicit `probe` that does not fit is refused with the number that
/// would.
pub fn probe_for(run: &RunDir, units: &[usize]) -> Result<usize, ImportError> {
    let total_units: usize = units.iter().sum::<usize>().max(1);
    // Postcard writes each f32 in 4 bytes; a little room for the matrices' headers.
    let budget = actiscope_protocol::MAX_FRAME_BYTES - 64 * 1024;
    let fits = budget / total_units / 4;
    let wanted = run.probe();
    if wanted <= fits {
        return Ok(wanted);
    }
    match run.spec().probe {
        Some(asked) => Err(ImportError::invalid(
            run.root().join("run.toml"),
            None,
            format!(
                "probe = {asked}: the probe's activations would take {:.1} MiB per epoch \
                 ({wanted} instances x {total_units} units x 4 bytes), over the {} MiB one \
                 stored epoch may hold; set probe to at most {fits}",
                (wanted * total_units * 4) as f64 / (1024.0 * 1024.0),
                actiscope_protocol::MAX_FRAME_BYTES / (1024 * 1024)
            ),
        )),
        None => Ok(fits.max(1)),
    }
}

/// The probe inputs as the dashboard shows them: images as bytes (values in `[0, 1]` scaled
/// by 255, larger ones taken as `0..=255`), 2-D vectors as points; `None` otherwise.
fn probe_images(run: &RunDir, probe: usize) -> Option<ProbeImages> {
    match run.inputs()? {
        Inputs::Images { rows, cols, values } => {
            let values = values.get(..probe * rows * cols).unwrap_or(values);
            let scale = if values.iter().all(|&v| v <= 1.0) {
                255.0
            } else {
                1.0
            };
            Some(ProbeImages {
                rows: u32::try_from(*rows).ok()?,
                cols: u32::try_from(*cols).ok()?,
                pixels: values
                    .iter()
                    .map(|&v| (v * scale).round().clamp(0.0, 255.0) as u8)
                    .collect(),
                points: Vec::new(),
            })
        }
        Inputs::Vectors { dim: 2, values } => Some(ProbeImages {
            rows: 0,
            cols: 0,
            pixels: Vec::new(),
            points: values.get(..probe * 2).unwrap_or(values).to_vec(),
        }),
        Inputs::Vectors { .. } => None,
    }
}

/// SHA-256 of what identifies the instances: the labels and the probe inputs.
fn instances_sha256(run: &RunDir) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for label in run.labels() {
        hasher.update(label.to_le_bytes());
    }
    if let Some(Inputs::Images { values, .. } | Inputs::Vectors { values, .. }) = run.inputs() {
        for value in values {
            hasher.update(value.to_le_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records the imported run (its name, configuration and probe images, in one transaction),
/// owned by `owner`. Returns its id.
pub fn record(
    store: &mut Store,
    run: &RunDir,
    units: &[usize],
    epochs_found: usize,
    owner: &str,
) -> Result<i64, RunError> {
    let spec = run.spec();
    let probe = probe_for(run, units).unwrap_or_else(|_| run.probe());
    let config = ImportedConfig {
        imported: ImportedRun {
            directory: run.root().display().to_string(),
            layers: spec.layers.clone(),
            units: units.to_vec(),
            instances: run.instances(),
            probe,
            threshold: spec.threshold,
            classes: spec.classes.clone(),
            epochs_found,
        },
    };
    let config_json =
        serde_json::to_string(&config).map_err(|e| RunError::Analysis(e.to_string()))?;
    let images = probe_images(run, probe)
        .map(|images| actiscope_protocol::encode(&images))
        .transpose()?;
    let snapshots: Vec<(&str, &[u8])> = images
        .as_deref()
        .map(|blob| vec![(IMAGES_KIND, blob)])
        .unwrap_or_default();
    Ok(store.record_run(&NewRun {
        name: &spec.name,
        config_json: &config_json,
        device: "imported (trained elsewhere)",
        dataset_sha256: &instances_sha256(run),
        owner,
        snapshots: &snapshots,
    })?)
}

/// `values` with the threshold subtracted, so that "active" is `> 0` as everywhere else.
fn shifted<'a>(values: &'a [f32], threshold: f32, buffer: &'a mut Vec<f32>) -> &'a [f32] {
    if threshold == 0.0 {
        return values;
    }
    buffer.clear();
    buffer.extend(values.iter().map(|v| v - threshold));
    buffer
}

/// Reads one epoch of `run` and stores it as run `run_id`'s epoch `entry.number`; returns
/// its snapshot. `units` are the layers' units of the epochs before (empty before the first,
/// which sets them).
pub fn import_epoch(
    run: &RunDir,
    entry: &EpochEntry,
    units: &mut Vec<usize>,
    store: &Mutex<Store>,
    run_id: i64,
) -> Result<EpochSnapshot, ImportFailure> {
    let started = Instant::now();
    let found = run.check_epoch(entry)?;
    if units.is_empty() {
        units.clone_from(&found);
    }
    check_units(Some(units), &found, entry)?;
    let units: &[usize] = units;
    let threshold = run.spec().threshold;
    let probe = probe_for(run, units)?;
    let mut patterns: Vec<PatternMatrix> = units.iter().map(|&u| PatternMatrix::empty(u)).collect();
    let mut probe_rows: Vec<Vec<f32>> = units
        .iter()
        .map(|&u| Vec::with_capacity(probe * u))
        .collect();
    let mut buffer = Vec::new();
    let extras = run.read_epoch(entry, |layer_idx, units, first_row, values| {
        let values = shifted(values, threshold, &mut buffer);
        if let Some(layer) = patterns.get_mut(layer_idx) {
            layer.append_preactivations(values);
        }
        if first_row < probe
            && let Some(kept) = probe_rows.get_mut(layer_idx)
        {
            let rows = (probe - first_row).min(values.len() / units.max(1));
            kept.extend_from_slice(values.get(..rows * units).unwrap_or(values));
        }
        Ok(())
    })?;
    let unique_patterns: Vec<usize> = patterns.iter().map(count_unique).collect();
    drop(patterns);
    let pre_activations = probe_rows
        .into_iter()
        .zip(units)
        .map(|(values, &units)| Matrix::new(probe, units, values))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RunError::Analysis(e.to_string()))?;
    let labels = run.labels();
    // Without predictions the APD's last level shows the labels, and the accuracy is 0 (not
    // measured), never a made-up 100%.
    let accuracy = extras.predictions.as_ref().map_or(0.0, |predictions| {
        labels
            .iter()
            .zip(predictions)
            .filter(|(l, p)| l == p)
            .count() as f64
            / labels.len().max(1) as f64
    });
    let predictions = extras.predictions.unwrap_or_else(|| labels.to_vec());
    let mean_loss = extras.losses.as_ref().map_or(0.0, |losses| {
        losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len().max(1) as f64
    });
    let probe_losses = extras.losses.as_ref().map_or_else(
        || vec![0.0; probe],
        |losses| losses.iter().take(probe).copied().collect(),
    );
    let metrics = EpochMetrics {
        epoch: entry.number as usize,
        train_loss: mean_loss,
        val_loss: 0.0,
        train_accuracy: accuracy,
        val_accuracy: 0.0,
        minibatch_loss: mean_loss,
        unique_patterns,
        train_secs: 0.0,
        capture_secs: started.elapsed().as_secs_f64(),
        diverged: false,
    };
    let parts = ProbeParts {
        indices: (0..u32::try_from(probe).unwrap_or(u32::MAX)).collect(),
        labels: labels.get(..probe).unwrap_or(labels),
        predictions: predictions.get(..probe).unwrap_or(&predictions),
        losses: &probe_losses,
        pre_activations: &pre_activations,
        scores: None,
    };
    Ok(store_epoch(
        store,
        run_id,
        &metrics,
        &parts,
        &crate::runner::EpochExtras::default(),
    )?)
}

/// How an import goes on after the epochs already there. Either way, setting `stop` ends it
/// after the epoch in flight.
pub enum Mode<'a> {
    /// Import what is there and stop.
    Once {
        /// Set to stop after the epoch in flight.
        stop: &'a AtomicBool,
    },
    /// Keep importing epochs as they appear, every [`FOLLOW_POLL`], until the writer's
    /// `finished` file appears (after its last epoch) or `stop` is set.
    Follow {
        /// Set to stop after the epoch in flight.
        stop: &'a AtomicBool,
    },
}

impl Mode<'_> {
    fn stopped(&self) -> bool {
        match self {
            Self::Once { stop } | Self::Follow { stop } => stop.load(Ordering::SeqCst),
        }
    }
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Epochs imported.
    pub epochs: usize,
    /// Whether it was stopped before the end.
    pub stopped: bool,
}

/// When each imported epoch's file was last modified: an epoch rewritten after its import
/// (a writer that restarted and counts from 1 again) is an error, not a silent mix.
type ImportedAt = HashMap<u32, Option<SystemTime>>;

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Imports the epochs of `run` into run `run_id`, in order, each in its own transaction,
/// calling `on_epoch` after each one is stored.
pub fn import_epochs(
    run: &RunDir,
    units: &mut Vec<usize>,
    store: &Mutex<Store>,
    run_id: i64,
    mode: &Mode<'_>,
    on_epoch: &mut dyn FnMut(&EpochSnapshot),
) -> Result<Imported, ImportFailure> {
    let mut imported: ImportedAt = HashMap::new();
    let mut last = 0;
    loop {
        // Seen before listing: every epoch the writer finished before it is in the listing.
        let finished = run.finished();
        let entries = run.epochs()?;
        for (number, when) in &imported {
            let now = entries.iter().find(|e| e.number == *number);
            if now.is_none_or(|e| modified(&e.path) != *when) {
                return Err(ImportError::invalid(
                    now.map_or_else(|| run.root().to_owned(), |e| e.path.clone()),
                    None,
                    format!(
                        "epoch {number} was removed or rewritten after it was imported: epoch \
                         numbers must only go up (did the writer start again?)"
                    ),
                )
                .into());
            }
        }
        check_numbers(&entries, last)?;
        let after = last;
        for entry in entries.iter().filter(|e| e.number > after) {
            if mode.stopped() {
                return Ok(Imported {
                    epochs: imported.len(),
                    stopped: true,
                });
            }
            // Taken before reading: a rewrite while it is read counts as a rewrite.
            let when = modified(&entry.path);
            let snapshot = import_epoch(run, entry, units, store, run_id)?;
            imported.insert(entry.number, when);
            last = entry.number;
            on_epoch(&snapshot);
        }
        let done = match mode {
            Mode::Once { .. } => true,
            Mode::Follow { .. } => finished || mode.stopped(),
        };
        if done {
            return Ok(Imported {
                epochs: imported.len(),
                stopped: mode.stopped(),
            });
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}
