//! The lens endpoints (mapper, NMF, RMSE against rank, spectra) on a real server with a real
//! run: shapes, invariants, identities carried across epochs, caching, and clear 4xx errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use actiscope_e2e::{TestServer, http_get};
use actiscope_protocol::mapper::MapperGraph;
use actiscope_protocol::nmf::{NmfResult, RmseCurve, Spectra};

fn run_config(
    dataset: actiscope_train::data::DatasetSpec,
    epochs: usize,
) -> actiscope_train::TrainConfig {
    use actiscope_train::device::DeviceChoice;
    use actiscope_train::model::{Activation, ModelSpec};
    actiscope_train::TrainConfig {
        dataset,
        model: ModelSpec::Mlp {
            hidden: vec![12, 10],
            activation: Activation::Relu,
        },
        optimizer: actiscope_train::OptimizerKind::Adam,
        learning_rate: 0.01,
        batch_size: 256,
        epochs,
        seed: 3,
        probe: actiscope_train::ProbeSpec::parse("n=150").unwrap(),
        device: DeviceChoice::Flex,
        training: Default::default(),
        checkpoint_every: 1,
    }
}

async fn wait_for_epochs(server: &TestServer, run_id: i64, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let (status, body) = http_get(server.addr, &format!("/api/runs/{run_id}/epochs"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let epochs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        if epochs.len() >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} stored {} of {count} epochs in 300 s",
            epochs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_ok<T: serde::de::DeserializeOwned>(server: &TestServer, path: &str) -> (T, String) {
    let (status, body) = http_get(server.addr, path).await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    (serde_json::from_str(&body).unwrap(), body)
}

async fn get_error(server: &TestServer, path: &str) -> (u16, String) {
    let (status, body) = http_get(server.addr, path).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (
        status,
        json["error"].as_str().map_or(body.clone(), str::to_owned),
    )
}

/// One epoch's stored probe activations replaced by bytes that do not decode, behind the
/// server's back (through a second handle on its store file), until [`Spoiled::restore`]: any
/// lens computed from them now fails, so an answer that still comes back came from the cache.
struct Spoiled {
    store: actiscope_store::Store,
    run_id: i64,
    epoch: u32,
    original: Vec<u8>,
}

impl Spoiled {
    const KIND: &str = actiscope_server::runner::PROBE_ACTIVATIONS_KIND;

    fn activations(server: &TestServer, run_id: i64, epoch: u32) -> Self {
        let store = actiscope_store::Store::open(&server.store_path()).unwrap();
        let original = store
            .snapshot(run_id, epoch, Self::KIND)
            .unwrap()
            .unwrap_or_else(|| panic!("run {run_id} stored probe activations for epoch {epoch}"));
        store
            .put_snapshot(run_id, epoch, Self::KIND, &[0xff; 16])
            .unwrap();
        Self {
            store,
            run_id,
            epoch,
            original,
        }
    }

    fn restore(self) {
        self.store
            .put_snapshot(self.run_id, self.epoch, Self::KIND, &self.original)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenses_on_a_digits_run() {
    let (server, run_id) = TestServer::start_with_run(
        None,
        Some(run_config(actiscope_train::data::DatasetSpec::Digits, 3)),
    )
    .await
    .unwrap();
    let run_id = run_id.unwrap();
    wait_for_epochs(&server, run_id, 3).await;
    let base = format!("/api/runs/{run_id}/epochs");
    // The run records which data it saw.
    let (run, _): (actiscope_protocol::RunSummary, _) =
        get_ok(&server, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run.dataset_sha256.len(), 64, "{run:?}");

    // Mapper: every probe instance in some node (min_samples 1 makes every point a core
    // point), members sorted, edges well formed, stable identities across epochs.
    let query = "layer=1&lens=pca1&intervals=6&overlap=40&clusterer=dbscan&eps=auto&min_samples=1";
    let mut graphs = Vec::new();
    for epoch in 1..=3 {
        let (graph, body): (MapperGraph, String) =
            get_ok(&server, &format!("{base}/{epoch}/mapper?{query}")).await;
        assert_eq!(graph.instance_count, 150);
        assert!(!graph.nodes.is_empty());
        let mut covered = [false; 150];
        for node in &graph.nodes {
            assert!(node.members.windows(2).all(|w| w[0] < w[1]));
            for &m in &node.members {
                covered[m as usize] = true;
            }
            assert_eq!(
                node.class_counts.iter().sum::<u32>() as usize,
                node.members.len()
            );
            assert!((0.0..=1.0).contains(&node.purity) && (0.0..=1.0).contains(&node.error_rate));
        }
        assert!(
            covered.iter().all(|&c| c),
            "epoch {epoch}: an instance is in no node"
        );
        for edge in &graph.edges {
            assert!(edge.source < edge.target);
            assert!(edge.jaccard > 0.0 && edge.jaccard <= 1.0);
        }
        // The same request again is answered from the cache, byte for byte. A recomputation
        // would give the same bytes, so first spoil the stored activations the graph was
        // computed from: from now on only a cached answer can be right.
        let spoiled = Spoiled::activations(&server, run_id, epoch);
        let (status, again) = http_get(server.addr, &format!("{base}/{epoch}/mapper?{query}"))
            .await
            .unwrap();
        assert_eq!(
            status, 200,
            "epoch {epoch}: a repeated mapper request was computed again from the (now spoiled) \
             store instead of answered from the cache: {again}"
        );
        assert_eq!(
            body, again,
            "epoch {epoch}: the cached answer is the first answer"
        );
        // The spoiling bites: the same layer under parameters not asked for before is
        // computed, and fails.
        let uncached = query.replace("intervals=6", "intervals=7");
        let (status, message) =
            get_error(&server, &format!("{base}/{epoch}/mapper?{uncached}")).await;
        assert!(
            (500..600).contains(&status),
            "epoch {epoch}: a mapper computed from spoiled activations must fail: {status} {message}"
        );
        spoiled.restore();
        graphs.push(graph);
    }
    let ids = |g: &MapperGraph| -> std::collections::HashSet<u32> {
        g.nodes.iter().map(|n| n.id).collect()
    };
    assert!(
        !ids(&graphs[2]).is_disjoint(&ids(&graphs[1])),
        "no node kept its identity from epoch 2 to 3"
    );
    for node in &graphs[2].nodes {
        if !ids(&graphs[1]).contains(&node.id) {
            assert!(node.id > *ids(&graphs[1]).iter().max().unwrap());
        }
    }

    // Coupled NMF of inputs and both layers.
    let (nmf, nmf_body): (NmfResult, _) =
        get_ok(&server, &format!("{base}/3/nmf?rank=6&iters=150")).await;
    // Asked again with the stored activations spoiled, only the cache can answer, and does.
    let spoiled = Spoiled::activations(&server, run_id, 3);
    let (status, again) = http_get(server.addr, &format!("{base}/3/nmf?rank=6&iters=150"))
        .await
        .unwrap();
    assert_eq!(
        (status, again.as_str()),
        (200, nmf_body.as_str()),
        "a repeated NMF request was not answered from the cache"
    );
    let (status, message) = get_error(&server, &format!("{base}/3/nmf?rank=5&iters=150")).await;
    assert!(
        (500..600).contains(&status),
        "an NMF computed from spoiled activations must fail: {status} {message}"
    );
    spoiled.restore();
    assert_eq!(nmf.blocks.len(), 3);
    assert_eq!(nmf.blocks[0].name, "inputs");
    assert_eq!(nmf.image_shape, Some((28, 28)));
    assert_eq!(
        (nmf.blocks[0].loadings.rows, nmf.blocks[0].loadings.cols),
        (784, 6)
    );
    assert_eq!(
        (nmf.blocks[1].loadings.rows, nmf.blocks[2].loadings.rows),
        (12, 10)
    );
    assert_eq!(
        (nmf.instance_weights.rows, nmf.instance_weights.cols),
        (150, 6)
    );
    assert_eq!(nmf.top_instances.len(), 6);
    assert!(
        nmf.objective
            .windows(2)
            .all(|w| w[1] <= w[0] * (1.0 + 1e-6))
    );
    for block in &nmf.blocks {
        assert!(block.loadings.values.iter().all(|v| *v >= 0.0));
        assert!(block.rmse.is_finite());
    }
    // Tiny, this fit stays on the cores, and says so.
    assert!(nmf.fitted_on.starts_with("CPU; "), "{}", nmf.fitted_on);
    // A second server over the same store, told to fit on wgpu (lavapipe here), gives the
    // same fit up to f32 rounding and says where it ran.
    let store = actiscope_store::Store::open(&server.store_path()).unwrap();
    let wgpu_server = TestServer::start_with_options(
        store,
        actiscope_server::state::ServerOptions {
            nmf_device: actiscope_train::nmf::NmfDeviceChoice::Wgpu,
            no_train: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let fixed = format!("{base}/3/nmf?rank=6&iters=120&tol=0");
    let (on_cpu, _): (NmfResult, _) = get_ok(&server, &fixed).await;
    let (on_wgpu, _): (NmfResult, _) = get_ok(&wgpu_server, &fixed).await;
    assert!(
        on_wgpu.fitted_on.contains("--nmf-device wgpu") && !on_wgpu.fitted_on.starts_with("CPU"),
        "{}",
        on_wgpu.fitted_on
    );
    assert_eq!(on_wgpu.objective.len(), 120);
    assert!(
        (on_wgpu.rmse - on_cpu.rmse).abs() < 1e-3 * on_cpu.rmse,
        "wgpu rmse {} against the CPU's {}",
        on_wgpu.rmse,
        on_cpu.rmse
    );
    for (a, b) in on_wgpu.blocks.iter().zip(&on_cpu.blocks) {
        assert!(
            (a.rmse - b.rmse).abs() < 1e-3 * b.rmse,
            "{}: {} vs {}",
            a.name,
            a.rmse,
            b.rmse
        );
    }
    drop(wgpu_server);
    // Layers only, without the inputs.
    let (layers_only, _): (NmfResult, _) = get_ok(
        &server,
        &format!("{base}/3/nmf?rank=4&inputs=false&layers=1"),
    )
    .await;
    assert_eq!(layers_only.blocks.len(), 1);
    assert_eq!(layers_only.blocks[0].layer_idx, Some(1));
    assert_eq!(layers_only.image_shape, None);

    let (curve, _): (RmseCurve, _) = get_ok(
        &server,
        &format!("{base}/3/nmf/rmse?ranks=2,6,12&inputs=false&iters=300&tol=0"),
    )
    .await;
    assert_eq!(curve.points.len(), 3);
    assert!(
        curve.points.windows(2).all(|w| w[1].1 < w[0].1),
        "rmse should fall as rank rises: {:?}",
        curve.points
    );

    let (spectra, _): (Spectra, _) = get_ok(&server, &format!("{base}/2/spectra")).await;
    assert_eq!(spectra.epoch, 2);
    assert_eq!(spectra.layers.len(), 2);
    assert_eq!(spectra.layers[0].len(), 12);
    assert!(spectra.layers[0].windows(2).all(|w| w[0] >= w[1]));

    // Flows over any span of layers; the last two are what the snapshot stored.
    let (stored, _): (actiscope_protocol::EpochSnapshot, _) =
        get_ok(&server, &format!("{base}/2")).await;
    let (last_two, _): (actiscope_protocol::apd::FlowTable, _) =
        get_ok(&server, &format!("{base}/2/flows?from=0&to=1")).await;
    assert_eq!(last_two, stored.flows);
    let (first_only, _): (actiscope_protocol::apd::FlowTable, _) =
        get_ok(&server, &format!("{base}/2/flows?from=0&to=0")).await;
    let total = |t: &actiscope_protocol::apd::FlowTable| -> usize {
        t.flows.iter().map(|f| f.instances.len()).sum()
    };
    assert_eq!(total(&first_only), 150);
    assert!(first_only.flows.len() <= last_two.flows.len());

    // Images and the CSV export.
    let (images, _): (actiscope_protocol::ProbeImages, _) =
        get_ok(&server, &format!("/api/runs/{run_id}/images")).await;
    assert_eq!((images.rows, images.cols), (28, 28));
    assert_eq!(images.pixels.len(), 150 * 784);
    let (status, csv) = http_get(server.addr, &format!("{base}/2/probe.csv"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "instance,source_index,label,prediction,loss");
    assert_eq!(lines.len(), 151);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], "0");
    assert_eq!(first[1], stored.probe.indices[0].to_string());
    assert_eq!(first[2], stored.probe.labels[0].to_string());

    // Clear errors.
    let cases = [
        (format!("{base}/1/mapper?lens=pca9"), 400, "pca9"),
        (format!("{base}/1/mapper?layer=7"), 400, "layer 7"),
        (format!("{base}/1/mapper?intervals=0"), 400, "intervals"),
        (format!("{base}/99/mapper"), 404, "epoch 99"),
        ("/api/runs/9999/epochs/1/nmf".to_owned(), 404, "9999"),
        (format!("{base}/1/nmf?rank=0"), 400, "rank 0"),
        (format!("{base}/1/nmf?rank=10&iters=99999"), 400, "iters"),
        (
            format!("{base}/1/nmf?inputs=false&layers=5"),
            400,
            "layer 5",
        ),
        (
            format!("{base}/1/nmf?inputs=false&layers=1,0,1"),
            400,
            "layer 1 twice",
        ),
        (format!("{base}/1/nmf/rmse?ranks=x"), 400, "ranks"),
        (format!("{base}/1/flows?from=1&to=0"), 400, "from"),
        (format!("{base}/1/flows?from=0&to=5"), 400, "to < 2"),
        ("/api/runs/9999/images".to_owned(), 404, "9999"),
        (format!("{base}/77/probe.csv"), 404, "77"),
    ];
    for (path, status, needle) in cases {
        let (got, message) = get_error(&server, &path).await;
        assert_eq!(got, status, "{path}: {message}");
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planar_inputs_cannot_join_the_factorization() {
    use actiscope_train::data::DatasetSpec;
    use actiscope_train::data::synthetic::Planar;
    let (server, run_id) = TestServer::start_with_run(
        None,
        Some(run_config(DatasetSpec::Planar(Planar::Circles), 1)),
    )
    .await
    .unwrap();
    let run_id = run_id.unwrap();
    wait_for_epochs(&server, run_id, 1).await;
    let base = format!("/api/runs/{run_id}/epochs/1");
    let (status, message) = get_error(&server, &format!("{base}/nmf")).await;
    assert_eq!(status, 400);
    assert!(message.contains("planar"), "{message}");
    let (nmf, _): (NmfResult, _) =
        get_ok(&server, &format!("{base}/nmf?inputs=false&rank=3")).await;
    assert_eq!(nmf.blocks.len(), 2);
    // The predicted-score lens has its scores stored with each epoch.
    let (graph, _): (MapperGraph, _) =
        get_ok(&server, &format!("{base}/mapper?lens=score&intervals=4")).await;
    assert!(!graph.nodes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarity_across_epochs_layers_and_runs() {
    use actiscope_protocol::similarity::SimilarityGrid;
    let (server, run_id) = TestServer::start_with_run(
        None,
        Some(run_config(actiscope_train::data::DatasetSpec::Digits, 3)),
    )
    .await
    .unwrap();
    let run_id = run_id.unwrap();
    wait_for_epochs(&server, run_id, 3).await;

    let mut finals = Vec::new();
    for method in ["cka", "cka-debiased", "svcca", "pwcca"] {
        // Layers x epochs against the final epoch: one row per hidden layer, one column per
        // epoch, and the final epoch against itself is 1.
        let (grid, _): (SimilarityGrid, _) = get_ok(
            &server,
            &format!("/api/runs/{run_id}/similarity?method={method}"),
        )
        .await;
        assert_eq!(grid.method, method);
        assert_eq!(grid.row_labels, ["layer 1", "layer 2"], "{method}");
        assert_eq!(grid.epochs, [1, 2, 3], "{method}");
        assert_eq!(grid.values.len(), 2 * 3, "{method}");
        assert_eq!(grid.reference_epoch, Some(3));
        assert!(grid.problems.is_empty(), "{method}: {:?}", grid.problems);
        for layer in 0..2 {
            let itself = grid.get(layer, 2).unwrap();
            assert!(
                (itself - 1.0).abs() < 1e-6,
                "{method} layer {layer}: {itself}"
            );
            let first = grid.get(layer, 0).unwrap();
            assert!(
                first < itself - 1e-6,
                "{method}: epoch 1 is not epoch 3 ({first})"
            );
        }
        finals.push(grid.values.clone());
        // Against epoch 1 instead: the first column becomes the diagonal.
        let (grid, _): (SimilarityGrid, _) = get_ok(
            &server,
            &format!("/api/runs/{run_id}/similarity?method={method}&reference=1"),
        )
        .await;
        assert_eq!(grid.reference_epoch, Some(1));
        assert!((grid.get(0, 0).unwrap() - 1.0).abs() < 1e-6);

        // Layers x layers at one epoch, inputs first: symmetric for CKA, 1 on the diagonal.
        let (grid, _): (SimilarityGrid, _) = get_ok(
            &server,
            &format!("/api/runs/{run_id}/epochs/2/similarity?method={method}"),
        )
        .await;
        assert_eq!(grid.row_labels, ["input", "layer 1", "layer 2"]);
        assert_eq!(grid.col_labels, grid.row_labels);
        for i in 0..3 {
            if let Some(diagonal) = grid.get(i, i) {
                assert!(
                    (diagonal - 1.0).abs() < 1e-6,
                    "{method} [{i}][{i}] = {diagonal}"
                );
            } else {
                assert!(!grid.problems.is_empty(), "an empty cell says why");
            }
        }
        if method.starts_with("cka") {
            for (i, j) in [(0, 1), (0, 2), (1, 2)] {
                let (a, b) = (grid.get(i, j).unwrap(), grid.get(j, i).unwrap());
                assert!((a - b).abs() < 1e-9, "{method}: CKA is symmetric");
            }
        }
    }
    assert_ne!(
        finals[0], finals[2],
        "switching the method changes the values"
    );

    // A second run on the same probe (another seed, so other splits of the training data)
    // compares; one with another probe is a 409 that says why.
    let body = serde_json::json!({
        "dataset": "digits", "hidden": [12, 10], "optimizer": "adam", "lr": 0.01,
        "batch": 256, "epochs": 2, "seed": 4, "probe": "n=150", "device": "flex"
    });
    let (status, created) =
        actiscope_e2e::http_post_json(server.addr, "/api/runs", &body.to_string())
            .await
            .unwrap();
    assert_eq!(status, 201, "{created}");
    let twin: actiscope_protocol::RunSummary = serde_json::from_str(&created).unwrap();
    let other_probe = serde_json::json!({
        "dataset": "digits", "hidden": [12, 10], "optimizer": "adam", "lr": 0.01,
        "batch": 256, "epochs": 2, "seed": 4, "probe": "n=140", "device": "flex"
    });
    let (status, created) =
        actiscope_e2e::http_post_json(server.addr, "/api/runs", &other_probe.to_string())
            .await
            .unwrap();
    assert_eq!(status, 201, "{created}");
    let stranger: actiscope_protocol::RunSummary = serde_json::from_str(&created).unwrap();
    wait_for_epochs(&server, twin.run_id, 2).await;
    wait_for_epochs(&server, stranger.run_id, 2).await;
    let (grid, _): (SimilarityGrid, _) = get_ok(
        &server,
        &format!(
            "/api/runs/{run_id}/compare/{}?method=cka&epoch_a=3&epoch_b=2",
            twin.run_id
        ),
    )
    .await;
    assert_eq!(grid.values.len(), 2 * 2);
    assert!(
        grid.values
            .iter()
            .all(|v| v.is_some_and(|v| (0.0..=1.0 + 1e-9).contains(&v)))
    );
    let (status, message) = get_error(
        &server,
        &format!("/api/runs/{run_id}/compare/{}?method=cka", stranger.run_id),
    )
    .await;
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("probe different instances"), "{message}");

    // Clear errors.
    for (path, status, needle) in [
        (
            format!("/api/runs/{run_id}/similarity?method=cca"),
            400,
            "svcca",
        ),
        (
            format!("/api/runs/{run_id}/similarity?reference=x"),
            400,
            "reference",
        ),
        (
            format!("/api/runs/{run_id}/similarity?reference=9"),
            404,
            "epoch 9",
        ),
        ("/api/runs/999/similarity".to_owned(), 404, "999"),
        (
            format!("/api/runs/{run_id}/epochs/9/similarity"),
            404,
            "epoch 9",
        ),
    ] {
        let (got, message) = get_error(&server, &path).await;
        assert_eq!(got, status, "{path}: {message}");
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapper_request_maps_a_bounded_number_of_epochs_then_goes_on() {
    let epochs = 12;
    let (server, run_id) = TestServer::start_with_run(
        None,
        Some(run_config(
            actiscope_train::data::DatasetSpec::Planar(
                actiscope_train::data::synthetic::Planar::Moons,
            ),
            epochs,
        )),
    )
    .await
    .unwrap();
    let run_id = run_id.unwrap();
    wait_for_epochs(&server, run_id, epochs).await;
    let path = |epoch: usize| {
        format!("/api/runs/{run_id}/epochs/{epoch}/mapper?layer=0&intervals=5&min_samples=1")
    };
    // Epoch 12 needs the graphs of epochs 1-11 first: the first call maps eight and says so.
    let (status, body) = http_get(server.addr, &path(epochs)).await.unwrap();
    assert_eq!(status, 202, "{body}");
    let pending: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pending["pending"], true, "{body}");
    assert_eq!(pending["done"], 8, "{body}");
    assert_eq!(pending["needed"], epochs, "{body}");
    // Asking again goes on from there and answers.
    let (last, _): (MapperGraph, _) = get_ok(&server, &path(epochs)).await;
    // Every epoch on the way was kept: asking for one is answered at once, with the
    // identities the last graph was carried from.
    let (before_last, _): (MapperGraph, _) = get_ok(&server, &path(epochs - 1)).await;
    let ids = |g: &MapperGraph| -> std::collections::HashSet<u32> {
        g.nodes.iter().map(|n| n.id).collect()
    };
    assert!(!ids(&last).is_disjoint(&ids(&before_last)));
}
