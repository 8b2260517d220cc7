//! Measurement harness for the quantizer on the real MiniLM (slow; needs `./setup.sh test`):
//! `EDGETUNE_EVAL=../shared/data/snips/test/seq.in EDGETUNE_CAL=../shared/data/snips/train/seq.in \
//!  EDGETUNE_ALPHA=0.5 cargo bench --bench quant_measure`
//! Imports `.models/minilm-hf` into `target/edgetune-measure/minilm` once, quantizes with the
//! settings from the environment, and prints fidelity, fusion and throughput figures.

use std::path::PathBuf;

use edgetune::onnx::{import, quantize};

fn lines(var: &str, limit: usize) -> Option<Vec<String>> {
    let p = std::env::var(var).ok()?;
    let text = std::fs::read_to_string(&p).ok()?;
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(limit)
            .map(String::from)
            .collect(),
    )
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hf = root.join(".models/minilm-hf");
    assert!(
        hf.join("model.safetensors").is_file(),
        "{} missing: run ./setup.sh test",
        hf.display()
    );
    let dir = root.join("target/edgetune-measure/minilm");
    if !dir.join(import::BACKBONE_FILE).is_file() {
        import::import(&import::ImportOptions::new(&hf, &dir)).unwrap();
    }
    let alpha: f32 = std::env::var("EDGETUNE_ALPHA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let keep: Vec<String> = std::env::var("EDGETUNE_KEEP")
        .ok()
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let full_range = std::env::var("EDGETUNE_FULL_RANGE").is_ok();
    let out = dir.join(format!(
        "measure-a{alpha}-k{}{}.onnx",
        keep.len(),
        if full_range { "-full" } else { "" }
    ));
    let opts = quantize::QuantizeDirOptions {
        model_dir: dir.clone(),
        out: Some(out),
        quant: quantize::QuantizeOptions {
            keep_fp32: keep,
            reduce_range: !full_range,
            ..Default::default()
        },
        sentences: lines("EDGETUNE_EVAL", usize::MAX),
        warn_cosine: quantize::DEFAULT_WARN_COSINE,
        threads: Some(2),
        measure_speed: std::env::var("EDGETUNE_BENCH").is_ok(),
        smooth_alpha: Some(alpha),
        calibration: lines("EDGETUNE_CAL", 512),
        auto_alpha: std::env::var("EDGETUNE_AUTO").is_ok(),
        force: true,
        progress: true,
        plots: None,
    };
    let r = quantize::quantize_dir(&opts).unwrap();
    println!(
        "alpha {alpha}: {} int8, {} fp32, {} smoothed; fused {} unfused {}",
        r.summary.quantized.len(),
        r.summary.kept_fp32.len(),
        r.summary.smoothed_activations,
        r.fused_nodes,
        r.unfused_nodes
    );
    println!(
        "fidelity on {} sentences: mean {:.5} min {:.5}",
        r.fidelity.sentences, r.fidelity.mean_cosine, r.fidelity.min_cosine
    );
    if let Some((f, q)) = r.speed {
        println!(
            "throughput fp32 {f:.1}/s int8 {q:.1}/s speed-up {:.2}x",
            q / f
        );
    }
}
