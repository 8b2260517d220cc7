//! fp32 vs dynamic-int8 MiniLM backbone in ONNX Runtime: batch 32, 2 intra-op threads,
//! length-sorted SNIPS-like sentences. Imports and quantizes `.models/minilm-hf` into
//! `target/edgetune-bench/minilm` on first use. Run: `cargo bench --bench quantize`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use edgetune::onnx::{import, quantize, runtime};

const SENTENCES: &[&str] = &[
    "add sabrina salerno to the grime instrumentals playlist",
    "i want to bring four people to a place that s close to downtown that serves churrascaria cuisine",
    "put lindsey cardinale into my hillary clinton s women s history month playlist",
    "will it snow in mt on june 13 2038",
    "play signe anderson chant music that is newest",
    "rate the current textbook one of six stars",
    "find the movie schedule for animated movies nearby at 09 44 am",
    "book a table for 2 at a restaurant in follett",
];

fn model_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hf = root.join(".models/minilm-hf");
    if !hf.join("model.safetensors").is_file() {
        eprintln!("SKIP: {} missing (run models/setup.sh)", hf.display());
        return None;
    }
    let dir = root.join("target/edgetune-bench/minilm");
    if !dir.join(import::BACKBONE_FILE).is_file() {
        import::import(&import::ImportOptions::new(&hf, &dir)).ok()?;
    }
    if !dir.join(quantize::INT8_FILE).is_file() {
        let opts = quantize::QuantizeDirOptions {
            model_dir: dir.clone(),
            out: None,
            quant: Default::default(),
            sentences: None,
            warn_cosine: 0.0,
            threads: Some(2),
            measure_speed: false,
            smooth_alpha: Some(0.7),
            calibration: None,
            auto_alpha: false,
            progress: false,
            plots: None,
        };
        quantize::quantize_dir(&opts).ok()?;
    }
    Some(dir)
}

fn bench(c: &mut Criterion) {
    let Some(dir) = model_dir() else { return };
    let Ok(tok) = runtime::load_tokenizer(&dir.join(import::TOKENIZER_FILE)) else {
        return;
    };
    let texts: Vec<&str> = SENTENCES.iter().cycle().take(32).copied().collect();
    let Ok(batch) = runtime::EncoderBatch::tokenize(&tok, &texts, 128) else {
        return;
    };
    let opts = runtime::SessionOptions {
        threads: Some(2),
        ..Default::default()
    };
    let mut g = c.benchmark_group("minilm_batch32_2threads");
    for file in [import::BACKBONE_FILE, quantize::INT8_FILE] {
        let Ok(mut s) = runtime::open_session(&dir.join(file), &opts) else {
            continue;
        };
        g.bench_function(file, |b| {
            b.iter(|| {
                runtime::run_encoder(&mut s, &batch, &["last_hidden_state"])
                    .map(|o| o.len())
                    .unwrap_or(0)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
