//! `edgetune choose` on the demo data (`--limit 60`) with two real candidates: the default
//! MiniLM-L6 (int8) and MiniLM cut to its first two layers by `import --layers 2` (int8). Every
//! figure of choose.json is measured, the table, picture and runs are written, features are
//! cached per backbone, and limits rule candidates out naming the flag and the value.
#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::Path;

fn edgetune(cache: &Path, args: &[&str]) -> String {
    let mut c = common::edgetune(cache);
    c.args(args);
    common::ok(c)
}

#[test]
fn choose_measures_every_candidate_and_respects_limits() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cut = tmp.path().join("minilm-l2");
    let hf = common::root().join(".models/minilm-hf");
    edgetune(
        &cache,
        &["import", &s(&hf), "--out", &s(&cut), "--layers", "2"],
    );
    edgetune(&cache, &["quantize", &s(&cut)]);
    let out = tmp.path().join("choose");
    let backbones = format!("minilm=.models/default,l2={}", s(&cut));
    let base = [
        "choose",
        "--data",
        "data/demo",
        "--backbones",
        &backbones,
        "--limit",
        "60",
        "--epochs",
        "3",
        "--predictions",
        "20",
        "--out",
    ];
    let mut args: Vec<&str> = base.to_vec();
    let out_s = s(&out);
    args.extend([out_s.as_str(), "--json"]);
    let json = edgetune(&cache, &args);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = v["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 2);
    for x in c {
        assert!(x["error"].is_null(), "{x}");
        for key in [
            "score",
            "p50_ms",
            "p99_ms",
            "cold_start_ms",
            "peak_rss_answering",
            "peak_rss_training",
            "model_bytes",
            "backbone_bytes",
            "extraction_per_s",
            "train_seconds",
        ] {
            assert!(x[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {x}");
        }
        for task in ["intent", "tags", "urgency"] {
            assert!(x["tasks"][task].as_f64().is_some(), "{task}: {x}");
        }
        assert!(x["p99_ms"].as_f64() >= x["p50_ms"].as_f64());
        assert!(Path::new(x["model"].as_str().unwrap()).is_file());
        assert_eq!(x["extracted"], true, "a fresh cache: training extracted");
    }
    assert_eq!(c[0]["name"], "minilm");
    assert!(
        c[1]["model_bytes"].as_u64() < c[0]["model_bytes"].as_u64(),
        "two layers are smaller than six"
    );
    assert!(v["recommended"].is_string(), "{v}");
    for f in [
        "choose.json",
        "choose.txt",
        "pareto.svg",
        "pareto.png",
        "pareto.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let table = std::fs::read_to_string(out.join("choose.txt")).unwrap();
    assert!(
        table.contains("recommended:") && table.contains("p50 ms"),
        "{table}"
    );

    // The folder is not replaced without --force.
    let mut c2 = common::edgetune(&cache);
    c2.args(&args);
    let err = common::fails(c2);
    assert!(err.contains("--force"), "{err}");

    // Again with a size limit the six-layer model breaks: it is ruled out and named; the
    // features come from the cache now.
    let limit = (c[0]["model_bytes"].as_u64().unwrap() + c[1]["model_bytes"].as_u64().unwrap()) / 2;
    let limit_s = limit.to_string();
    args.extend(["--force", "--max-size", limit_s.as_str()]);
    let v: serde_json::Value = serde_json::from_str(&edgetune(&cache, &args)).unwrap();
    let c = v["candidates"].as_array().unwrap();
    assert_eq!(v["recommended"], "l2", "{v}");
    let why = c[0]["ruled_out"][0].as_str().unwrap();
    assert!(why.starts_with("--max-size"), "{why}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("minilm is ruled out by --max-size"),
        "{v}"
    );
    assert_eq!(c[1]["extracted"], false, "features cached per backbone");

    // A latency no candidate meets: none is recommended, each names --max-latency.
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            out_s.as_str(),
            "--json",
            "--force",
            "--max-latency",
            "0.001",
        ])
        .collect();
    let v: serde_json::Value = serde_json::from_str(&edgetune(&cache, &args)).unwrap();
    assert!(v["recommended"].is_null(), "{v}");
    for x in v["candidates"].as_array().unwrap() {
        assert!(
            x["ruled_out"][0]
                .as_str()
                .unwrap()
                .starts_with("--max-latency 0.001 ms: p50"),
            "{x}"
        );
    }
}
