//! The device fit against the CPU fit (flex, and wgpu through lavapipe), and where fits are
//! placed, with the timings told.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cell::Cell;

use actiscope_analysis::Matrix;
use actiscope_analysis::rng::SplitMix64;

use super::*;

fn flex() -> ChosenDevice {
    choose(DeviceChoice::Flex).unwrap()
}

/// `rows x cols`, about half zeros (a ReLU layer), the rest uniform in `(0.5, 1)`.
fn relu_like(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let values = (0..rows * cols)
        .map(|_| {
            let u = rng.next_unit_f32();
            if u < 0.5 { 0.0 } else { u }
        })
        .collect();
    Matrix::new(rows, cols, values).unwrap()
}

/// A non-negative rank-`rank` product, `rows x cols`.
fn planted(rows: usize, cols: usize, rank: usize, seed: u64) -> Matrix {
    let mut rng = SplitMix64::new(seed);
    let a: Vec<f32> = (0..rows * rank).map(|_| rng.next_unit_f32()).collect();
    let b: Vec<f32> = (0..rank * cols).map(|_| rng.next_unit_f32()).collect();
    let values = (0..rows * cols)
        .map(|cell| {
            let (i, j) = (cell / cols, cell % cols);
            (0..rank).map(|k| a[i * rank + k] * b[k * cols + j]).sum()
        })
        .collect();
    Matrix::new(rows, cols, values).unwrap()
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs().max(1e-12)
}

/// `data` as the one block of a fit.
fn one_block<'a>(name: &'a str, data: &'a Matrix) -> [NmfBlockInput<'a>; 1] {
    [NmfBlockInput {
        name,
        data,
        weight: 1.0,
    }]
}

/// The device fit and the CPU fit of two weighted blocks agree round by round.
fn matches_the_cpu_fit(device: &Device) {
    let pixels = relu_like(50, 30, 1);
    let layer = planted(50, 12, 3, 2);
    let blocks = [
        NmfBlockInput {
            name: "inputs",
            data: &pixels,
            weight: 1.0,
        },
        NmfBlockInput {
            name: "layer 1",
            data: &layer,
            weight: 0.5,
        },
    ];
    let options = NmfOptions {
        rank: 4,
        max_iters: 40,
        tolerance: 0.0,
        seed: 9,
        threads: 1,
        ..NmfOptions::default()
    };
    let cpu = coupled_nmf(&blocks, &options).unwrap();
    let ours = coupled_nmf_on_device(&blocks, &options, device).unwrap();
    assert_eq!(ours.iterations(), 40);
    for (round, (a, b)) in ours.objective.iter().zip(&cpu.objective).enumerate() {
        assert!(close(*a, *b, 1e-4), "round {round}: objective {a} vs {b}");
    }
    for (a, b) in ours.block_rmse.iter().zip(&cpu.block_rmse) {
        assert!(close(*a, *b, 1e-4), "block rmse {a} vs {b}");
    }
    assert!(close(ours.rmse, cpu.rmse, 1e-4));
    for (ours, theirs) in ours
        .loadings
        .iter()
        .chain([&ours.instance_weights])
        .zip(cpu.loadings.iter().chain([&cpu.instance_weights]))
    {
        assert_eq!((ours.rows(), ours.cols()), (theirs.rows(), theirs.cols()));
        for (a, b) in ours.as_slice().iter().zip(theirs.as_slice()) {
            assert!((a - b).abs() <= 2e-3 * (1.0 + b.abs()), "factor {a} vs {b}");
            assert!(*a >= 0.0);
        }
    }
}

#[test]
fn the_device_fit_matches_the_cpu_fit_on_flex() {
    matches_the_cpu_fit(&flex().device);
}

#[test]
fn the_device_fit_matches_the_cpu_fit_on_wgpu() {
    let wgpu = choose(DeviceChoice::Wgpu).expect("a wgpu adapter (lavapipe in CI)");
    matches_the_cpu_fit(&wgpu.device);
}

#[test]
fn the_device_fit_stops_when_the_cpu_fit_stops_and_refuses_what_it_refuses() {
    // Not exactly low-rank, as activations are not: near an exact fit the objective tends to
    // 0 and the two fits' rounding, in different orders, moves the round it stalls at.
    let data = relu_like(60, 25, 4);
    let blocks = one_block("layer 2", &data);
    let options = NmfOptions {
        rank: 3,
        max_iters: 2000,
        tolerance: 1e-5,
        seed: 1,
        threads: 1,
        ..NmfOptions::default()
    };
    let cpu = coupled_nmf(&blocks, &options).unwrap();
    let ours = coupled_nmf_on_device(&blocks, &options, &flex().device).unwrap();
    assert!(
        (20..2000).contains(&cpu.iterations()),
        "the CPU fit took {} rounds",
        cpu.iterations()
    );
    assert_eq!(ours.iterations(), cpu.iterations());
    // It stalled between two reads of the objective: the factors are that round's.
    assert_ne!(cpu.iterations() % ROUNDS_PER_READ, 0);
    assert!(
        close(ours.rmse, cpu.rmse, 1e-4),
        "{} vs {}",
        ours.rmse,
        cpu.rmse
    );
    // Stopped early, while the factors still move: they are the stalled round's, not those
    // of the round the objective was read at.
    let early = NmfOptions {
        tolerance: 0.02,
        ..options
    };
    let cpu = coupled_nmf(&blocks, &early).unwrap();
    let ours = coupled_nmf_on_device(&blocks, &early, &flex().device).unwrap();
    assert!(
        (2..ROUNDS_PER_READ).contains(&cpu.iterations()),
        "{}",
        cpu.iterations()
    );
    assert_eq!(ours.iterations(), cpu.iterations());
    for (a, b) in ours
        .instance_weights
        .as_slice()
        .iter()
        .zip(cpu.instance_weights.as_slice())
    {
        assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
    }
    assert!(
        ours.objective
            .windows(2)
            .all(|pair| pair[1] <= pair[0] * (1.0 + 1e-6))
    );

    let negative = Matrix::new(2, 2, vec![1.0, 0.0, -1.0, 2.0]).unwrap();
    let refused = coupled_nmf_on_device(
        &one_block("layer 1", &negative),
        &NmfOptions::default(),
        &flex().device,
    )
    .unwrap_err();
    assert!(refused.to_string().contains("layer 1"), "{refused}");
    let refused = coupled_nmf_on_device(
        &blocks,
        &NmfOptions {
            rank: 61,
            ..options
        },
        &flex().device,
    )
    .unwrap_err();
    assert!(matches!(
        refused,
        DeviceNmfError::Nmf(NmfError::BadRank { rank: 61, max: 60 })
    ));
}

/// Costs told, and how often they were asked for.
struct Told {
    gpu: Result<FitCost, String>,
    cpu: FitCost,
    asked: Cell<usize>,
}

impl RoundTimer for Told {
    fn cost(
        &self,
        device: Option<&ChosenDevice>,
        _: &[NmfBlockInput<'_>],
        _: &NmfOptions,
    ) -> Result<FitCost, DeviceNmfError> {
        self.asked.set(self.asked.get() + 1);
        match device {
            Some(_) => self.gpu.clone().map_err(DeviceNmfError::Panicked),
            None => Ok(self.cpu),
        }
    }
}

fn told(gpu_round_secs: f64, cpu_round_secs: f64) -> Told {
    Told {
        gpu: Ok(FitCost {
            fixed_secs: 0.5,
            round_secs: gpu_round_secs,
        }),
        cpu: FitCost {
            fixed_secs: 0.01,
            round_secs: cpu_round_secs,
        },
        asked: Cell::new(0),
    }
}

fn fake_gpu() -> ChosenDevice {
    ChosenDevice {
        backend: DeviceChoice::Wgpu,
        description: "wgpu: a test GPU".to_owned(),
        ..flex()
    }
}

#[test]
fn fits_go_where_the_timings_say_and_small_ones_stay_on_the_cpu() {
    let large = Matrix::new(1000, 1000, vec![0.5; 1000 * 1000]).unwrap();
    let small = Matrix::new(1000, 100, vec![0.5; 1000 * 100]).unwrap();
    let blocks = |data| one_block("layer 1", data);
    let options = NmfOptions {
        rank: 20,
        max_iters: 200,
        ..NmfOptions::default()
    };
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));

    // 1000 x 100 x 20 = 2e6 cells x factors: the CPU, nothing timed.
    let timer = told(0.001, 0.01);
    let place = placement.place(&blocks(&small), &options, &timer);
    assert!(matches!(place, NmfPlace::Cpu { .. }), "{place:?}");
    assert!(
        place.describe().contains("too small"),
        "{}",
        place.describe()
    );
    assert_eq!(timer.asked.get(), 0);

    // 2e7: timed once, 0.5 + 200 x 0.001 s beats 0.01 + 200 x 0.01 s.
    let place = placement.place(&blocks(&large), &options, &timer);
    assert!(matches!(place, NmfPlace::Device { .. }), "{place:?}");
    assert!(
        place
            .describe()
            .starts_with("wgpu: a test GPU; faster here"),
        "{}",
        place.describe()
    );
    assert_eq!(timer.asked.get(), 2);
    // The same size again: the timing is remembered.
    placement.place(&blocks(&large), &options, &timer);
    assert_eq!(timer.asked.get(), 2);
    // Ten rounds: the GPU's fixed cost no longer pays (0.51 s against 0.11 s).
    let place = placement.place(
        &blocks(&large),
        &NmfOptions {
            max_iters: 10,
            ..options
        },
        &timer,
    );
    assert!(matches!(place, NmfPlace::Cpu { .. }), "{place:?}");
    assert!(
        place.describe().contains("up to 10 rounds predicted"),
        "{}",
        place.describe()
    );

    // A slower GPU, or one that fails, leaves the fit on the CPU and says why.
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));
    let place = placement.place(&blocks(&large), &options, &told(0.02, 0.01));
    assert!(matches!(place, NmfPlace::Cpu { .. }), "{place:?}");
    let failing = Told {
        gpu: Err("out of memory".to_owned()),
        ..told(0.001, 0.01)
    };
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));
    let place = placement.place(&blocks(&large), &options, &failing);
    assert!(
        place.describe().contains("out of memory"),
        "{}",
        place.describe()
    );
    // Input the fit refuses is not the GPU's failure.
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));
    let refused = Matrix::new(1000, 1000, vec![-0.5; 1000 * 1000]).unwrap();
    let place = placement.place(&blocks(&refused), &options, &MeasuredRounds);
    assert!(
        place.describe().contains("NMF needs finite values >= 0"),
        "{}",
        place.describe()
    );
    let place = placement.place(&blocks(&large), &options, &told(0.001, 0.01));
    assert!(matches!(place, NmfPlace::Device { .. }), "{place:?}");
    // A failed GPU is not tried again, at any size.
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));
    placement.place(&blocks(&large), &options, &failing);
    let asked = failing.asked.get();
    let bigger = Matrix::new(2000, 1000, vec![0.5; 2000 * 1000]).unwrap();
    let place = placement.place(&blocks(&bigger), &options, &failing);
    assert!(
        place.describe().contains("failed an earlier fit"),
        "{}",
        place.describe()
    );
    assert_eq!(failing.asked.get(), asked);
    // Nor when the real fit, not a timing, failed.
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Wgpu, Ok(fake_gpu()));
    placement.gpu_failed("lost the device".to_owned());
    let place = placement.place(&blocks(&large), &options, &failing);
    assert!(
        place
            .describe()
            .starts_with("CPU; the GPU failed an earlier fit: lost the device"),
        "{}",
        place.describe()
    );
}

#[test]
fn density_and_size_pick_the_timing_a_problem_shares() {
    let options = NmfOptions {
        rank: 20,
        ..NmfOptions::default()
    };
    let dense = Matrix::new(1000, 1000, vec![0.5; 1000 * 1000]).unwrap();
    let sparse = relu_like(1000, 1000, 5);
    let bigger = Matrix::new(1000, 1500, vec![0.5; 1000 * 1500]).unwrap();
    let placement = NmfPlacement::with_gpu(NmfDeviceChoice::Auto, Ok(fake_gpu()));
    let timer = told(0.001, 0.01);
    for (data, asked) in [(&dense, 2), (&dense, 2), (&sparse, 4), (&bigger, 4)] {
        placement.place(&one_block("layer 1", data), &options, &timer);
        assert_eq!(timer.asked.get(), asked);
    }
    // Twice the cells: another power of two, timed again.
    let twice = Matrix::new(2000, 1000, vec![0.5; 2000 * 1000]).unwrap();
    placement.place(&one_block("layer 1", &twice), &options, &timer);
    assert_eq!(timer.asked.get(), 6);
}

#[test]
fn the_choice_overrides_the_timings_and_no_gpu_means_the_cpu() {
    let data = Matrix::new(1000, 1000, vec![0.5; 1000 * 1000]).unwrap();
    let blocks = one_block("layer 1", &data);
    let options = NmfOptions {
        rank: 20,
        ..NmfOptions::default()
    };
    let timer = told(0.001, 0.01);
    let place = NmfPlacement::with_gpu(NmfDeviceChoice::Cpu, Ok(fake_gpu()))
        .place(&blocks, &options, &timer);
    assert!(
        place.describe().contains("--nmf-device cpu"),
        "{}",
        place.describe()
    );
    let place = NmfPlacement::with_gpu(NmfDeviceChoice::Wgpu, Ok(fake_gpu())).place(
        &blocks,
        &options,
        &told(1.0, 0.001),
    );
    assert!(matches!(place, NmfPlace::Device { .. }), "{place:?}");
    let place = NmfPlacement::with_gpu(
        NmfDeviceChoice::Auto,
        Err("flex (CPU; no GPU adapter found)".to_owned()),
    )
    .place(&blocks, &options, &timer);
    assert!(
        place.describe().contains("no GPU adapter found"),
        "{}",
        place.describe()
    );
    assert_eq!(timer.asked.get(), 0);
    assert_eq!(NmfDeviceChoice::parse("wgpu"), Ok(NmfDeviceChoice::Wgpu));
    assert!(
        NmfDeviceChoice::parse("cuda")
            .unwrap_err()
            .to_string()
            .contains("`cuda`: use auto, cpu or wgpu")
    );
}

#[test]
fn measured_rounds_time_a_real_fit() {
    let data = relu_like(80, 40, 3);
    let blocks = one_block("layer 1", &data);
    let options = NmfOptions {
        rank: 5,
        ..NmfOptions::default()
    };
    for device in [None, Some(&flex())] {
        let cost = MeasuredRounds.cost(device, &blocks, &options).unwrap();
        // Something was timed, and a round costs less than the whole of a fit's first one.
        assert!(cost.secs(1) > 0.0, "{cost:?}");
        assert!(cost.round_secs < cost.secs(1) + 1e-9, "{cost:?}");
        assert!(cost.secs(200) < 60.0, "{cost:?}");
    }
}
