//! fp32 vs dynamic-int8 MiniLM backbone in ONNX Runtime: batch 32, 2 intra-op threads,
//! length-sorted SNIPS-like sentences. Imports and quantizes `.models/minilm-hf` into
//! `target/edgetune-bench/minilm` on first use. Run: `cargo bench --bench quantize`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use edgetune::backbone::raw as runtime;
use edgetune::backbone::SessionOptions;
use edgetune::onnx::{import, quantize};

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

fn model_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hf = root.join(".models/minilm-hf");
    assert!(
        hf.join("model.safetensors").is_file(),
        "{} missing: run ./setup.sh test",
        hf.display()
    );
    let dir = root.join("target/edgetune-bench/minilm");
    if !dir.join(import::BACKBONE_FILE).is_file() {
        import::import(&import::ImportOptions::new(&hf, &dir)).unwrap();
    }
    if !dir.join(import::INT8_FILE).is_file() {
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
            force: true,
            plots: None,
        };
        quantize::quantize_dir(&opts).unwrap();
    }
    dir
}

fn bench(c: &mut Criterion) {
    let dir = model_dir();
    let tok = runtime::load_tokenizer(&dir.join(import::TOKENIZER_FILE)).unwrap();
    let texts: Vec<&str> = SENTENCES.iter().cycle().take(32).copied().collect();
    let batch = runtime::EncoderBatch::tokenize(&tok, &texts, 128).unwrap();
    let opts = SessionOptions::with_threads(2);
    let mut g = c.benchmark_group("minilm_batch32_2threads");
    for file in [import::BACKBONE_FILE, import::INT8_FILE] {
        let mut s = runtime::open_file(&dir.join(file), &opts).unwrap();
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
