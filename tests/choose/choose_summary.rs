//! `edgetune choose`'s decision without running anything: limits rule candidates out with the
//! measured value named, the Pareto front, the recommendation (best validation score within the
//! limits, the faster of a tie), the table, the picture, and the candidates parsed from the flags.

use std::collections::BTreeMap;

use edgetune::choose::summary::{chart, decide, ruled_out_by, table, CandidateResult, Choice};
use edgetune::choose::{parse_backbones, Limits};

fn cand(name: &str, score: f64, p50: f64, rss_mib: u64, model_mib: u64) -> CandidateResult {
    CandidateResult {
        name: name.into(),
        score: Some(score),
        tasks: BTreeMap::from([("intent".to_string(), score)]),
        p50_ms: Some(p50),
        p99_ms: Some(p50 * 1.5),
        cold_start_ms: Some(300.0),
        peak_rss_answering: Some(rss_mib << 20),
        peak_rss_training: Some((rss_mib + 100) << 20),
        model_bytes: Some(model_mib << 20),
        extraction_per_s: Some(1000.0 / p50),
        ..Default::default()
    }
}

fn choice(limits: Limits) -> Choice {
    Choice {
        data: "data/demo".into(),
        limits,
        candidates: vec![
            cand("small", 0.90, 5.0, 100, 20),
            cand("cut", 0.89, 4.0, 90, 15),
            cand("big", 0.95, 40.0, 400, 110),
            cand("slow-and-worse", 0.88, 50.0, 300, 100),
        ],
        ..Default::default()
    }
}

#[test]
fn best_score_within_the_limits_is_recommended() {
    let mut c = choice(Limits::default());
    decide(&mut c);
    assert_eq!(c.recommended.as_deref(), Some("big"));
    let front: Vec<&str> = c
        .candidates
        .iter()
        .filter(|x| x.pareto)
        .map(|x| x.name.as_str())
        .collect();
    assert_eq!(front, ["small", "cut", "big"]);
    assert!(
        c.reason.contains("small is 8.0x faster for -5.00 points"),
        "{}",
        c.reason
    );

    // A latency limit rules the big one out and says so; the next best wins.
    let mut c = choice(Limits {
        max_latency_ms: Some(20.0),
        ..Default::default()
    });
    decide(&mut c);
    assert_eq!(c.recommended.as_deref(), Some("small"));
    let big = &c.candidates[2];
    assert_eq!(big.ruled_out, ["--max-latency 20 ms: p50 40.0 ms"]);
    assert!(
        c.reason
            .contains("big is ruled out by --max-latency 20 ms: p50 40.0 ms"),
        "{}",
        c.reason
    );
    let t = table(&c);
    assert!(
        t.contains("<- recommended") && t.contains("ruled out"),
        "{t}"
    );
    let ch = chart(&c);
    assert_eq!(ch.points.len(), 4);
    assert!(ch.points.iter().any(|p| p.recommended && p.name == "small"));
    assert!(ch
        .points
        .iter()
        .any(|p| p.ruled_out.is_some() && p.name == "big"));
}

#[test]
fn memory_counts_training_and_size_counts_the_merged_model() {
    let c = cand("x", 0.9, 5.0, 100, 20);
    let l = Limits {
        max_memory_bytes: Some(150 << 20),
        max_size_bytes: Some(10 << 20),
        ..Default::default()
    };
    let why = ruled_out_by(&c, &l);
    assert_eq!(
        why,
        [
            "--max-memory 150 MiB: peak RSS 200 MiB",
            "--max-size 10.0 MiB: model 20.0 MiB"
        ]
    );
    // Nothing fits: no recommendation, and the reason says so.
    let mut all = choice(Limits {
        max_size_bytes: Some(1 << 20),
        ..Default::default()
    });
    decide(&mut all);
    assert!(all.recommended.is_none());
    assert!(
        all.reason.starts_with("no candidate fits"),
        "{}",
        all.reason
    );
}

#[test]
fn a_tie_goes_to_the_faster_and_a_failed_candidate_is_named() {
    let mut c = Choice {
        candidates: vec![
            cand("a", 0.9000, 10.0, 100, 20),
            cand("b", 0.9004, 12.0, 100, 20),
            CandidateResult {
                name: "broken".into(),
                error: Some("training failed".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    decide(&mut c);
    assert_eq!(c.recommended.as_deref(), Some("a"));
    assert!(c.reason.contains("broken failed"), "{}", c.reason);
    assert!(table(&c).contains("broken failed: training failed"));
}

#[test]
fn the_picture_is_written_with_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = choice(Limits {
        max_latency_ms: Some(20.0),
        ..Default::default()
    });
    decide(&mut c);
    let files = edgetune::report::write_pareto(&tmp.path().join("pareto"), &chart(&c)).unwrap();
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    assert!(svg.contains("small") && svg.contains("ruled out"));
    assert!(std::fs::metadata(&files.png).unwrap().len() > 1000);
    let front: Vec<&str> = files
        .data
        .points
        .iter()
        .filter(|p| p.front)
        .map(|p| p.point.name.as_str())
        .collect();
    assert_eq!(front, ["small", "cut", "big"]);
}

#[test]
fn candidates_are_backbones_times_unfrozen_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("mini");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("backbone.onnx"), b"x").unwrap();
    std::fs::write(m.join("tokenizer.json"), b"{}").unwrap();
    let spec = vec![
        m.display().to_string(),
        format!("other={}", m.join("backbone.onnx").display()),
    ];
    let c = parse_backbones(&spec, &[], &[]).unwrap();
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mini", "other"]);
    // Unfrozen layers need a checkpoint: none is recorded, none given.
    let e = parse_backbones(&spec, &[0, 1], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--hf-weights"), "{e}");
    let c = parse_backbones(&spec, &[0, 2], &[tmp.path().into(), tmp.path().into()]).unwrap();
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mini", "mini top-2", "other", "other top-2"]);
    // The same name twice is refused; a missing backbone names its path.
    let e = parse_backbones(
        &[m.display().to_string(), m.display().to_string()],
        &[],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("NAME=PATH"), "{e}");
    let e = parse_backbones(&["/nonexistent/model".into()], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model"), "{e}");
}
