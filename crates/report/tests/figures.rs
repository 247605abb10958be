//! Every figure drawn from known data: the SVG parses as XML and has one mark per bar, line,
//! node or cell of the data; the PNG decodes at the requested size.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use actiscope_protocol::apd::{Apd, ApdEdge, ApdNode, ApdNodeKind, FlowHistogram, FlowTable};
use actiscope_protocol::mapper::{MapperEdge, MapperGraph, MapperNode, MapperParams};
use actiscope_protocol::nmf::{NmfBlock, NmfParams, NmfResult, RmseCurve, Spectra};
use actiscope_protocol::similarity::SimilarityGrid;
use actiscope_protocol::{EpochMetrics, WireMatrix};
use actiscope_report::grids::{self, SCALE_STEPS};
use actiscope_report::latents::LatentImages;
use actiscope_report::lines::{self, series_colour};
use actiscope_report::mapper::{MapperFigure, NodeColour};
use actiscope_report::sankey::SankeyFigure;
use actiscope_report::{Figure, FigureName, Format, Panel};

fn metrics(epochs: usize, layers: usize) -> Vec<EpochMetrics> {
    (1..=epochs)
        .map(|epoch| EpochMetrics {
            epoch,
            train_loss: 2.0 / epoch as f64,
            val_loss: 2.2 / epoch as f64,
            train_accuracy: 1.0 - 0.5 / epoch as f64,
            val_accuracy: 1.0 - 0.6 / epoch as f64,
            minibatch_loss: 2.1 / epoch as f64,
            unique_patterns: (0..layers).map(|l| 1000 / (l + 1) + epoch * 10).collect(),
            train_secs: 0.1,
            capture_secs: 0.01,
            diverged: false,
        })
        .collect()
}

/// Two layers of two patterns each and two labels; 6 instances.
fn apd() -> Apd {
    let pattern = |l, p| ApdNodeKind::Pattern {
        layer_idx: l,
        pattern_id: p,
        bits: "10".into(),
    };
    let node = |kind, instances, errors| ApdNode {
        kind,
        instances,
        errors,
    };
    let edge = |from_level, from_node, to_node, instances, errors| ApdEdge {
        from_level,
        from_node,
        to_node,
        instances,
        errors,
    };
    Apd {
        levels: vec![
            vec![node(pattern(0, 0), 4, 1), node(pattern(0, 1), 2, 0)],
            vec![node(pattern(1, 0), 3, 0), node(pattern(1, 1), 3, 1)],
            vec![
                node(ApdNodeKind::Label { label: 0 }, 3, 0),
                node(ApdNodeKind::Label { label: 1 }, 3, 1),
            ],
        ],
        edges: vec![
            edge(0, 0, 0, 3, 0),
            edge(0, 0, 1, 1, 1),
            edge(0, 1, 1, 2, 0),
            edge(1, 0, 0, 3, 0),
            edge(1, 1, 1, 3, 1),
        ],
        paths: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        instance_count: 6,
    }
}

fn flows() -> FlowTable {
    FlowTable {
        first_layer: 0,
        last_layer: 1,
        flows: vec![],
        histogram: FlowHistogram {
            strength_lower_edges: vec![1, 2, 4, 8],
            purity_edges: vec![0.0, 0.5, 1.0],
            instances: vec![vec![1, 0, 5, 0], vec![0, 2, 40, 900]],
            errors: vec![vec![1, 0, 3, 0], vec![0, 0, 4, 12]],
        },
    }
}

fn nmf(rank: u32) -> NmfResult {
    let block = |name: &str, layer_idx, rows: u32| NmfBlock {
        name: name.to_owned(),
        layer_idx,
        loadings: WireMatrix {
            rows,
            cols: rank,
            values: (0..rows * rank).map(|i| (i % 7) as f32 / 7.0).collect(),
        },
        rmse: 0.1,
    };
    NmfResult {
        params: NmfParams::default(),
        epoch: 3,
        blocks: vec![
            block("inputs", None, 16),
            block("layer 1", Some(0), 5),
            block("layer 2", Some(1), 4),
        ],
        instance_weights: WireMatrix {
            rows: 0,
            cols: rank,
            values: vec![],
        },
        top_instances: vec![],
        objective: vec![1.0],
        rmse: 0.1,
        image_shape: Some((4, 4)),
        fitted_on: String::new(),
    }
}

fn mapper() -> MapperGraph {
    let node = |id: u32, members: Vec<u32>| MapperNode {
        id,
        parent: None,
        members,
        cover_element: 0,
        class_counts: vec![1, 1],
        purity: 0.5 + id as f32 / 10.0,
        error_rate: 0.1,
        mean_norm: 1.0,
        exemplars: vec![],
    };
    MapperGraph {
        params: MapperParams::default(),
        instance_count: 10,
        nodes: vec![
            node(0, vec![0, 1, 2]),
            node(1, vec![2, 3]),
            node(2, vec![4]),
            node(3, vec![5, 6]),
        ],
        edges: vec![
            MapperEdge {
                source: 0,
                target: 1,
                jaccard: 0.25,
            },
            MapperEdge {
                source: 1,
                target: 3,
                jaccard: 0.1,
            },
        ],
    }
}

fn similarity() -> SimilarityGrid {
    SimilarityGrid {
        method: "cka".to_owned(),
        row_labels: vec!["input".into(), "layer 1".into(), "layer 2".into()],
        col_labels: (1..=5).map(|e| format!("epoch {e}")).collect(),
        values: (0..15)
            .map(|i| if i == 7 { None } else { Some(i as f64 / 14.0) })
            .collect(),
        problems: vec![],
        reference_epoch: Some(5),
        epochs: (1..=5).collect(),
    }
}

/// Renders `figure` both ways at its default size; returns the SVG text after checking that
/// it parses and that the PNG decodes at that size.
fn render(figure: &Figure) -> String {
    let (width, height) = figure.name.default_size();
    let png = figure.render(Format::Png, width, height).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().unwrap();
    assert_eq!(
        (reader.info().width, reader.info().height),
        (width, height),
        "{:?}",
        figure.name
    );
    let svg = String::from_utf8(figure.render(Format::Svg, width, height).unwrap()).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(
        doc.root_element().attribute("width"),
        Some(width.to_string().as_str())
    );
    if let Some(dir) = std::env::var_os("ACTISCOPE_FIGURES_OUT") {
        let base = std::path::Path::new(&dir).join(figure.name.as_str());
        std::fs::write(base.with_extension("svg"), &svg).unwrap();
        std::fs::write(
            base.with_extension("png"),
            figure.render(Format::Png, width, height).unwrap(),
        )
        .unwrap();
    }
    svg
}

/// Elements named `tag` whose attribute `attr` is `value` (any when `value` is `None`).
fn count(svg: &str, tag: &str, attr: &str, value: Option<&str>) -> usize {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == tag)
        .filter(|n| value.is_none() || n.attribute(attr) == value)
        .count()
}

/// The trimmed text of every `<text>` element, in document order.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect()
}

fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t == text)
}

fn hex(colour: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
}

#[test]
fn unique_patterns_draw_one_line_per_layer_on_a_log_axis() {
    let figure = Figure {
        name: FigureName::UniquePatterns,
        panels: vec![Panel::Lines(lines::unique_patterns(&metrics(6, 3)))],
    };
    let svg = render(&figure);
    for layer_idx in 0..3 {
        // The line and its legend swatch.
        assert_eq!(
            count(
                &svg,
                "polyline",
                "stroke",
                Some(&hex(series_colour(layer_idx)))
            ),
            2,
            "layer {layer_idx}"
        );
    }
    assert_eq!(
        count(&svg, "polyline", "stroke", Some(&hex(series_colour(3)))),
        0
    );
    assert!(has_text(&svg, "unique patterns") && has_text(&svg, "layer 3"));
}

#[test]
fn training_draws_losses_and_accuracies_side_by_side() {
    let m = metrics(4, 2);
    let figure = Figure {
        name: FigureName::Training,
        panels: vec![
            Panel::Lines(lines::losses(&m)),
            Panel::Lines(lines::accuracies(&m)),
        ],
    };
    let svg = render(&figure);
    // Colours 0 and 1 in both panels, colour 2 (minibatch) only in the losses.
    assert_eq!(
        count(&svg, "polyline", "stroke", Some(&hex(series_colour(0)))),
        4
    );
    assert_eq!(
        count(&svg, "polyline", "stroke", Some(&hex(series_colour(2)))),
        2
    );
}

#[test]
fn the_sankey_has_a_band_per_edge_and_a_box_per_node() {
    let apd = apd();
    let figure = Figure {
        name: FigureName::Sankey,
        panels: vec![Panel::Sankey(SankeyFigure {
            title: "epoch 3".into(),
            apd: apd.clone(),
        })],
    };
    let svg = render(&figure);
    assert_eq!(count(&svg, "polygon", "", None), apd.edges.len());
    assert_eq!(count(&svg, "rect", "fill", Some("#1F4E99")), 6);
    // The all-error share is red, the error-free links blue.
    assert_eq!(count(&svg, "polygon", "fill", Some("#D62728")), 1);
    assert_eq!(count(&svg, "polygon", "fill", Some("#6EA0DC")), 3);
    assert!(has_text(&svg, "predicted") && has_text(&svg, "layer 2 (2)"));
}

#[test]
fn flow_histograms_have_a_cell_per_bin_and_print_the_counts() {
    let table = flows();
    let figure = Figure {
        name: FigureName::Flows,
        panels: vec![
            Panel::Grid(grids::flow_histogram(&table, false, "instances".into())),
            Panel::Grid(grids::flow_histogram(&table, true, "errors".into())),
        ],
    };
    let svg = render(&figure);
    // Background + two grids of 2 x 4 cells and their colour bars.
    assert_eq!(count(&svg, "rect", "", None), 1 + 2 * (8 + SCALE_STEPS));
    assert!(has_text(&svg, "900") && has_text(&svg, "12") && has_text(&svg, "8+"));
    // The purest row is on top: its label comes first.
    let labels = texts(&svg);
    let high = labels.iter().position(|t| t == "0.50-1.00").unwrap();
    let low = labels.iter().position(|t| t == "0.00-0.50").unwrap();
    assert!(high < low);
}

#[test]
fn similarity_grids_draw_every_cell_and_leave_missing_ones_grey() {
    let grid = similarity();
    let figure = Figure {
        name: FigureName::SimilarityEpochs,
        panels: vec![Panel::Grid(grids::similarity("cka".into(), &grid))],
    };
    let svg = render(&figure);
    assert_eq!(count(&svg, "rect", "", None), 1 + 15 + SCALE_STEPS);
    assert_eq!(count(&svg, "rect", "fill", Some("#EBEBEB")), 1);
    assert!(has_text(&svg, "1.00"), "the largest value is printed");
    assert_eq!(
        texts(&svg).iter().filter(|t| t.starts_with("0.")).count(),
        14 - 1 + 1,
        "every value but the empty cell's, and the bar's low end"
    );
}

#[test]
fn nmf_figures_draw_each_factor_and_each_loading() {
    let nmf = nmf(3);
    let latents = LatentImages::of(&nmf).unwrap();
    assert_eq!(latents.images.len(), 3);
    let svg = render(&Figure {
        name: FigureName::NmfLatents,
        panels: vec![Panel::Latents(latents)],
    });
    assert_eq!(
        texts(&svg)
            .iter()
            .filter(|t| t.starts_with("factor "))
            .count(),
        3
    );
    let grids = grids::factor_loadings(&nmf);
    assert_eq!(grids.len(), 2, "one per layer block");
    let svg = render(&Figure {
        name: FigureName::NmfFactors,
        panels: grids.into_iter().map(Panel::Grid).collect(),
    });
    assert_eq!(
        count(&svg, "rect", "", None),
        1 + (5 * 3 + SCALE_STEPS) + (4 * 3 + SCALE_STEPS)
    );
    let mut planar = nmf.clone();
    planar.image_shape = None;
    assert!(
        LatentImages::of(&planar)
            .unwrap_err()
            .to_string()
            .contains("not images")
    );
    let curves = vec![
        RmseCurve {
            epoch: 1,
            points: vec![(1, 0.5), (2, 0.4), (4, 0.3)],
            data_rms: 1.0,
        },
        RmseCurve {
            epoch: 5,
            points: vec![(1, 0.4), (2, 0.3), (4, 0.1)],
            data_rms: 1.0,
        },
    ];
    let svg = render(&Figure {
        name: FigureName::NmfRmse,
        panels: vec![Panel::Lines(lines::rmse_by_rank(&curves))],
    });
    assert_eq!(
        count(&svg, "polyline", "stroke", Some(&hex(series_colour(1)))),
        2
    );
    let svg = render(&Figure {
        name: FigureName::Spectra,
        panels: vec![Panel::Lines(lines::spectra(&Spectra {
            epoch: 2,
            layers: vec![vec![9.0, 3.0, 1.0, 0.0], vec![5.0, 2.0]],
        }))],
    });
    assert_eq!(
        count(&svg, "polyline", "stroke", Some(&hex(series_colour(0)))),
        2
    );
}

#[test]
fn the_mapper_graph_has_a_circle_per_node_and_a_line_per_edge() {
    let graph = mapper();
    let svg = render(&Figure {
        name: FigureName::Mapper,
        panels: vec![Panel::Mapper(MapperFigure {
            title: "layer 1".into(),
            graph: graph.clone(),
            colour: NodeColour::Purity,
        })],
    });
    assert_eq!(count(&svg, "circle", "", None), graph.nodes.len());
    assert_eq!(count(&svg, "polyline", "", None), graph.edges.len());
    // Coloured by class as the dashboard offers: every node's class counts are [1, 1], so the
    // majority is class 0 (ties go to the smaller class), in class 0's colour.
    let by_class = render(&Figure {
        name: FigureName::Mapper,
        panels: vec![Panel::Mapper(MapperFigure {
            title: "layer 1".into(),
            graph: graph.clone(),
            colour: NodeColour::parse("class").unwrap(),
        })],
    });
    assert_eq!(
        count(&by_class, "circle", "fill", Some("#4E79A7")),
        graph.nodes.len()
    );
    assert_eq!(NodeColour::parse("rainbow"), None);
}

#[test]
fn tiny_pictures_draw_without_panicking() {
    // The smallest size, every kind of panel, two panels side by side (32 px each).
    let figures = [
        Figure {
            name: FigureName::Flows,
            panels: vec![
                Panel::Grid(grids::flow_histogram(&flows(), false, "a".into())),
                Panel::Grid(grids::flow_histogram(&flows(), true, "b".into())),
            ],
        },
        Figure {
            name: FigureName::Sankey,
            panels: vec![Panel::Sankey(SankeyFigure {
                title: String::new(),
                apd: apd(),
            })],
        },
        Figure {
            name: FigureName::NmfLatents,
            panels: vec![Panel::Latents(LatentImages::of(&nmf(3)).unwrap())],
        },
        Figure {
            name: FigureName::UniquePatterns,
            panels: vec![Panel::Lines(lines::unique_patterns(&metrics(3, 2)))],
        },
    ];
    for figure in &figures {
        for format in [Format::Svg, Format::Png] {
            assert!(figure.render(format, 64, 64).is_ok(), "{:?}", figure.name);
        }
    }
}

#[test]
fn names_round_trip_and_sizes_are_checked() {
    for name in FigureName::ALL {
        assert_eq!(FigureName::parse(name.as_str()), Some(name));
    }
    assert_eq!(FigureName::parse("pie"), None);
    let figure = Figure {
        name: FigureName::Spectra,
        panels: vec![],
    };
    assert!(figure.render(Format::Svg, 10, 10).is_err());
}
