//! The trainable top layers (`edgetune::backbone::layers::TopLayers`) on the real MiniLM checkpoint:
//!
//! - parity: fed hidden state `first` of the fp32 ONNX import (run by ONNX Runtime), they reproduce
//!   its `last_hidden_state` on a padded batch of real sentences (max |diff| <= 1e-4 on real tokens);
//! - gradients: every parameter of every loaded layer receives a non-zero gradient (candle's fused
//!   layer norm / softmax kernels have no backward pass; a layer built on them would silently stop
//!   training below them), and a layer cut off by a detach receives none.

mod common;

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use edgetune::backbone::layers::TopLayers;
use edgetune::heads::{Group, ParamSet};
use edgetune::onnx::import::{self, BertConfig, Weights};
use edgetune::onnx::runtime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Acceptance tolerance of the parity with ONNX Runtime.
const TOLERANCE: f32 = 1e-4;

/// The Hugging Face MiniLM checkpoint that set-up downloads.
fn minilm() -> PathBuf {
    let p = common::root().join(".models/minilm-hf");
    assert!(
        p.join("model.safetensors").is_file() && p.join("config.json").is_file(),
        "{} missing: run ./setup.sh test (or models/setup.sh)",
        p.display()
    );
    p
}

fn load(first: usize) -> (ParamSet, TopLayers, BertConfig) {
    let hf = minilm();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let mut ps = ParamSet::default();
    let top = TopLayers::load(&mut ps, &w, &cfg, first, &Device::Cpu).unwrap();
    (ps, top, cfg)
}

fn tensor3(o: &runtime::FloatOutput) -> Tensor {
    Tensor::from_vec(o.data.clone(), o.shape.as_slice(), &Device::Cpu).unwrap()
}

#[test]
fn parity_with_the_fp32_onnx_backbone() {
    let hf = minilm();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = import::ImportOptions::new(&hf, tmp.path());
    opts.hidden_states = Some(vec![0, 4]);
    opts.verify = false; // other tests cover the import itself
    let r = import::import(&opts).unwrap();
    let mut s = runtime::open_session(
        &r.backbone,
        &runtime::SessionOptions {
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let tok = runtime::load_tokenizer(&tmp.path().join(import::TOKENIZER_FILE)).unwrap();
    let batch = runtime::EncoderBatch::tokenize(&tok, import::VERIFY_SENTENCES, 128).unwrap();
    let lengths: Vec<i64> = batch
        .attention_mask
        .chunks(batch.seq)
        .map(|r| r.iter().sum())
        .collect();
    assert!(
        lengths.iter().any(|&n| n < batch.seq as i64),
        "the batch must contain padding: {lengths:?}"
    );
    let o = runtime::run_encoder(
        &mut s,
        &batch,
        &["hidden_state_0", "hidden_state_4", "last_hidden_state"],
    )
    .unwrap();
    let last = &o[2];
    let h = last.shape[2];
    let mask: Vec<f32> = batch.attention_mask.iter().map(|&m| m as f32).collect();
    let mask = Tensor::from_vec(mask, (batch.batch, batch.seq), &Device::Cpu).unwrap();

    for (first, input) in [(4usize, &o[1]), (0, &o[0])] {
        let (ps, top, cfg) = load(first);
        assert_eq!(top.layers.len(), cfg.num_hidden_layers - first);
        assert_eq!(ps.params.len(), 16 * top.layers.len());
        let out = top.forward(&tensor3(input), &mask, None).unwrap();
        assert_eq!(out.dims(), last.shape.as_slice());
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let d = runtime::max_abs_diff_masked(&out, &last.data, &batch.attention_mask, h);
        eprintln!(
            "TopLayers first={first} ({} layers) vs ONNX Runtime, {} sentences of {lengths:?} tokens: max |diff| {d:.3e}",
            top.layers.len(),
            batch.batch
        );
        assert!(
            d <= TOLERANCE,
            "first={first}: max |diff| {d:.3e} > {TOLERANCE:.0e}"
        );
    }
}

/// A seeded `[2, 7, H]` input (second row: 3 padding positions), its mask, and a fixed random
/// projection for the loss.
fn inputs(h: usize) -> (Var, Tensor, Tensor) {
    let (b, t) = (2, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut randn = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect::<Vec<_>>()
    };
    let x = Var::from_tensor(&Tensor::from_vec(randn(b * t * h), (b, t, h), &Device::Cpu).unwrap())
        .unwrap();
    let r = Tensor::from_vec(randn(b * t * h), (b, t, h), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(
        vec![1f32, 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 0.],
        (b, t),
        &Device::Cpu,
    )
    .unwrap();
    (x, mask, r)
}

/// Sum of squares of a random projection of the output over real tokens.
fn loss(out: &Tensor, mask: &Tensor, r: &Tensor) -> Tensor {
    out.broadcast_mul(&mask.unsqueeze(2).unwrap())
        .unwrap()
        .mul(r)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
}

fn norm(g: &Tensor) -> f32 {
    g.sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Checks the gradients: parameters of layers in `trained` have a non-zero one, others none.
///
/// Exception: the key bias. Adding `q . b_k` to every score of a query row does not change the
/// softmax, so its gradient is exactly zero in exact arithmetic (rounding noise in floats); it must
/// exist and be negligible next to the query bias's.
fn assert_grads(ps: &ParamSet, grads: &candle_core::backprop::GradStore, trained: &[usize]) {
    let mut checked = 0;
    for p in &ps.params {
        let Group::Layer(i) = p.group else {
            panic!("`{}` is not in a layer group", p.name)
        };
        assert!(
            p.name.starts_with(&format!("encoder.layer.{i}.")),
            "`{}` in group Layer({i})",
            p.name
        );
        let g = grads.get(p.var.as_tensor());
        if !trained.contains(&i) {
            assert!(
                g.is_none(),
                "frozen tensor `{}` received a gradient",
                p.name
            );
            continue;
        }
        let g = g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
        let n = norm(g);
        assert!(n.is_finite(), "tensor `{}`: gradient norm {n}", p.name);
        if p.name.ends_with("attention.self.key.bias") {
            let q = ps
                .by_name()
                .get(p.name.replace(".key.", ".query.").as_str())
                .and_then(|q| grads.get(q.var.as_tensor()))
                .map(norm)
                .expect("query bias gradient");
            assert!(
                n <= 1e-3 * q,
                "key bias `{}`: gradient norm {n:.3e} should be ~0 (query bias {q:.3e})",
                p.name
            );
        } else {
            assert!(
                n > 0.0,
                "trainable tensor `{}` received an all-zero gradient",
                p.name
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 16 * trained.len(), "tensors checked");
}

#[test]
fn every_parameter_of_every_loaded_layer_gets_a_gradient() {
    let (ps, top, cfg) = load(4);
    assert_eq!(top.first, 4);
    let (x, mask, r) = inputs(cfg.hidden_size);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let out = top
        .forward(x.as_tensor(), &mask, Some((0.1, &mut rng)))
        .unwrap();
    let grads = loss(&out, &mask, &r).backward().unwrap();
    assert_grads(&ps, &grads, &[4, 5]);
    // Gradients pass through the lowest layer's layer norms down to its input (no fused kernel
    // stops them).
    let by_name = ps.by_name();
    for name in [
        "encoder.layer.4.attention.output.LayerNorm.weight",
        "encoder.layer.4.output.LayerNorm.weight",
    ] {
        let g = grads
            .get(by_name[name].var.as_tensor())
            .unwrap_or_else(|| panic!("`{name}` received no gradient"));
        assert!(norm(g) > 0.0, "`{name}`: zero gradient");
    }
    let gx = grads
        .get(x.as_tensor())
        .expect("the input receives a gradient");
    assert!(norm(gx) > 0.0, "zero gradient at the input");
    // Padding positions of the output do not enter the loss, and padded keys get zero attention:
    // the padded input positions receive no gradient.
    let pad = gx.narrow(0, 1, 1).unwrap().narrow(1, 4, 3).unwrap();
    assert_eq!(norm(&pad), 0.0, "padding positions received a gradient");
}

#[test]
fn a_layer_below_a_detach_gets_no_gradient() {
    let (ps, top, cfg) = load(3);
    assert_eq!(
        top.layers.iter().map(|l| l.index).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    let (x, mask, r) = inputs(cfg.hidden_size);
    let bias = TopLayers::attention_bias(&mask).unwrap();
    // Layer 3 runs but is frozen: its output is detached before layers 4 and 5.
    let mut h = top.layers[0]
        .forward(x.as_tensor(), &bias, None)
        .unwrap()
        .detach();
    for l in &top.layers[1..] {
        h = l.forward(&h, &bias, None).unwrap();
    }
    let grads = loss(&h, &mask, &r).backward().unwrap();
    assert_grads(&ps, &grads, &[4, 5]);
    assert!(grads.get(x.as_tensor()).is_none(), "input below the detach");
}

#[test]
fn dropout_is_seeded_and_off_without_rng() {
    let (_, top, cfg) = load(5);
    let (x, mask, _) = inputs(cfg.hidden_size);
    let x = x.as_tensor();
    let run = |seed: Option<u64>| -> Vec<f32> {
        let mut rng = seed.map(ChaCha8Rng::seed_from_u64);
        top.forward(x, &mask, rng.as_mut().map(|r| (0.1, r)))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(run(None), run(None));
    assert_eq!(run(Some(1)), run(Some(1)));
    assert_ne!(run(Some(1)), run(Some(2)));
    assert_ne!(run(None), run(Some(1)));
}

#[test]
fn out_of_range_first_layer_is_an_error() {
    let hf = minilm();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let mut ps = ParamSet::default();
    let e = TopLayers::load(&mut ps, &w, &cfg, 7, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("6 layers"), "{e}");
    assert!(ps.params.is_empty());
    // first == L: nothing to train, the identity.
    let top = TopLayers::load(&mut ps, &w, &cfg, 6, &Device::Cpu).unwrap();
    assert!(top.layers.is_empty() && ps.params.is_empty());
}
