//! The readers against files numpy and safetensors wrote (`tests/fixtures`, made by
//! `make_fixtures.py`): every encoding gives the same matrix; run directories are read whole
//! or refused with the file, the tensor and the reason; mutated files never panic a reader.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::layout::EpochFormat;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `arange(24).reshape(4, 6) / 8 - 1`, as every fixture holds it.
fn base() -> Vec<f32> {
    (0..24).map(|i| i as f32 / 8.0 - 1.0).collect()
}

#[test]
fn every_npy_encoding_reads_as_the_same_rows() {
    for name in [
        "f32_v1.npy",
        "f64_big_fortran_v2.npy",
        "f16_v3.npy",
        "f32_big_fortran.npy",
        "bf16_void.npy",
        "ints.npy",
    ] {
        let chunks = npy::open(&fixture(name), "x").unwrap();
        assert_eq!(
            (chunks.info().rows(), chunks.info().row_len()),
            (4, 6),
            "{name}"
        );
        let values = chunks.read_all().unwrap();
        let expected: Vec<f32> = if name == "ints.npy" {
            // numpy's astype truncates towards zero.
            base().iter().map(|v| v.trunc()).collect()
        } else {
            base()
        };
        assert_eq!(values, expected, "{name}");
    }
}

#[test]
fn npz_and_safetensors_entries_read_as_the_same_rows() {
    let npz = npy::open_npz(&fixture("epoch.npz"), "fc1")
        .unwrap()
        .unwrap();
    assert_eq!(npz.read_all().unwrap(), base());
    assert!(
        npy::open_npz(&fixture("epoch.npz"), "fc9")
            .unwrap()
            .is_none()
    );
    let file = tensors::TensorFile::open(&fixture("epoch.safetensors")).unwrap();
    for name in ["fc1", "fc2"] {
        let chunks = file.open_tensor(name).unwrap().unwrap();
        assert_eq!(chunks.read_all().unwrap(), base(), "{name}");
    }
    let predictions = file.open_tensor("predictions").unwrap().unwrap();
    assert_eq!(predictions.read_all().unwrap(), [2.0, 0.0, 1.0, 1.0]);
    let bf16 = tensors::TensorFile::open(&fixture("bf16.safetensors")).unwrap();
    assert_eq!(
        bf16.open_tensor("fc1")
            .unwrap()
            .unwrap()
            .read_all()
            .unwrap(),
        base()
    );
}

/// A run directory of `n` instances with layers `fc1` (6 units) and `fc2` (2 x 3 units).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("run.toml"),
            "name = \"toy\"\nlayers = [\"fc1\", \"fc2\"]\nclasses = [\"a\", \"b\", \"c\"]\nprobe = 3\n",
        )
        .unwrap();
        std::fs::copy(fixture("labels_i64_big.npy"), dir.path().join("labels.npy")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn folder_epoch(&self, number: u32) -> PathBuf {
        let folder = self.path(&format!("epoch-{number:04}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::copy(fixture("f32_v1.npy"), folder.join("fc1.npy")).unwrap();
        std::fs::copy(fixture("f64_big_fortran_v2.npy"), folder.join("fc2.npy")).unwrap();
        folder
    }

    fn error(&self) -> String {
        let run = match RunDir::open(self.dir.path()) {
            Ok(run) => run,
            Err(err) => return err.to_string(),
        };
        let entries = match run.epochs() {
            Ok(entries) => entries,
            Err(err) => return err.to_string(),
        };
        for entry in entries {
            if let Err(err) = run.check_epoch(&entry) {
                return err.to_string();
            }
            if let Err(err) = run.read_epoch(&entry, |_, _, _, _| Ok(())) {
                return err.to_string();
            }
        }
        "no error".to_owned()
    }
}

#[test]
fn a_run_directory_reads_every_format_in_order() {
    let run_dir = Fixture::new();
    std::fs::copy(
        fixture("epoch.safetensors"),
        run_dir.path("epoch-0001.safetensors"),
    )
    .unwrap();
    std::fs::copy(fixture("epoch.npz"), run_dir.path("epoch-0002.npz")).unwrap();
    run_dir.folder_epoch(3);
    // Being written: ignored.
    std::fs::write(run_dir.path("epoch-0004.safetensors.tmp"), b"half").unwrap();
    std::fs::copy(fixture("f32_v1.npy"), run_dir.path("inputs.npy")).unwrap();
    let run = RunDir::open(run_dir.dir.path()).unwrap();
    assert_eq!((run.instances(), run.probe(), run.class_count()), (4, 3, 3));
    assert_eq!(run.labels(), [2, 0, 1, 2]);
    assert_eq!(
        run.inputs(),
        Some(&Inputs::Vectors {
            dim: 6,
            values: base()[..18].to_vec()
        })
    );
    let entries = run.epochs().unwrap();
    let formats: Vec<_> = entries.iter().map(|e| (e.number, e.format)).collect();
    assert_eq!(
        formats,
        [
            (1, EpochFormat::Safetensors),
            (2, EpochFormat::Npz),
            (3, EpochFormat::NpyFolder)
        ]
    );
    // The npz epoch has no fc2: refused by the header check, naming the layer.
    let err = run.check_epoch(&entries[1]).unwrap_err().to_string();
    assert!(
        err.contains("epoch-0002.npz") && err.contains("fc2"),
        "{err}"
    );
    for entry in [&entries[0], &entries[2]] {
        assert_eq!(run.check_epoch(entry).unwrap(), [6, 6]);
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); 2];
        let extras = run
            .read_epoch(entry, |layer, units, first_row, values| {
                assert_eq!(units, 6);
                assert_eq!(first_row * 6, rows[layer].len());
                rows[layer].extend_from_slice(values);
                Ok(())
            })
            .unwrap();
        assert_eq!(rows, [base(), base()]);
        if entry.number == 1 {
            assert_eq!(extras.predictions, Some(vec![2, 0, 1, 1]));
        } else {
            assert_eq!(extras, EpochExtras::default());
        }
    }
    assert!(!run.finished());
    std::fs::write(run_dir.path(FINISHED_MARKER), b"").unwrap();
    assert!(run.finished());
}

#[test]
fn bad_input_names_the_file_the_tensor_and_the_reason() {
    type Spoil = fn(&Fixture);
    let cases: Vec<(&str, Spoil, &[&str])> = vec![
        (
            "no labels",
            |f| std::fs::remove_file(f.path("labels.npy")).unwrap(),
            &["labels.npy"],
        ),
        (
            "labels outside the classes",
            |f| {
                std::fs::write(
                    f.path("run.toml"),
                    "name = \"t\"\nlayers = [\"fc1\", \"fc2\"]\nclasses = [\"a\"]\n",
                )
                .unwrap()
            },
            &["labels.npy", "labels", "outside 0..1"],
        ),
        (
            "a layer with other instances",
            |f| {
                let folder = f.folder_epoch(1);
                std::fs::copy(fixture("labels_i64_big.npy"), folder.join("fc1.npy")).unwrap();
            },
            &["fc1.npy", "fc1", "int64"],
        ),
        (
            "a missing layer",
            |f| {
                let folder = f.folder_epoch(1);
                std::fs::remove_file(folder.join("fc2.npy")).unwrap();
            },
            &["fc2", "epoch 1 has no tensor"],
        ),
        (
            "a truncated layer",
            |f| {
                let folder = f.folder_epoch(1);
                let bytes = std::fs::read(folder.join("fc1.npy")).unwrap();
                std::fs::write(folder.join("fc1.npy"), &bytes[..bytes.len() - 5]).unwrap();
            },
            &["fc1.npy", "fc1", "truncated"],
        ),
        (
            "a header that claims gigabytes",
            |f| {
                let folder = f.folder_epoch(1);
                let bytes = std::fs::read(folder.join("fc1.npy")).unwrap();
                let text = String::from_utf8_lossy(&bytes).replace("(4, 6)", "(4, 600000000)");
                std::fs::write(folder.join("fc1.npy"), text.as_bytes()).unwrap();
            },
            &["fc1.npy", "fc1"],
        ),
        (
            "NaN in a layer",
            |f| {
                let folder = f.folder_epoch(1);
                let mut bytes = std::fs::read(folder.join("fc1.npy")).unwrap();
                let at = bytes.len() - 4 * 8;
                bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                std::fs::write(folder.join("fc1.npy"), &bytes).unwrap();
            },
            &["fc1.npy", "fc1", "instance 2", "NaN", "finite"],
        ),
        (
            "a truncated safetensors file",
            |f| {
                let bytes = std::fs::read(fixture("epoch.safetensors")).unwrap();
                std::fs::write(f.path("epoch-0001.safetensors"), &bytes[..bytes.len() - 1])
                    .unwrap();
            },
            &["epoch-0001.safetensors", "truncated"],
        ),
        (
            "a safetensors header that claims gigabytes",
            |f| {
                let mut bytes = std::fs::read(fixture("epoch.safetensors")).unwrap();
                bytes[..8].copy_from_slice(&(3u64 << 30).to_le_bytes());
                std::fs::write(f.path("epoch-0001.safetensors"), &bytes).unwrap();
            },
            &["epoch-0001.safetensors", "claims"],
        ),
        (
            "one epoch twice",
            |f| {
                f.folder_epoch(1);
                std::fs::copy(
                    fixture("epoch.safetensors"),
                    f.path("epoch-0001.safetensors"),
                )
                .unwrap();
            },
            &["epoch 1 is also stored"],
        ),
    ];
    for (what, spoil, expected) in cases {
        let run_dir = Fixture::new();
        spoil(&run_dir);
        let err = run_dir.error();
        for part in expected {
            assert!(err.contains(part), "{what}: {err:?} lacks {part:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_files_never_panic_a_reader(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..5),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let name = ["f64_big_fortran_v2.npy", "f16_v3.npy", "epoch.safetensors", "epoch.npz"][which];
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        for (at, flip) in edits {
            let at = at % bytes.len();
            bytes[at] ^= flip;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let result = match which {
            0 | 1 => npy::open(&path, "x").and_then(RowChunks::read_all).map(|_| ()),
            2 => tensors::TensorFile::open(&path).and_then(|file| {
                for name in ["fc1", "fc2", "predictions"] {
                    if let Some(chunks) = file.open_tensor(name)? {
                        chunks.read_all()?;
                    }
                }
                Ok(())
            }),
            _ => npy::open_npz(&path, "fc1").and_then(|c| c.map(RowChunks::read_all).transpose()).map(|_| ()),
        };
        if let Err(err) = result {
            prop_assert!(err.to_string().contains(name), "{err}");
        }
    }
}
