//! The trainable top layers (`edgetune::backbone::layers::TopLayers`) and the heads over them
//! (`--unfreeze-top`), on a tiny 3-layer BERT checkpoint the test writes (the real MiniLM's
//! checks, and the parity with ONNX Runtime, are in `top_layers_minilm.rs` under `real-model`):
//!
//! - gradients: every parameter of every loaded layer receives a non-zero gradient (candle's fused
//!   layer norm / softmax kernels have no backward pass; a layer built on them would silently stop
//!   training below them), and a layer cut off by a detach receives none;
//! - heads over the layers: every trainable tensor gets a gradient through the token-to-word
//!   pooling; a frozen head none, and an optimizer step leaves it byte-identical;
//! - seeded dropout, and a first layer out of range is an error.

use crate::support as common;

use std::path::PathBuf;

use candle_core::Device;
use common::layers;
use edgetune::backbone::layers::TopLayers;
use edgetune::hf::{BertConfig, Weights};
use edgetune::nn::{Group, ParamBuilder, ParamSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A tiny 3-layer checkpoint in a temporary folder (kept alive by the returned guard).
fn tiny() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    common::write_tiny_bert(&hf, 3, true, 5);
    (tmp, hf)
}

#[test]
fn every_parameter_of_every_loaded_layer_gets_a_gradient() {
    let (_tmp, hf) = tiny();
    layers::every_parameter_gets_a_gradient(&hf, 1);
    layers::every_parameter_gets_a_gradient(&hf, 0);
}

#[test]
fn a_layer_below_a_detach_gets_no_gradient() {
    let (_tmp, hf) = tiny();
    let (ps, top, cfg) = layers::load(&hf, 0);
    assert_eq!(
        top.layers.iter().map(|l| l.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let (x, mask, r) = layers::inputs(cfg.hidden_size);
    let bias = TopLayers::attention_bias(&mask).unwrap();
    // Layer 0 runs but is frozen: its output is detached before layers 1 and 2.
    let mut h = top.layers[0]
        .forward(x.as_tensor(), &bias, None)
        .unwrap()
        .detach();
    for l in &top.layers[1..] {
        h = l.forward(&h, &bias, None).unwrap();
    }
    let grads = layers::loss(&h, &mask, &r).backward().unwrap();
    layers::assert_grads(&ps, &grads, &[1, 2]);
    assert!(grads.get(x.as_tensor()).is_none(), "input below the detach");
}

#[test]
fn dropout_is_seeded_and_off_without_rng() {
    let (_tmp, hf) = tiny();
    let (_, top, cfg) = layers::load(&hf, 1);
    let (x, mask, _) = layers::inputs(cfg.hidden_size);
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
    let (_tmp, hf) = tiny();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let mut ps = ParamSet::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut vb =
        ParamBuilder::new(&mut ps, &mut rng, Group::Layer(0), &Device::Cpu).with_source(&w);
    let e = TopLayers::load(&mut vb, &cfg, 4).unwrap_err();
    assert!(e.to_string().contains("3 layers"), "{e}");
    // first == L: nothing to train, the identity.
    let top = TopLayers::load(&mut vb, &cfg, 3).unwrap();
    assert!(top.layers.is_empty());
    drop(vb);
    assert!(ps.params.is_empty());
}

/// Heads reading states [1, 2, 3] over the top two layers (first = 1: states 1 comes from the
/// cache, 2 and 3 from the layers).
#[test]
fn every_trainable_tensor_of_heads_and_top_layers_gets_a_gradient() {
    let (_tmp, hf) = tiny();
    let model = layers::unfrozen_model(&hf, vec![1, 2, 3], 1);
    assert_eq!(model.top.as_ref().unwrap().cached, vec![1]);
    layers::every_tensor_of_heads_and_layers_gets_a_gradient(&model, 2);
}

#[test]
fn a_frozen_head_over_unfrozen_layers_stays_byte_identical() {
    let (_tmp, hf) = tiny();
    let model = layers::unfrozen_model(&hf, vec![1, 2, 3], 2);
    assert_eq!(model.top.as_ref().unwrap().cached, vec![1, 2]);
    layers::frozen_head_stays_byte_identical(&model, "encoder.layer.2.output.dense.weight");
}

/// The export's graph surgery for fine-tuned layers, without ONNX Runtime: the layers rebuilt as
/// an ONNX graph from checkpoint weights replace the backbone's own top layers; the states below
/// stay the backbone's, the old layers' nodes and weights are gone, the new hidden states are named
/// in the metadata, and the new layers quantize like the backbone's. A layer count that does not
/// fit is an error.
#[test]
fn splicing_rebuilt_layers_into_the_imported_graph() {
    use edgetune::graph::{self, hidden::hidden_state_tensors};
    use edgetune::onnx::export::{build_top_layers, splice_top_layers};
    use edgetune::onnx::import::{import, ImportOptions};
    use edgetune::onnx::quantize::{quantize_model, QuantizeOptions};
    let (tmp, hf) = tiny();
    let mut opts = ImportOptions::new(&hf, tmp.path().join("m"));
    opts.verify = false;
    let r = import(&opts).unwrap();
    let backbone = graph::load_model(&r.backbone).unwrap();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let top = build_top_layers(&cfg, &w, 1).unwrap();
    assert_eq!(top.graph.as_ref().unwrap().output.len(), 2);

    let spliced = splice_top_layers(backbone.clone(), &top, 1).unwrap();
    assert_eq!(graph::count_layers(&spliced).unwrap(), 3);
    let before = hidden_state_tensors(&backbone).unwrap();
    let after = hidden_state_tensors(&spliced).unwrap();
    assert_eq!(
        before[..=1],
        after[..=1],
        "states up to 1 are the backbone's own"
    );
    assert!(
        after[2].starts_with("top/") && after[3] == "last_hidden_state",
        "{after:?}"
    );
    let g = spliced.graph.as_ref().unwrap();
    for n in &g.node {
        let name = n.name.as_deref().unwrap_or("");
        assert!(
            !(name.starts_with("encoder.layer.1.") || name.starts_with("encoder.layer.2.")),
            "old layer node {name} still in the graph"
        );
    }
    let old_weight = "encoder.layer.2.output.dense.weight";
    assert!(g
        .initializer
        .iter()
        .all(|t| t.name.as_deref() != Some(old_weight)));
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name.as_deref() == Some(&format!("top/{old_weight}"))));

    let mut q = top.clone();
    let summary = quantize_model(&mut q, &QuantizeOptions::default()).unwrap();
    assert_eq!(summary.quantized.len(), 12, "6 weight MatMuls per layer");
    let spliced8 = splice_top_layers(backbone.clone(), &q, 1).unwrap();
    assert_eq!(graph::count_layers(&spliced8).unwrap(), 3);

    // Two layers do not replace layers 0..3.
    let err = splice_top_layers(backbone, &top, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
}
