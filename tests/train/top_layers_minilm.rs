//! The trainable top layers on the real MiniLM checkpoint:
//!
//! - parity: fed hidden state `first` of the fp32 ONNX import (run by ONNX Runtime), they reproduce
//!   its `last_hidden_state` on a padded batch of real sentences (max |diff| <= 1e-4 on real tokens);
//! - gradients: every parameter of every loaded layer receives a non-zero gradient, and heads over
//!   the top two layers train together, a frozen head staying byte-identical (the same checks as
//!   `top_layers.rs` on the tiny checkpoint);
//! - a first layer out of range is an error naming the layer count.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use common::layers;
use edgetune::backbone::layers::TopLayers;
use edgetune::backbone::raw as runtime;
use edgetune::backbone::SessionOptions;
use edgetune::hf::{BertConfig, Weights};
use edgetune::nn::{Group, ParamBuilder, ParamSet};
use edgetune::onnx::import;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Acceptance tolerance of the parity with ONNX Runtime.
const TOLERANCE: f32 = 1e-4;

/// The Hugging Face MiniLM checkpoint that set-up downloads.
fn minilm() -> PathBuf {
    common::require_setup();
    common::root().join(".models/minilm-hf")
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
    let mut s = runtime::open_file(&r.backbone, &SessionOptions::with_threads(2)).unwrap();
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
        let (ps, top, cfg) = layers::load(&hf, first);
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

#[test]
fn every_parameter_of_every_loaded_layer_gets_a_gradient() {
    layers::every_parameter_gets_a_gradient(&minilm(), 4);
}

/// Heads reading states [3, 4, 5, 6] over the top two MiniLM layers (first = 4: states 3 and 4
/// come from the cache, 5 and 6 from the layers).
#[test]
fn heads_and_top_layers_train_together_and_a_frozen_head_stays_byte_identical() {
    let hf = minilm();
    let model = layers::unfrozen_model(&hf, vec![3, 4, 5, 6], 4);
    assert_eq!(model.top.as_ref().unwrap().cached, vec![3, 4]);
    layers::every_tensor_of_heads_and_layers_gets_a_gradient(&model, 2);
    let model = layers::unfrozen_model(&hf, vec![3, 4, 5, 6], 4);
    layers::frozen_head_stays_byte_identical(&model, "encoder.layer.5.output.dense.weight");
}

#[test]
fn out_of_range_first_layer_is_an_error() {
    let hf = minilm();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let mut ps = ParamSet::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut vb =
        ParamBuilder::new(&mut ps, &mut rng, Group::Layer(0), &Device::Cpu).with_source(&w);
    let e = TopLayers::load(&mut vb, &cfg, 7).unwrap_err();
    assert!(e.to_string().contains("6 layers"), "{e}");
    let top = TopLayers::load(&mut vb, &cfg, 6).unwrap();
    assert!(top.layers.is_empty());
    drop(vb);
    assert!(ps.params.is_empty());
}
