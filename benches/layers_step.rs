//! One training step (forward + backward) of the unfrozen top layers (`--unfreeze-top 2`) of the
//! MiniLM checkpoint on a SNIPS-sized batch (32 sentences padded to 16 tokens, lengths 6..16), with
//! dropout: the layers as built (fused attention core and GELU) against the same layers with the
//! former formulation from candle primitives (`attention_reference`, candle's `gelu_erf`), and the
//! attention core and GELU alone. Needs `.models/minilm-hf` (`./setup.sh test`).
//! Run: `cargo bench --bench layers_step` (threads: `RAYON_NUM_THREADS`; steps: `STEPS`).

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use edgetune::backbone::layers::{BertLayer, TopLayers};
use edgetune::hf::{BertConfig, Weights};
use edgetune::nn::kernels::attention::{attention, attention_reference};
use edgetune::nn::kernels::gelu::gelu_erf;
use edgetune::nn::{dropout, Group, ParamBuilder, ParamSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const B: usize = 32;
const T: usize = 16;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One layer with the former primitive attention core and candle's GELU.
fn reference_layer(l: &BertLayer, x: &Tensor, bias: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
    let a = &l.attention;
    let (q, k, v) = (
        a.query.forward(x).unwrap(),
        a.key.forward(x).unwrap(),
        a.value.forward(x).unwrap(),
    );
    let ctx = attention_reference(&q, &k, &v, bias, a.heads).unwrap();
    let out = dropout(&a.output.forward(&ctx).unwrap(), 0.1, Some(rng)).unwrap();
    let x = a.layer_norm.forward(&(out + x).unwrap()).unwrap();
    let f = &l.ffn;
    let i = f.intermediate.forward(&x).unwrap().gelu_erf().unwrap();
    let out = dropout(&f.output.forward(&i).unwrap(), 0.1, Some(rng)).unwrap();
    f.layer_norm.forward(&(out + x).unwrap()).unwrap()
}

/// Median forward and backward milliseconds of `steps` runs (after 3 warm-up runs) of `f`, and the
/// loss of the first run.
fn time(steps: usize, mut f: impl FnMut() -> Tensor) -> (f64, f64, f32) {
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    let mut loss0 = 0f32;
    for step in 0..steps + 3 {
        let t0 = Instant::now();
        let loss = f();
        let t1 = Instant::now();
        let _g = loss.backward().unwrap();
        let t2 = Instant::now();
        if step == 0 {
            loss0 = loss.to_scalar::<f32>().unwrap();
        }
        if step >= 3 {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
        }
    }
    (median(&mut fwd), median(&mut bwd), loss0)
}

fn report(name: &str, (f, b, loss): (f64, f64, f32)) {
    eprintln!(
        "{name:<40} forward {f:7.2} ms  backward {b:7.2} ms  total {:7.2} ms  (first loss {loss:.6})",
        f + b
    );
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/minilm-hf");
    let cfg = BertConfig::load(&root.join("config.json")).expect("MiniLM config (./setup.sh test)");
    let w = Weights::load(&root.join("model.safetensors")).expect("MiniLM weights");
    let dev = Device::Cpu;
    let mut ps = ParamSet::default();
    let mut init = ChaCha8Rng::seed_from_u64(0);
    let first = cfg.num_hidden_layers - 2;
    let top = {
        let mut vb =
            ParamBuilder::new(&mut ps, &mut init, Group::Layer(first), &dev).with_source(&w);
        TopLayers::load(&mut vb, &cfg, first).unwrap()
    };
    let h = cfg.hidden_size;
    let steps: usize = std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    eprintln!(
        "{} rayon threads, batch {B} x {T}, hidden {h}, {} layers, {steps} steps",
        rayon::current_num_threads(),
        top.layers.len()
    );

    let x = Tensor::randn(0f32, 1.0, (B, T, h), &dev).unwrap();
    let mask: Vec<f32> = (0..B)
        .flat_map(|i| {
            let len = 6 + i % (T - 5);
            (0..T).map(move |p| if p < len { 1.0 } else { 0.0 })
        })
        .collect();
    let mask = Tensor::from_vec(mask, (B, T), &dev).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (B, T, h), &dev).unwrap();

    let bias = TopLayers::attention_bias(&mask).unwrap();
    let loss_of = |y: &Tensor| y.mul(&weights).unwrap().sum_all().unwrap();
    for round in 0..2 {
        eprintln!("round {round}");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        report(
            "top layers (fused)",
            time(steps, || {
                let y = top.forward(&x, &mask, Some((0.1, &mut rng))).unwrap();
                loss_of(&y)
            }),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        report(
            "top layers (primitive reference)",
            time(steps, || {
                let mut y = x.clone();
                for l in &top.layers {
                    y = reference_layer(l, &y, &bias, &mut rng);
                }
                loss_of(&y)
            }),
        );
    }
    let heads = top.layers[0].attention.heads;
    let qkv: Vec<Var> = (0..3)
        .map(|_| Var::from_tensor(&Tensor::randn(0f32, 1.0, (B, T, h), &dev).unwrap()).unwrap())
        .collect();
    let [q, k, v] = [0, 1, 2].map(|i| qkv[i].as_tensor().clone());
    report(
        "attention core (fused)",
        time(steps, || {
            loss_of(&attention(&q, &k, &v, &bias, heads).unwrap())
        }),
    );
    report(
        "attention core (primitive reference)",
        time(steps, || {
            loss_of(&attention_reference(&q, &k, &v, &bias, heads).unwrap())
        }),
    );
    let inter = cfg.intermediate_size;
    let gx = Var::from_tensor(&Tensor::randn(0f32, 1.0, (B, T, inter), &dev).unwrap()).unwrap();
    let gw = Tensor::randn(0f32, 1.0, (B, T, inter), &dev).unwrap();
    report(
        "gelu (fused)",
        time(steps, || {
            gelu_erf(gx.as_tensor())
                .unwrap()
                .mul(&gw)
                .unwrap()
                .sum_all()
                .unwrap()
        }),
    );
    report(
        "gelu (candle gelu_erf)",
        time(steps, || {
            gx.as_tensor()
                .gelu_erf()
                .unwrap()
                .mul(&gw)
                .unwrap()
                .sum_all()
                .unwrap()
        }),
    );
}
