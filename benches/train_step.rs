//! One training step of the heads on a SNIPS-sized batch (64 sentences of up to 10 words, 4 cached
//! states of 384, 7 intents, 72 tags, default head sizes), and the token head's bidirectional GRU
//! alone: the fused op (`nn::bigru`) against the same GRU built from candle primitives
//! (`GruDir::forward`). Run: `cargo bench --bench train_step` (threads: `RAYON_NUM_THREADS`).

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use edgetune::data::TaskKind;
use edgetune::model::{
    Batch, Head, HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TaskModel,
    TokenHeadConfig,
};
use edgetune::nn::{bigru, gather_positions, reverse_indices};
use rand::SeedableRng;

const B: usize = 64;
const W: usize = 10;

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn lengths() -> Vec<usize> {
    (0..B).map(|i| 4 + i % (W - 3)).collect()
}

fn bench(c: &mut Criterion) {
    eprintln!(
        "cpu: {}, {} rayon threads",
        cpu_model(),
        rayon::current_num_threads()
    );
    let dev = Device::Cpu;
    let heads = TaskModel::new(
        ModelConfig {
            backbone_width: 384,
            mixed_states: 4,
            tasks: vec![
                TaskConfig {
                    name: "intent".into(),
                    kind: TaskKind::Sentence,
                    labels: (0..7).map(|i| format!("i{i}")).collect(),
                    head: HeadConfig::Sentence(SentenceHeadConfig::default()),
                },
                TaskConfig {
                    name: "tags".into(),
                    kind: TaskKind::Tokens,
                    labels: (0..72).map(|i| format!("t{i}")).collect(),
                    head: HeadConfig::Token(TokenHeadConfig::default()),
                },
            ],
        },
        1,
        &dev,
    )
    .unwrap();
    let words = Tensor::randn(0f32, 1.0, (B, W, 4, 384), &dev).unwrap();
    let mask: Vec<f32> = lengths()
        .iter()
        .flat_map(|&l| (0..W).map(move |p| if p < l { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (B, W), &dev).unwrap();
    let pooled = Tensor::randn(0f32, 1.0, (B, 384), &dev).unwrap();
    let intent_t =
        Tensor::from_vec((0..B as u32).map(|i| i % 7).collect::<Vec<_>>(), B, &dev).unwrap();
    let slot_t = Tensor::from_vec(
        (0..(B * W) as u32).map(|i| i % 72).collect::<Vec<_>>(),
        B * W,
        &dev,
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let Head::Token(sh) = &heads.heads[1] else {
        unreachable!("task 1 is a token task")
    };
    let batch = Batch {
        words: words.clone(),
        mask: mask.clone(),
        pooled,
        width: W,
    };

    c.bench_function("train_step/joint (forward + backward, both heads)", |bch| {
        bch.iter(|| {
            let mut out = heads
                .forward(&batch, &[true, true], Some(&mut rng))
                .unwrap();
            let (li, ls) = (out.logits[0].take().unwrap(), out.logits[1].take().unwrap());
            let loss = (candle_nn::loss::cross_entropy(&li, &intent_t).unwrap()
                + candle_nn::loss::cross_entropy(&ls.reshape((B * W, 72)).unwrap(), &slot_t)
                    .unwrap())
            .unwrap();
            loss.backward().unwrap()
        })
    });

    let x = Tensor::randn(0f32, 1.0, (B, W, 128), &dev).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (B, W, 256), &dev).unwrap();
    let m3 = mask.unsqueeze(2).unwrap();
    c.bench_function("bigru/fused (forward + backward)", |bch| {
        bch.iter(|| {
            let h = bigru(&sh.fwd, &sh.bwd, &x, lengths(), true).unwrap();
            h.mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    let rev = reverse_indices(&lengths(), W, &dev).unwrap();
    c.bench_function("bigru/candle primitives (forward + backward)", |bch| {
        bch.iter(|| {
            let f = sh.fwd.forward(&x).unwrap();
            let r = gather_positions(
                &sh.bwd
                    .forward(&gather_positions(&x, &rev).unwrap())
                    .unwrap(),
                &rev,
            )
            .unwrap();
            let h = Tensor::cat(&[f, r], 2).unwrap().broadcast_mul(&m3).unwrap();
            h.mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
