//! Tests: output validity (PNG decoded, SVG parsed as XML), the plotted
//! data, edge cases, and a sample generator (`cargo test -- --ignored`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::report::*;

/// Deterministic pseudo-random numbers in 0..1.
pub(crate) struct Lcg(u64);
impl Lcg {
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("report-tests-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Decodes a PNG fully and returns (width, height).
fn check_png(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = dec.read_info().expect("PNG header");
    let mut buf = vec![0u8; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG pixel data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert!(info.width >= 64 && info.height >= 64);
    // Not a blank image: some pixels are dark (text, lines).
    let dark = buf[..info.buffer_size()]
        .chunks(3)
        .filter(|p| p.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 50, "PNG looks blank ({dark} dark pixels)");
    (info.width, info.height)
}

/// Parses the SVG as XML; returns (width, height, all text content).
fn check_svg(svg: &str) -> (u32, u32, String) {
    let doc = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let w: u32 = root.attribute("width").unwrap().parse().unwrap();
    let h: u32 = root.attribute("height").unwrap().parse().unwrap();
    assert!(root.attribute("viewBox").is_some());
    let texts: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(!texts.is_empty(), "SVG has no text");
    (w, h, texts.join("\n"))
}

fn check_rendered<D>(r: &Rendered<D>) -> String {
    let (pw, ph) = check_png(&r.png);
    let (sw, sh, texts) = check_svg(&r.svg);
    assert_eq!((pw, ph), r.size);
    assert_eq!((sw, sh), r.size);
    texts
}

fn titles(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------- data

pub(crate) fn sample_curves(epochs: usize, best: usize, max: usize) -> TrainingCurves {
    let mut rng = Lcg(7);
    let tasks = [
        ("intent accuracy", 0.93),
        ("tags span F1", 0.86),
        ("sentiment accuracy", 0.89),
        ("pos token accuracy", 0.965),
    ];
    let points = (1..=epochs)
        .map(|e| {
            let t = e as f64;
            let mut scores = BTreeMap::new();
            for (i, (name, top)) in tasks.iter().enumerate() {
                let v = top - (0.35 - 0.05 * i as f64) * (-t / 2.2).exp()
                    + (rng.next() - 0.5) * 0.012
                    - if e > best {
                        0.002 * (e - best) as f64
                    } else {
                        0.0
                    };
                scores.insert(name.to_string(), v.min(1.0));
            }
            let selection_score = Some(scores.values().sum::<f64>() / scores.len() as f64);
            EpochPoint {
                epoch: e,
                loss: 1.9 * (-t / 3.0).exp() + 0.12 + rng.next() * 0.03,
                scores,
                selection_score,
            }
        })
        .collect();
    TrainingCurves {
        title: "Training curves — minilm-intent-slots-2026-11-30".into(),
        points,
        best_epoch: Some(best),
        early_stop_epoch: (epochs < max).then_some(epochs),
        max_epochs: Some(max),
    }
}

pub(crate) fn sample_confusion(labels: Vec<String>, seed: u64, extra: bool) -> ConfusionMatrix {
    let mut rng = Lcg(seed);
    let n = labels.len();
    let counts = (0..n)
        .map(|i| {
            let support = (5.0 + rng.next() * 80.0) as usize;
            let mut row = vec![0usize; n + usize::from(extra)];
            for _ in 0..support {
                let r = rng.next();
                let j = if r < 0.86 {
                    i
                } else if r < 0.95 {
                    (i + 1 + (rng.next() * 3.0) as usize) % n
                } else if extra && r > 0.985 {
                    n
                } else {
                    (rng.next() * n as f64) as usize % n
                };
                row[j] += 1;
            }
            row
        })
        .collect();
    ConfusionMatrix {
        title: format!("Confusion matrix — intent (test, {n} labels)"),
        labels,
        counts,
        extra_column: extra.then(|| "(unseen in training)".to_string()),
    }
}

pub(crate) fn intent_labels() -> Vec<String> {
    [
        "book_flight",
        "cancel_booking",
        "check_weather",
        "play_music",
        "set_alarm",
        "turn_on_lights",
        "turn_off_lights",
        "order_food",
        "transfer_money",
        "check_balance",
        "find_restaurant",
        "greeting",
        "goodbye",
        "thank_you",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(crate) fn many_labels(n: usize) -> Vec<String> {
    let domains = [
        "calendar",
        "weather",
        "music",
        "iot",
        "banking",
        "travel",
        "food",
        "email",
        "news",
        "transport",
        "alarm",
        "qa",
    ];
    let acts = [
        "query",
        "set",
        "remove",
        "update",
        "recommendation_for_location_and_time",
        "quirky",
        "cleaning",
        "hue_lights_off",
        "podcasts",
        "definition",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{}_{}_{}",
                domains[i % domains.len()],
                acts[(i / domains.len()) % acts.len()],
                i
            )
        })
        .collect()
}

pub(crate) fn sample_f1(n: usize) -> LabelF1Chart {
    let mut rng = Lcg(42);
    let base = [
        "B-date",
        "B-time",
        "B-city",
        "B-artist_name",
        "B-restaurant_name",
        "B-party_size_number",
        "B-transport_type",
        "B-currency_name",
        "B-person",
        "B-device_type",
        "B-playlist",
        "B-weather_descriptor",
        "B-timeofday",
        "B-place_name",
    ];
    let labels = (0..n)
        .map(|i| {
            let label = if i < base.len() {
                base[i].to_string()
            } else {
                format!("B-slot_type_number_{i}")
            };
            let support = ((rng.next().powi(2)) * 600.0) as usize;
            let f1 = if support == 0 {
                f64::NAN
            } else {
                (0.98 - rng.next() * 0.5 - 3.0 / (support as f64 + 4.0)).max(0.0)
            };
            let (precision, recall) = if support == 0 {
                (None, None)
            } else {
                (Some((f1 + 0.03).min(1.0)), Some((f1 - 0.03).max(0.0)))
            };
            LabelScore {
                label,
                f1,
                support,
                precision,
                recall,
            }
        })
        .collect();
    LabelF1Chart {
        title: "Slot F1 per type — tags (test)".into(),
        labels,
        micro_f1: Some(0.874),
        ..LabelF1Chart::default()
    }
}

pub(crate) fn sample_fidelity(layers: usize) -> FidelityChart {
    let mut rng = Lcg(3);
    let mut v = Vec::new();
    v.push(LayerFidelity {
        name: "embeddings.word_embeddings.weight".into(),
        cosine: Some(0.99995),
        max_abs_diff: Some(0.0008),
    });
    for l in 0..layers {
        for part in [
            "attention.self.query",
            "attention.self.key",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        ] {
            let bad =
                (l == 3 && part == "intermediate.dense") || (l == 5 && part == "output.dense");
            let cos = if bad {
                0.9862 + rng.next() * 0.002
            } else {
                0.9975 + rng.next() * 0.0024
            };
            let diff = if bad {
                0.21 + rng.next() * 0.1
            } else {
                0.002 + rng.next().powi(3) * 0.04
            };
            v.push(LayerFidelity {
                name: format!("encoder.layer.{l}.{part}.weight"),
                cosine: Some(cos),
                max_abs_diff: Some(diff),
            });
        }
    }
    v.push(LayerFidelity {
        name: "head.intent.classifier.weight".into(),
        cosine: Some(0.99991),
        max_abs_diff: Some(0.0011),
    });
    FidelityChart {
        title: "Quantization fidelity — int8 per-channel vs f32".into(),
        layers: v,
        cosine_threshold: Some(0.99),
        max_abs_diff_threshold: Some(0.1),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn curves_typical() {
    let c = sample_curves(14, 9, 30);
    let r = render_training_curves(&c).unwrap();
    let texts = check_rendered(&r);
    assert!(texts.contains("kept epoch 9"), "{texts}");
    assert!(texts.contains("early stop · epoch 14"));
    assert!(texts.contains("intent accuracy"));
    assert!(texts.contains(SELECTION), "{texts}");
    // The epoch axis spans the 14 epochs run, not the 30 planned: its last tick is 14.
    let ticks: Vec<&str> = texts
        .lines()
        .filter(|t| t.parse::<usize>().is_ok())
        .collect();
    assert!(ticks.contains(&"14") && !ticks.contains(&"30"), "{ticks:?}");
    assert_eq!(r.data.epochs, (1..=14).collect::<Vec<_>>());
    assert_eq!(r.data.series.len(), 4);
    let selection = r.data.selection.as_ref().unwrap();
    let best = selection.at_best.unwrap();
    assert!(
        selection
            .percent
            .iter()
            .flatten()
            .all(|&v| v <= best + 1e-9)
            || best > 0.0
    );
    let intent = r
        .data
        .series
        .iter()
        .find(|s| s.name == "intent accuracy")
        .unwrap();
    let want = c.points[8].scores["intent accuracy"] * 100.0;
    assert!((intent.at_best.unwrap() - want).abs() < 1e-9);
}

#[test]
fn curves_zero_epochs() {
    let r = render_training_curves(&TrainingCurves::default()).unwrap();
    let texts = check_rendered(&r);
    assert!(texts.contains("no epochs recorded"));
    assert!(r.data.epochs.is_empty() && r.data.series.is_empty());
}

#[test]
fn curves_one_epoch() {
    let c = sample_curves(1, 1, 1);
    let r = render_training_curves(&c).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.epochs, vec![1]);
    assert!(r
        .data
        .series
        .iter()
        .all(|s| s.percent.len() == 1 && s.at_best.is_some()));
}

#[test]
fn curves_nan_loss_and_scores() {
    let mut c = sample_curves(6, 3, 6);
    c.points[1].loss = f64::NAN;
    c.points[4].loss = f64::INFINITY;
    c.points[2]
        .scores
        .insert("intent accuracy".into(), f64::NAN);
    let r = render_training_curves(&c).unwrap();
    let texts = check_rendered(&r);
    assert_eq!(r.data.loss[1], None);
    assert_eq!(r.data.loss[4], None);
    assert_eq!(r.data.nonfinite_loss_epochs, vec![2, 5]);
    assert!(texts.contains("NaN/∞ loss: epoch 2, 5"), "{texts}");
    let intent = &r.data.series[0];
    assert_eq!(intent.percent[2], None);
    // All losses NaN: still draws.
    for p in &mut c.points {
        p.loss = f64::NAN;
        p.scores.clear();
    }
    check_rendered(&render_training_curves(&c).unwrap());
}

#[test]
fn curves_best_epoch_outside_data_and_odd_names() {
    let mut c = sample_curves(3, 99, 3);
    c.points[0].scores.insert(
        "意図 accuracy 🎯 with a really very extremely long metric name".into(),
        0.5,
    );
    c.points[0].scores.insert("".into(), 0.5);
    let r = render_training_curves(&c).unwrap();
    check_rendered(&r);
    assert!(r.data.series.iter().all(|s| s.at_best.is_none()));
}

#[test]
fn confusion_counts_and_shape() {
    let cm = sample_confusion(intent_labels(), 1, true);
    let expected: usize = cm.counts.iter().flatten().sum();
    let r = render_confusion_matrix(&cm).unwrap();
    let texts = check_rendered(&r);
    let d = &r.data;
    assert_eq!(d.total, expected);
    assert_eq!(d.row_totals.iter().sum::<usize>(), expected);
    assert_eq!(d.column_totals.iter().sum::<usize>(), expected);
    assert_eq!(
        d.column_labels.last().map(String::as_str),
        Some("(unseen in training)")
    );
    assert_eq!(d.counts.len(), 14);
    assert!(d.counts.iter().all(|r| r.len() == 15));
    assert!(texts.contains("book_flight") && texts.contains("predicted label"));
    // Tooltips name the full labels.
    assert!(titles(&r.svg)
        .iter()
        .any(|t| t.starts_with("gold: book_flight\npredicted: book_flight")));
}

#[test]
fn confusion_one_label_and_empty_rows() {
    let cm = ConfusionMatrix {
        labels: vec!["only".into()],
        counts: vec![vec![7]],
        ..Default::default()
    };
    let r = render_confusion_matrix(&cm).unwrap();
    check_rendered(&r);
    assert_eq!(
        (r.data.total, r.data.correct, r.data.accuracy),
        (7, 7, Some(1.0))
    );

    // Empty row vector, all-zero row and missing rows are zero rows.
    let cm = ConfusionMatrix {
        labels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        counts: vec![vec![3, 1], vec![], vec![0, 0, 0, 0]],
        ..Default::default()
    };
    let r = render_confusion_matrix(&cm).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.row_totals, vec![4, 0, 0, 0]);
    assert_eq!(r.data.counts[3], vec![0, 0, 0, 0]);

    // All zero: accuracy is None, no division by zero.
    let cm = ConfusionMatrix {
        labels: vec!["a".into(), "b".into()],
        counts: vec![vec![0, 0], vec![0, 0]],
        ..Default::default()
    };
    let r = render_confusion_matrix(&cm).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.accuracy, None);

    // No labels at all.
    let r = render_confusion_matrix(&ConfusionMatrix::default()).unwrap();
    assert!(check_rendered(&r).contains("no labels"));
    assert_eq!(r.data.total, 0);
}

#[test]
fn confusion_bad_shape_is_an_error() {
    let cm = ConfusionMatrix {
        labels: vec!["a".into()],
        counts: vec![vec![1, 2]],
        ..Default::default()
    };
    let e = render_confusion_matrix(&cm).unwrap_err();
    assert!(matches!(e, ReportError::InvalidInput(_)), "{e}");
    let cm = ConfusionMatrix {
        labels: vec!["a".into()],
        counts: vec![vec![1], vec![2]],
        ..Default::default()
    };
    assert!(matches!(
        render_confusion_matrix(&cm),
        Err(ReportError::InvalidInput(_))
    ));
}

#[test]
fn confusion_huge_counts_do_not_overflow() {
    let cm = ConfusionMatrix {
        labels: vec!["a".into(), "b".into()],
        counts: vec![vec![usize::MAX, 5], vec![usize::MAX, 1]],
        ..Default::default()
    };
    let r = render_confusion_matrix(&cm).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.total, usize::MAX);
}

#[test]
fn confusion_120_labels_scales_within_cap() {
    let cm = sample_confusion(many_labels(120), 5, false);
    let r = render_confusion_matrix(&cm).unwrap();
    check_rendered(&r);
    let (w, h) = r.size;
    assert!(w > 1600 && h > 1600, "{w}x{h}");
    assert!(w <= 3000 && h <= 3000, "{w}x{h}");
    assert_eq!(r.data.row_labels.len(), 120);
}

#[test]
fn very_large_inputs_stay_within_the_size_cap() {
    // SVG only for the 400-label matrix (its PNG is ~15 MP, slow in debug
    // builds; the PNG path is covered by the 120-label test).
    let cm = sample_confusion(many_labels(400), 6, true);
    let canvas = crate::report::confusion::draw(&cm.data().unwrap(), true);
    let (w, h, texts) = check_svg(&canvas.to_svg().unwrap());
    assert_eq!((w, h), canvas.size());
    assert!(w <= 4000 && h <= 4000 && w > 3000, "{w}x{h}");
    assert!(texts.contains("calendar_query_0"));

    let f1 = sample_f1(500);
    let data = f1.data();
    let (_, h, texts) = check_svg(&crate::report::labels::draw(&data, 10).to_svg().unwrap());
    assert_eq!(data.rows.len(), 500);
    assert!(
        texts.contains("200 labels between these not shown"),
        "{texts}"
    );
    assert!(texts.contains(&data.rows[499].label), "worst label shown");
    assert!(h <= 4000);

    let r = render_layer_fidelity(&sample_fidelity(80)).unwrap();
    assert!(check_rendered(&r).contains("more layers not shown"));
    assert!(r.size.1 <= 4000);
}

#[test]
fn confusion_small_has_readable_size() {
    let cm = sample_confusion(intent_labels(), 2, false);
    let r = render_confusion_matrix(&cm).unwrap();
    let (w, h) = r.size;
    assert!(
        (700..1400).contains(&w) && (600..1400).contains(&h),
        "{w}x{h}"
    );
}

#[test]
fn unicode_and_hostile_labels() {
    let labels = vec![
        "意図_予約_レストラン".to_string(),
        "🎉 party 🎉🎉".to_string(),
        "👩‍👩‍👧‍👦 family".to_string(),
        "a".repeat(300),
        "<script>alert('x')</script> & \"q\"".to_string(),
        "tab\there\nnewline\u{0}nul".to_string(),
        "".to_string(),
        "Ünïcödé ñ ß ø".to_string(),
        "\u{FFFF}\u{200D}\u{0301}".to_string(),
    ];
    let cm = sample_confusion(labels.clone(), 9, true);
    let r = render_confusion_matrix(&cm).unwrap();
    let texts = check_rendered(&r);
    assert!(texts.contains("意図_予約_レストラン"), "SVG keeps CJK text");
    assert!(
        texts.contains("<script>alert('x')</script> & \"q\""),
        "escaped and parsed back"
    );
    assert!(texts.contains('…'), "long label truncated");
    assert!(r.data.row_labels == labels, "data keeps the original names");
    assert!(
        titles(&r.svg).iter().any(|t| t.contains(&"a".repeat(300))),
        "tooltip keeps the full name"
    );

    let f1 = LabelF1Chart {
        labels: labels
            .iter()
            .enumerate()
            .map(|(i, l)| LabelScore {
                label: l.clone(),
                f1: i as f64 / 10.0,
                support: i * 3,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    check_rendered(&render_label_f1(&f1).unwrap());
    let fid = FidelityChart {
        layers: labels
            .iter()
            .map(|l| LayerFidelity {
                name: l.clone(),
                cosine: Some(0.999),
                max_abs_diff: None,
            })
            .collect(),
        ..Default::default()
    };
    check_rendered(&render_layer_fidelity(&fid).unwrap());
    let mut c = sample_curves(3, 2, 3);
    for l in &labels {
        c.points[0].scores.insert(l.clone(), 0.5);
    }
    check_rendered(&render_training_curves(&c).unwrap());
}

#[test]
fn f1_sorted_with_support() {
    let chart = sample_f1(30);
    let r = render_label_f1(&chart).unwrap();
    let texts = check_rendered(&r);
    let f1s: Vec<f64> = r.data.rows.iter().filter_map(|r| r.f1).collect();
    assert!(f1s.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
    let nones = r
        .data
        .rows
        .iter()
        .skip_while(|r| r.f1.is_some())
        .all(|r| r.f1.is_none());
    assert!(nones, "n/a rows last");
    assert_eq!(r.data.rows.len(), 30);
    assert_eq!(
        r.data.total_support,
        chart.labels.iter().map(|l| l.support).sum::<usize>()
    );
    assert!(texts.contains("support") && texts.contains("B-date"));
    let used: Vec<f64> = chart
        .labels
        .iter()
        .filter(|l| l.support > 0 && l.f1.is_finite())
        .map(|l| l.f1)
        .collect();
    let macro_f1 = used.iter().sum::<f64>() / used.len() as f64;
    assert!((r.data.macro_f1.unwrap() - macro_f1).abs() < 1e-12);
}

#[test]
fn f1_edge_cases() {
    let r = render_label_f1(&LabelF1Chart::default()).unwrap();
    assert!(check_rendered(&r).contains("no labels"));
    assert_eq!(r.data.macro_f1, None);
    let one = LabelF1Chart {
        labels: vec![LabelScore {
            label: "B-x".into(),
            f1: f64::NAN,
            support: 0,
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = render_label_f1(&one).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.rows[0].f1, None);
    let r = render_label_f1(&sample_f1(100)).unwrap();
    check_rendered(&r);
    assert!(r.size.1 < 3000, "{:?}", r.size);
}

#[test]
fn fidelity_thresholds() {
    let mut chart = sample_fidelity(6);
    chart.layers[2].cosine = Some(f64::NAN);
    let r = render_layer_fidelity(&chart).unwrap();
    let texts = check_rendered(&r);
    assert!(texts.contains("threshold 0.99"));
    assert!(texts.contains("NaN"));
    let d = &r.data;
    assert_eq!(d.layers.len(), chart.layers.len());
    assert!(d
        .cosine_failures
        .contains(&"encoder.layer.3.intermediate.dense.weight".to_string()));
    assert!(d.cosine_failures.contains(&chart.layers[2].name));
    assert!(d
        .max_abs_diff_failures
        .contains(&"encoder.layer.5.output.dense.weight".to_string()));
    assert_eq!(d.layers[2].cosine_ok, Some(false));
    assert_eq!(d.layers[0].cosine_ok, Some(true));
}

#[test]
fn fidelity_edge_cases() {
    let r = render_layer_fidelity(&FidelityChart::default()).unwrap();
    assert!(check_rendered(&r).contains("no layers"));
    // Only one metric, identical values, zero diff, no thresholds.
    let chart = FidelityChart {
        layers: vec![
            LayerFidelity {
                name: "l0".into(),
                cosine: None,
                max_abs_diff: Some(0.0),
            },
            LayerFidelity {
                name: "l1".into(),
                cosine: None,
                max_abs_diff: Some(0.0),
            },
        ],
        ..Default::default()
    };
    check_rendered(&render_layer_fidelity(&chart).unwrap());
    let chart = FidelityChart {
        layers: vec![
            LayerFidelity {
                name: "l0".into(),
                cosine: Some(1.0),
                max_abs_diff: Some(1e-9),
            },
            LayerFidelity {
                name: "l1".into(),
                cosine: Some(-0.5),
                max_abs_diff: Some(3.0),
            },
        ],
        cosine_threshold: Some(f64::NAN),
        ..Default::default()
    };
    let r = render_layer_fidelity(&chart).unwrap();
    check_rendered(&r);
    assert_eq!(r.data.cosine_threshold, None);
}

#[test]
fn write_files_atomically_with_json_sidecar() {
    // The sidecar is exactly the serialised data and parses back. (Floats
    // are compared via the text: exact f64 round trips need serde_json's
    // `float_roundtrip` feature, which is not assumed here.)
    fn sidecar<D: serde::Serialize + serde::de::DeserializeOwned>(f: &ChartFiles<D>) -> D {
        let text = std::fs::read_to_string(&f.json).unwrap();
        assert_eq!(text.trim_end(), serde_json::to_string(&f.data).unwrap());
        serde_json::from_str(&text).unwrap()
    }
    let dir = tmpdir("write");
    let stem = dir.join("nested/deeper/confusion.intent");
    let cm = sample_confusion(intent_labels(), 4, false);
    let files = write_confusion_matrix(&stem, &cm).unwrap();
    assert_eq!(files.svg, dir.join("nested/deeper/confusion.intent.svg"));
    check_png(&std::fs::read(&files.png).unwrap());
    check_svg(&std::fs::read_to_string(&files.svg).unwrap());
    let back: ConfusionData = sidecar(&files);
    assert_eq!(back.counts, files.data.counts);
    assert_eq!(back.counts.iter().flatten().sum::<usize>(), back.total);
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(dir.join("nested/deeper"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| !n.contains(".tmp")));
    // Overwriting works.
    write_confusion_matrix(&stem, &cm).unwrap();

    let c = write_training_curves(&dir.join("curves"), &sample_curves(5, 3, 5)).unwrap();
    assert_eq!(sidecar(&c).epochs, c.data.epochs);
    let f = write_label_f1(&dir.join("f1"), &sample_f1(12)).unwrap();
    assert_eq!(sidecar(&f).rows.len(), 12);
    let q = write_layer_fidelity(&dir.join("fid"), &sample_fidelity(2)).unwrap();
    assert_eq!(sidecar(&q).cosine_failures, q.data.cosine_failures);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unwritable_directory_is_a_clean_error() {
    let dir = tmpdir("unwritable");
    // A regular file where a folder should be: fails even for root.
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let stem = blocker.join("plots/curves");
    let e = write_training_curves(&stem, &sample_curves(2, 1, 2)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ReportError::Io { .. }), "{msg}");
    assert!(
        msg.contains(&blocker.join("plots").display().to_string()),
        "{msg}"
    );

    let e = write_html_report(&blocker.join("report.html"), &HtmlReport::default()).unwrap_err();
    assert!(e.to_string().contains("not-a-dir"), "{e}");

    // A read-only folder (only meaningful when not running as root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = std::fs::write(ro.join("probe"), b"x");
        if probe.is_err() {
            let e = write_label_f1(&ro.join("f1"), &sample_f1(3)).unwrap_err();
            assert!(e.to_string().contains(&ro.display().to_string()), "{e}");
            assert_eq!(
                std::fs::read_dir(&ro).unwrap().count(),
                0,
                "no temp files left"
            );
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let dir = tmpdir("html");
    let cm = write_confusion_matrix(
        &dir.join("confusion"),
        &sample_confusion(intent_labels(), 3, false),
    )
    .unwrap();
    let curves = render_training_curves(&sample_curves(4, 2, 4)).unwrap();
    let report = HtmlReport {
        title: "run <b>&</b> \"x\"".into(),
        facts: vec![
            ("backbone".into(), "all-MiniLM-L6-v2 <int8>".into()),
            ("lr".into(), "3e-4".into()),
        ],
        metrics: vec![
            MetricRow {
                task: "intent".into(),
                metric: "accuracy".into(),
                valid: Some(0.9341),
                test: Some(0.921),
                ..Default::default()
            },
            MetricRow {
                task: "intent".into(),
                metric: "macro F1".into(),
                valid: Some(0.9),
                test: None,
                ..Default::default()
            },
            MetricRow {
                task: "tags".into(),
                metric: "loss".into(),
                valid: Some(f64::NAN),
                test: Some(0.1234),
                format: MetricFormat::Number,
            },
        ],
        figures: vec![
            cm.figure("Confusion <matrix>"),
            Figure::svg("Curves", curves.svg.clone()),
        ],
        notes: vec!["note with <tag> & ampersand".into()],
    };
    let path = write_html_report(&dir.join("report.html"), &report).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("<title>run &lt;b&gt;&amp;&lt;/b&gt; &quot;x&quot;</title>"));
    assert!(html.contains("all-MiniLM-L6-v2 &lt;int8&gt;"));
    assert!(
        html.contains("93.41%")
            && html.contains("92.10%")
            && html.contains("NaN")
            && html.contains("0.1234")
    );
    assert!(html.contains("rowspan=\"2\""));
    assert!(html.contains("Confusion &lt;matrix&gt;"));
    assert!(html.contains("note with &lt;tag&gt; &amp; ampersand"));
    assert_eq!(html.matches("<svg").count(), 2, "both SVGs inlined");
    assert!(html.contains("href=\"confusion.svg\"") && html.contains("href=\"confusion.png\""));
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external resources"
    );
    // The page is well-formed XML too (XHTML-compatible markup), so parse it.
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("report.html does not parse: {e}"));
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("figure"))
            .count(),
        2
    );

    // Missing figure file: error names it.
    let bad = HtmlReport {
        figures: vec![Figure::svg_file("x", dir.join("missing.svg"))],
        ..Default::default()
    };
    let e = render_html_report(&bad).unwrap_err();
    assert!(e.to_string().contains("missing.svg"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes example charts to `$REPORT_SAMPLES_DIR` (default: `edgetune-report-samples` in the temp folder):
/// `cargo test -- --ignored write_samples`.
#[test]
#[ignore]
fn write_samples() {
    let dir = std::env::var_os("REPORT_SAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("edgetune-report-samples"));
    std::fs::create_dir_all(&dir).unwrap();
    let curves = write_curve_samples(&dir);
    let cm = write_confusion_samples(&dir);
    let f1 = write_label_f1(&dir.join("slot_f1"), &sample_f1(30)).unwrap();
    write_label_f1(&dir.join("slot_f1_100"), &sample_f1(100)).unwrap();
    let fid = write_layer_fidelity(&dir.join("fidelity"), &sample_fidelity(6)).unwrap();
    let figures = vec![
        curves.figure("Training curves"),
        cm.figure("Intent confusion matrix (test)"),
        f1.figure("Slot F1 per type (test)"),
        fid.figure("Quantization fidelity"),
    ];
    write_html_report(&dir.join("report.html"), &sample_report(figures)).unwrap();
}

/// Typical curves, one task with a NaN loss, a single epoch and none; returns the typical one.
fn write_curve_samples(dir: &std::path::Path) -> ChartFiles<CurvesData> {
    let curves = write_training_curves(&dir.join("curves"), &sample_curves(14, 9, 30)).unwrap();
    let mut nan = sample_curves(8, 8, 8);
    nan.title = "Training curves — one task, NaN loss".into();
    for p in &mut nan.points {
        p.scores.retain(|k, _| k == "intent accuracy");
    }
    nan.points[3].loss = f64::NAN;
    nan.early_stop_epoch = None;
    write_training_curves(&dir.join("curves_nan"), &nan).unwrap();
    let mut one = sample_curves(1, 1, 20);
    one.title = "Training curves — single epoch".into();
    write_training_curves(&dir.join("curves_one"), &one).unwrap();
    write_training_curves(&dir.join("curves_empty"), &TrainingCurves::default()).unwrap();
    curves
}

/// Confusion matrices of 14, 60 and 120 labels and of odd label names; returns the first.
fn write_confusion_samples(dir: &std::path::Path) -> ChartFiles<ConfusionData> {
    let cm = write_confusion_matrix(
        &dir.join("confusion"),
        &sample_confusion(intent_labels(), 1, true),
    )
    .unwrap();
    for (name, n, seed, extra) in [
        ("confusion_60", 60, 2, true),
        ("confusion_120", 120, 3, false),
    ] {
        let c = sample_confusion(many_labels(n), seed, extra);
        write_confusion_matrix(&dir.join(name), &c).unwrap();
    }
    let odd = vec![
        "意図_予約_レストラン".to_string(),
        "🎉 party".to_string(),
        "a_really_really_long_intent_label_name_that_goes_on_and_on_and_on".to_string(),
        "Ünïcödé ñ ß".to_string(),
        "x".to_string(),
    ];
    write_confusion_matrix(
        &dir.join("confusion_unicode"),
        &sample_confusion(odd, 4, false),
    )
    .unwrap();
    cm
}

/// A report page with the sample figures, facts and metrics of four tasks.
fn sample_report(figures: Vec<Figure>) -> HtmlReport {
    let row = |task: &str, metric: &str, valid, test| MetricRow {
        task: task.into(),
        metric: metric.into(),
        valid,
        test,
        ..Default::default()
    };
    HtmlReport {
        title: "minilm-intent-slots-2026-11-30".into(),
        facts: vec![
            ("run".into(), "minilm-intent-slots-2026-11-30".into()),
            ("backbone".into(), "all-MiniLM-L6-v2 (int8, frozen)".into()),
            (
                "tasks".into(),
                "intent (sentence), tags (token, BIO), sentiment, pos".into(),
            ),
            (
                "settings".into(),
                "lr 3e-4 · batch 32 · max 30 epochs · patience 5".into(),
            ),
            ("device".into(), "Raspberry Pi 4 (aarch64)".into()),
        ],
        metrics: vec![
            row("intent", "accuracy", Some(0.9341), Some(0.9287)),
            row("tags", "span F1", Some(0.861), Some(0.8522)),
            row("sentiment", "accuracy", Some(0.889), Some(0.8811)),
            row("pos", "token accuracy", Some(0.9655), Some(0.9641)),
            MetricRow {
                format: MetricFormat::Number,
                ..row("pos", "loss", Some(0.1432), None)
            },
        ],
        figures,
        notes: vec!["Weights of epoch 9 were kept.".into()],
    }
}

/// Writes stress-size examples (400-label confusion matrix, 500 F1 rows) to
/// `$REPORT_SAMPLES_DIR` or the temp folder: `cargo test -- --ignored write_stress_samples`.
#[test]
#[ignore]
fn write_stress_samples() {
    let dir = std::env::var_os("REPORT_SAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("report-stress"));
    write_confusion_matrix(
        &dir.join("confusion_400"),
        &sample_confusion(many_labels(400), 6, true),
    )
    .unwrap();
    write_label_f1(&dir.join("slot_f1_500"), &sample_f1(500)).unwrap();
    write_layer_fidelity(&dir.join("fidelity_480"), &sample_fidelity(80)).unwrap();
}

#[test]
#[ignore]
fn bench_png() {
    let cm = sample_confusion(many_labels(120), 3, false);
    let canvas = crate::report::confusion::draw(&cm.data().unwrap(), false);
    let t = std::time::Instant::now();
    let svg = canvas.to_svg().unwrap();
    eprintln!("svg {:?} {} bytes", t.elapsed(), svg.len());
    let t = std::time::Instant::now();
    let png = canvas.to_png().unwrap();
    eprintln!(
        "png {:?} {} bytes {:?}",
        t.elapsed(),
        png.len(),
        canvas.size()
    );
}

/// The validators used above really reject broken output.
#[test]
#[should_panic(expected = "PNG")]
fn png_check_rejects_truncated_png() {
    let r = render_label_f1(&sample_f1(5)).unwrap();
    check_png(&r.png[..r.png.len() / 2]);
}

#[test]
#[should_panic(expected = "not well-formed")]
fn svg_check_rejects_malformed_svg() {
    let r = render_label_f1(&sample_f1(5)).unwrap();
    check_svg(&r.svg.replacen("</text>", "", 1));
}
