//! MPNet in ONNX Runtime, on tiny checkpoints the test writes (`tiny_checkpoints`): the import
//! verified against the candle reference and against the NumPy transcription of Hugging Face's
//! MPNet run by Python's onnxruntime (`tests/mpnet_reference.py`), a cut to fewer layers, int8,
//! and `--unfreeze-top` end to end: training the MPNet layers in candle, then the export that
//! rebuilds them in ONNX (relative position bias included) and checks them against training. The
//! real all-mpnet-base-v2 is `mpnet_big.rs`.
#![cfg(feature = "real-model")]

use crate::support as common;
use crate::support::tiny_checkpoints;

use std::path::Path;
use std::process::Command;

use edgetune::hf::relative_position_bucket;
use edgetune::onnx::import::{import, ImportOptions, Manifest};
use tiny_checkpoints::Shape;

fn reference(hf: &Path, onnx: &Path) -> serde_json::Value {
    let o = Command::new("python3")
        .arg(common::root().join("tests/mpnet_reference.py"))
        .arg(hf)
        .arg(onnx)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mpnet_reference.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn tiny_mpnet_import_matches_candle_and_the_numpy_reference() {
    common::require_setup();
    common::require_python_onnxruntime();
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    tiny_checkpoints::write_checkpoint(&hf, Shape::MPNet, 3, 0, 17);
    let r = import(&ImportOptions::new(&hf, tmp.path().join("m"))).unwrap();
    let v = r.verification.expect("verified against candle");
    eprintln!("tiny MPNet vs candle: {v:?}");
    assert!(v.max_abs_diff_hidden <= 1e-4 && v.max_abs_diff_pooled <= 1e-4);

    let py = reference(&hf, &r.backbone);
    eprintln!("tiny MPNet vs NumPy: {py}");
    assert_eq!(py["layers"], 3);
    assert!(py["max_abs_diff_hidden"].as_f64().unwrap() <= 1e-4, "{py}");
    assert!(
        py["max_abs_diff_hidden_all"].as_f64().unwrap() <= 1e-4,
        "{py}"
    );
    let buckets: Vec<usize> = py["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as usize)
        .collect();
    let ours: Vec<usize> = (-130i64..=130)
        .map(|d| relative_position_bucket(d, 32, 128))
        .collect();
    assert_eq!(buckets, ours, "buckets of distances -130..=130");

    // The first two layers only: verified, recorded, and what the reference computes for two.
    let mut opts = ImportOptions::new(&hf, tmp.path().join("m2"));
    opts.layers = Some(2);
    let r2 = import(&opts).unwrap();
    assert!(r2.verification.unwrap().max_abs_diff_hidden <= 1e-4);
    let m = Manifest::load(&tmp.path().join("m2")).unwrap();
    assert_eq!((m.num_layers, m.source_layers), (2, Some(3)));
    let py2 = reference(&hf, &r2.backbone);
    assert_eq!(py2["layers"], 2);
    assert!(
        py2["max_abs_diff_hidden"].as_f64().unwrap() <= 1e-4,
        "{py2}"
    );
    let mut opts = ImportOptions::new(&hf, tmp.path().join("m4"));
    opts.layers = Some(4);
    let e = import(&opts).unwrap_err().to_string();
    assert!(e.contains("--layers 4") && e.contains("3 layers"), "{e}");
}

fn edgetune(cache: &Path, args: &[&str]) -> String {
    let mut c = common::edgetune(cache);
    c.args(args);
    common::ok(c)
}

/// `--unfreeze-top 1` on a tiny MPNet: the layer (and the shared relative position bias) trains
/// in candle, the export rebuilds it in ONNX and the self-check compares it with training (fp32
/// layers within 1e-4; int8 layers on at least 98% of the ids).
#[test]
fn tiny_mpnet_unfrozen_layer_trains_and_exports() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let hf = tmp.path().join("hf");
    tiny_checkpoints::write_checkpoint(&hf, Shape::MPNet, 2, 0, 19);
    let data = tmp.path().join("data");
    tiny_checkpoints::write_dataset(&data, 60, 1);
    let model = tmp.path().join("m");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    edgetune(&cache, &["import", &s(&hf), "--out", &s(&model)]);
    edgetune(&cache, &["quantize", &s(&model)]);
    let run = tmp.path().join("run");
    let out = edgetune(
        &cache,
        &[
            "train",
            "--data",
            &s(&data),
            "--out",
            &s(&run),
            "--backbone",
            &s(&model),
            "--unfreeze-top",
            "1",
            "--hf-weights",
            &s(&hf),
            "--epochs",
            "3",
            "--heads-first",
            "1",
            "-q",
            "--json",
        ],
    );
    let m: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        m["valid"]["tasks"]["intent"]["accuracy"].as_f64().is_some(),
        "{m}"
    );
    let w = edgetune::hf::Weights::load(&run.join("heads.safetensors")).unwrap();
    assert!(
        w.get(edgetune::hf::RELATIVE_BIAS, &[32, 4]).is_ok(),
        "the fine-tuned bias is saved with the run"
    );
    for (flag, name) in [(Some("--fp32-layers"), "fp32.onnx"), (None, "int8.onnx")] {
        let merged = tmp.path().join(name);
        let mut args = vec![
            "export",
            "--run",
            run.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
            "--json",
        ];
        args.extend(flag);
        let report: serde_json::Value =
            serde_json::from_str(edgetune(&cache, &args).trim()).unwrap();
        eprintln!("{name}: {}", report["check"]);
        assert!(merged.is_file());
    }
}
