//! Garbage into the websocket decoders: the frames a client sends (`decode::<ClientMessage>`,
//! what the server reads) and the frames the server sends (`decode_server_message`, what the
//! dashboard reads, with its inflation) never panic, whatever the bytes: random ones, and
//! valid frames flipped, cut short or grown: [`CASES`] inputs per property (two decodes each
//! for the random ones: bare, and after a valid version).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use actiscope_protocol::{
    ClientMessage, EpochSnapshot, ProbeImages, RunSummary, ServerMessage, WireMatrix, decode,
    decode_server_message, encode, encode_deflated,
};
use proptest::prelude::*;

/// Inputs each property tries.
const CASES: u32 = 20_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Valid frames of every shape the decoders meet, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let run = RunSummary {
        run_id: 3,
        name: "mlp on digits".into(),
        dataset: "digits".into(),
        model: "mlp 40-40-40 relu".into(),
        device: "flex".into(),
        dataset_sha256: "ab".repeat(32),
        status: "running".into(),
        epochs_planned: 30,
        epochs_stored: 4,
        hidden_layers: 3,
    };
    let images = ServerMessage::Images {
        run_id: 3,
        images: ProbeImages {
            rows: 2,
            cols: 2,
            pixels: vec![0, 255, 17, 4, 9, 9, 9, 9],
            points: vec![],
        },
    };
    vec![
        encode(&ClientMessage::Ping { nonce: 77 }).unwrap(),
        encode(&ClientMessage::Subscribe {
            run_id: 9,
            from_epoch: 2,
        })
        .unwrap(),
        encode(&ServerMessage::Runs(vec![run.clone(), run.clone()])).unwrap(),
        encode(&ServerMessage::Run(run)).unwrap(),
        encode(&images).unwrap(),
        encode_deflated(&images).unwrap(),
        encode(&vec![WireMatrix {
            rows: 2,
            cols: 1,
            values: vec![0.5, -1.0],
        }])
        .unwrap(),
    ]
}

/// `seed` changed by `edits`: (position, byte) overwrites, then cut at `cut` or grown by
/// `tail`.
fn mutate(seed: &[u8], edits: &[(usize, u8)], cut: Option<usize>, tail: &[u8]) -> Vec<u8> {
    let mut frame = seed.to_vec();
    for &(at, byte) in edits {
        if !frame.is_empty() {
            let at = at % frame.len();
            frame[at] ^= byte;
        }
    }
    if let Some(cut) = cut {
        frame.truncate(cut % (frame.len() + 1));
    }
    frame.extend_from_slice(tail);
    frame
}

/// Every decoder a frame from the network or the store meets.
fn decode_everything(frame: &[u8]) {
    let _ = decode::<ClientMessage>(frame);
    let _ = decode_server_message(frame);
    let _ = decode::<EpochSnapshot>(frame);
    let _ = decode::<Vec<WireMatrix>>(frame);
    let _ = decode::<ProbeImages>(frame);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic_a_decoder(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&frame);
        // After a valid version: the message's own fields are what is garbage.
        let mut versioned = encode(&()).unwrap();
        versioned.extend_from_slice(&frame);
        decode_everything(&versioned);
    }

    #[test]
    fn mutated_frames_never_panic_a_decoder(
        seed_idx in 0usize..7,
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let seeds = seeds();
        let frame = mutate(&seeds[seed_idx % seeds.len()], &edits, cut, &tail);
        decode_everything(&frame);
    }
}

#[test]
fn the_seeds_decode_before_they_are_mutated() {
    // The mutations start from frames the decoders accept, so they reach deep fields.
    let seeds = seeds();
    assert!(decode::<ClientMessage>(&seeds[0]).is_ok());
    assert!(decode::<ClientMessage>(&seeds[1]).is_ok());
    for seed in &seeds[2..6] {
        assert!(decode_server_message(seed).is_ok());
    }
    assert!(decode::<Vec<WireMatrix>>(&seeds[6]).is_ok());
}

#[test]
fn a_frame_claiming_a_huge_length_is_refused_without_allocating_it() {
    // A version, the `Runs` variant, then a varint length of about 2^63 entries.
    let mut frame = encode(&()).unwrap();
    frame.push(3);
    frame.extend_from_slice(&[0xff; 9]);
    frame.push(0x7f);
    assert!(decode_server_message(&frame).is_err());
    assert!(decode::<Vec<WireMatrix>>(&frame).is_err());
}
