//! Garbage into the decoders of what the server reads back: the blobs a real run stored
//! (epoch snapshots, probe activations and scores, probe images), flipped, cut short or grown,
//! go through the same decode-and-check path as the lenses and never panic; and `--config`
//! TOML files, random or mutated from a valid one, give a configuration or an error, never a
//! panic. [`CASES`] inputs per property.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};

use actiscope_analysis::Matrix;
use actiscope_protocol::{EpochSnapshot, ProbeImages, WireMatrix};
use actiscope_server::hub::decode_stored;
use actiscope_server::runner::{
    CaptureMode, IMAGES_KIND, PROBE_ACTIVATIONS_KIND, PROBE_SCORES_KIND, SNAPSHOT_KIND, record_run,
    run_to_completion,
};
use actiscope_server::train_cmd::parse_config_file;
use actiscope_store::Store;
use proptest::prelude::*;

/// Inputs each property tries.
const CASES: u32 = 5_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The four blobs one epoch of a real (small) run stores, once per test binary.
fn real_blobs() -> &'static [Vec<u8>; 4] {
    static BLOBS: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    BLOBS.get_or_init(|| {
        let request = parse_config_file(
            "dataset = \"moons\"\nhidden = \"8,6\"\nepochs = 1\nprobe = \"n=12\"\ndevice = \"flex\"\n",
            Path::new("fuzz.toml"),
        )
        .unwrap();
        let mut trainer = actiscope_train::Trainer::new(request.to_config().unwrap()).unwrap();
        let mut store = Store::open_in_memory().unwrap();
        let run_id = record_run(&mut store, &trainer, "fuzz").unwrap();
        let store = Mutex::new(store);
        run_to_completion(
            &mut trainer,
            &store,
            run_id,
            &AtomicBool::new(false),
            CaptureMode::Inline,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        let store = store.into_inner().unwrap();
        let blob = |epoch, kind| store.snapshot(run_id, epoch, kind).unwrap().unwrap();
        [
            blob(1, SNAPSHOT_KIND),
            blob(1, PROBE_ACTIVATIONS_KIND),
            blob(1, PROBE_SCORES_KIND),
            blob(0, IMAGES_KIND),
        ]
    })
}

/// What the server does with each stored kind when a lens or a session reads it.
fn read_back(kind: usize, blob: &[u8]) {
    match kind {
        0 => {
            let _ = decode_stored::<EpochSnapshot>(blob, 1, 1);
        }
        1 => {
            if let Ok(layers) = decode_stored::<Vec<WireMatrix>>(blob, 1, 1) {
                for layer in &layers {
                    let _ = Matrix::from_wire(layer).map(|m| m.relu());
                }
            }
        }
        2 => {
            let _ = decode_stored::<Vec<f32>>(blob, 1, 1);
        }
        _ => {
            if let Ok(images) = decode_stored::<ProbeImages>(blob, 1, 0) {
                let _ = actiscope_analysis::nmf::image_block(&images);
            }
        }
    }
}

const VALID_TOML: &str = "preset = \"apd-paper\"\ndataset = \"digits\"\nhidden = [40, 40, 40]\n\
    optimizer = \"sgd\"\nlr = 0.001\nbatch = 64\nepochs = 30\nseed = 7\n\
    probe = \"label=1,n=500\"\ndevice = \"flex\"\nactivation = \"relu\"\n";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_stored_blobs_never_panic_their_readers(
        kind in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut blob = real_blobs()[kind].clone();
        for (at, flip) in edits {
            let at = at % blob.len();
            blob[at] ^= flip;
        }
        if let Some(cut) = cut {
            blob.truncate(cut % (blob.len() + 1));
        }
        blob.extend_from_slice(&tail);
        read_back(kind, &blob);
    }

    #[test]
    fn random_config_files_never_panic(text in "\\PC{0,200}") {
        if let Ok(request) = parse_config_file(&text, Path::new("random.toml")) {
            let _ = request.to_config();
        }
    }

    #[test]
    fn mutated_config_files_give_a_config_or_an_error(
        edits in proptest::collection::vec((any::<usize>(), any::<char>()), 1..4),
    ) {
        let mut chars: Vec<char> = VALID_TOML.chars().collect();
        for (at, c) in edits {
            let at = at % chars.len();
            chars[at] = c;
        }
        let text: String = chars.into_iter().collect();
        match parse_config_file(&text, Path::new("mutated.toml")) {
            Ok(request) => {
                if let Err(err) = request.to_config() {
                    prop_assert!(!err.to_string().is_empty());
                }
            }
            Err(err) => prop_assert!(err.to_string().contains("mutated.toml"), "{err}"),
        }
    }
}

#[test]
fn the_unmutated_inputs_are_valid() {
    for (kind, blob) in real_blobs().iter().enumerate() {
        assert!(!blob.is_empty(), "kind {kind}");
    }
    assert!(decode_stored::<EpochSnapshot>(&real_blobs()[0], 1, 1).is_ok());
    let request = parse_config_file(VALID_TOML, Path::new("valid.toml")).unwrap();
    assert_eq!(request.to_config().unwrap().epochs, 30);
}
