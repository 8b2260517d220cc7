//! MPNet without ONNX Runtime, on a tiny 3-layer checkpoint the test writes
//! (`tiny_checkpoints`): the trainable layers (`TopLayers` with the shared relative position
//! bias) against the independent candle reference, gradients of every trainable tensor (a
//! finite-difference check of the relative position bias), heads over MPNet layers, the bucket
//! function against Hugging Face's values, and the imported and spliced graphs' structure. The
//! graphs run in ONNX Runtime in `mpnet_import_ort.rs`; the real all-mpnet-base-v2 in
//! `mpnet_big.rs`.

use crate::support as common;
use crate::support::tiny_checkpoints;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::layers::{inputs, loss};
use edgetune::backbone::layers::TopLayers;
use edgetune::hf::{relative_position_bucket, BertConfig, Weights, RELATIVE_BIAS};
use edgetune::nn::{Group, ParamBuilder, ParamSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tiny_checkpoints::Shape;

fn tiny() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    tiny_checkpoints::write_checkpoint(&hf, Shape::MPNet, 3, 0, 5);
    (tmp, hf)
}

fn load(hf: &Path, first: usize) -> (ParamSet, TopLayers, BertConfig) {
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let mut ps = ParamSet::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let top = {
        let mut vb =
            ParamBuilder::new(&mut ps, &mut rng, Group::Layer(first), &Device::Cpu).with_source(&w);
        TopLayers::load(&mut vb, &cfg, first).unwrap()
    };
    (ps, top, cfg)
}

/// Token ids of two sentences (the second padded with `<pad>` = 1) and their mask.
fn batch() -> (Tensor, Tensor) {
    let ids: Vec<i64> = vec![0, 4, 5, 6, 7, 8, 2, 0, 9, 10, 2, 1, 1, 1];
    let mask: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &x)| i64::from(i < 7 || x != 1))
        .collect();
    (
        Tensor::from_vec(ids, (2, 7), &Device::Cpu).unwrap(),
        Tensor::from_vec(mask, (2, 7), &Device::Cpu).unwrap(),
    )
}

/// The reference's hidden states `0..=3` of [`batch`].
fn reference_states(hf: &Path, cfg: &BertConfig) -> Vec<Tensor> {
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[hf.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let (ids, mask) = batch();
    edgetune::onnx::import::reference::mpnet_hidden_states(cfg, vb, &ids, &mask).unwrap()
}

/// The trainable layers compute what the reference computes, from any first layer, padding
/// included (rows of real tokens compared).
#[test]
fn trainable_layers_match_the_candle_reference() {
    let (_tmp, hf) = tiny();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let states = reference_states(&hf, &cfg);
    assert_eq!(states.len(), 4);
    let (_, mask) = batch();
    let maskf = mask.to_dtype(DType::F32).unwrap();
    for first in 0..3 {
        let (_, top, _) = load(&hf, first);
        assert!(top.position.is_some());
        let out = top.forward(&states[first], &maskf, None).unwrap();
        let real = maskf.unsqueeze(2).unwrap();
        let d = common::tensor_max_abs_diff(
            &out.broadcast_mul(&real).unwrap(),
            &states[3].broadcast_mul(&real).unwrap(),
        );
        assert!(d < 1e-5, "from layer {first}: max |diff| {d:.3e}");
    }
}

/// Every tensor of every loaded layer, and the shared relative position bias, gets a gradient;
/// the key bias's is zero in exact arithmetic (a constant per query row under the softmax) and
/// only has to be negligible. Padded input positions get none.
#[test]
fn every_tensor_of_the_mpnet_layers_gets_a_gradient() {
    let (_tmp, hf) = tiny();
    for first in [0, 1] {
        let (ps, top, cfg) = load(&hf, first);
        let (x, mask, r) = inputs(cfg.hidden_size);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let out = top
            .forward(x.as_tensor(), &mask, Some((0.1, &mut rng)))
            .unwrap();
        let grads = loss(&out, &mask, &r).backward().unwrap();
        assert_eq!(ps.params.len(), 16 * (3 - first) + 1);
        let by_name = ps.by_name();
        for p in &ps.params {
            let g = grads
                .get(p.var.as_tensor())
                .unwrap_or_else(|| panic!("`{}` received no gradient", p.name));
            let n = common::layers::norm(g);
            assert!(n.is_finite(), "`{}`: {n}", p.name);
            if p.name.ends_with("attention.attn.k.bias") {
                let q = by_name[p.name.replace(".k.", ".q.").as_str()]
                    .var
                    .as_tensor();
                let qn = common::layers::norm(grads.get(q).unwrap());
                assert!(
                    n <= 1e-3 * qn,
                    "`{}`: {n:.3e} vs query bias {qn:.3e}",
                    p.name
                );
            } else {
                assert!(n > 0.0, "`{}`: all-zero gradient", p.name);
            }
        }
        assert_eq!(ps.params[0].name, RELATIVE_BIAS);
        assert_eq!(ps.params[0].group, Group::Layer(first));
        let gx = grads.get(x.as_tensor()).unwrap();
        let pad = gx.narrow(0, 1, 1).unwrap().narrow(1, 4, 3).unwrap();
        assert_eq!(common::layers::norm(&pad), 0.0, "padding got a gradient");
    }
}

/// The relative position bias's gradient against central differences of the loss, for the
/// buckets 7 tokens use (distances -6..6) and one they do not (gradient exactly zero).
#[test]
fn relative_position_bias_gradient_matches_finite_differences() {
    let (_tmp, hf) = tiny();
    let (ps, top, cfg) = load(&hf, 1);
    let (x, mask, r) = inputs(cfg.hidden_size);
    let x = x.as_tensor().detach();
    let value = |top: &TopLayers| -> f64 {
        let out = top.forward(&x, &mask, None).unwrap();
        f64::from(loss(&out, &mask, &r).to_scalar::<f32>().unwrap())
    };
    let table = &ps.params[0];
    let grads = loss(&top.forward(&x, &mask, None).unwrap(), &mask, &r)
        .backward()
        .unwrap();
    let g: Vec<Vec<f32>> = grads.get(table.var.as_tensor()).unwrap().to_vec2().unwrap();
    let base: Vec<Vec<f32>> = table.var.as_tensor().to_vec2().unwrap();
    let eps = 1e-2f32;
    let mut checked = 0;
    for rel in [-6i64, -1, 0, 1, 3, 6] {
        let bucket = relative_position_bucket(rel, 32, 128);
        for head in 0..cfg.num_attention_heads {
            let at = |delta: f32| {
                let mut t = base.clone();
                t[bucket][head] += delta;
                table
                    .var
                    .set(&Tensor::new(t, &Device::Cpu).unwrap())
                    .unwrap();
                value(&top)
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            let analytic = f64::from(g[bucket][head]);
            let tol = 2e-2 * numeric.abs().max(analytic.abs()).max(1.0);
            assert!(
                (numeric - analytic).abs() <= tol,
                "bucket {bucket} (distance {rel}), head {head}: numeric {numeric:.5}, autograd {analytic:.5}"
            );
            checked += 1;
        }
    }
    table
        .var
        .set(&Tensor::new(base, &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(checked, 24);
    let unused = relative_position_bucket(-100, 32, 128);
    assert!(
        g[unused].iter().all(|&v| v == 0.0),
        "bucket {unused} is not used by 7 tokens"
    );
}

/// Heads over MPNet's top two layers: every tensor of the heads, the layers and the shared
/// bias gets a gradient through the token-to-word pooling.
#[test]
fn heads_over_mpnet_layers_train_every_tensor() {
    let (_tmp, hf) = tiny();
    let model = common::layers::unfrozen_model(&hf, vec![1, 2, 3], 1);
    let layer_params = model
        .params
        .params
        .iter()
        .filter(|p| matches!(p.group, Group::Layer(_)))
        .count();
    assert_eq!(layer_params, 2 * 16 + 1);
    let grads = common::layers::unfrozen_loss(&model, true)
        .backward()
        .unwrap();
    for p in &model.params.params {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("`{}` received no gradient", p.name));
        let n = common::layers::norm(g);
        let softmax_invariant = p.name == "intent.attn.bias" || p.name.ends_with("attn.k.bias");
        assert!(
            n.is_finite() && (softmax_invariant || n > 0.0),
            "`{}`: {n}",
            p.name
        );
    }
}

/// Hugging Face's buckets (`tests/mpnet_reference.py` prints them from its float32 NumPy
/// transcription): exact up to distance 7 each way, logarithmic to 128, then the last bucket.
#[test]
fn relative_buckets_match_hugging_face() {
    let hf: Vec<(i64, usize)> = vec![
        (0, 0),
        (1, 17),
        (-1, 1),
        (7, 23),
        (-7, 7),
        (8, 24),
        (-8, 8),
        (11, 24),
        (12, 25),
        (16, 26),
        (-16, 10),
        (31, 27),
        (32, 28),
        (63, 29),
        (64, 30),
        (127, 31),
        (128, 31),
        (-128, 15),
        (-500, 15),
        (500, 31),
    ];
    for (rel, bucket) in hf {
        assert_eq!(
            relative_position_bucket(rel, 32, 128),
            bucket,
            "distance {rel}"
        );
    }
}

/// The imported graph: no token types, RoBERTa positions (`CumSum`), the bias computed once
/// (`Range`) from the shared table, 6 weight MatMuls per layer for the quantizer; and the export's
/// rebuilt top layers carry their own copy of the (fine-tuned) table.
#[test]
fn mpnet_graph_and_spliced_top_layers() {
    use edgetune::graph;
    use edgetune::onnx::export::{build_top_layers, splice_top_layers};
    use edgetune::onnx::import::{import, ImportOptions};
    let (tmp, hf) = tiny();
    let mut opts = ImportOptions::new(&hf, tmp.path().join("m"));
    opts.verify = false;
    let r = import(&opts).unwrap();
    let m = graph::load_model(&r.backbone).unwrap();
    let g = m.graph.as_ref().unwrap();
    let names: Vec<&str> = g.input.iter().filter_map(|i| i.name.as_deref()).collect();
    assert_eq!(names, ["input_ids", "attention_mask"]);
    let count = |g: &graph::proto::GraphProto, op: &str| {
        g.node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some(op))
            .count()
    };
    assert_eq!((count(g, "Range"), count(g, "CumSum")), (1, 1));
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name.as_deref() == Some(RELATIVE_BIAS)));
    let mut q = m.clone();
    let s = edgetune::onnx::quantize::quantize_model(&mut q, &Default::default()).unwrap();
    assert_eq!(s.quantized.len(), 18);

    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let top = build_top_layers(&cfg, &w, 1).unwrap();
    let spliced = splice_top_layers(m, &top, 1).unwrap();
    let sg = spliced.graph.as_ref().unwrap();
    assert_eq!(graph::count_layers(&spliced).unwrap(), 3);
    let tables: Vec<&str> = sg
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .filter(|n| n.ends_with(RELATIVE_BIAS))
        .collect();
    assert_eq!(tables.len(), 2, "{tables:?}");
    assert_eq!(count(sg, "Range"), 2);
}

/// `--unfreeze-top` on a backbone imported with `--layers K`: the checkpoint's config is cut to
/// the backbone's layers, and only the unfrozen layers and the shared bias are read.
#[test]
fn layers_of_a_cut_backbone_load_from_the_whole_checkpoint() {
    let (_tmp, hf) = tiny();
    let settings = edgetune::train::TrainSettings {
        hf_weights: Some(hf.clone()),
        unfreeze_top: 1,
        ..Default::default()
    };
    let (cfg, w, _) = edgetune::train::init::load_hf(&settings, 2, 32).unwrap();
    assert_eq!(cfg.num_hidden_layers, 2);
    assert!(w.get(RELATIVE_BIAS, &[32, 4]).is_ok());
    assert!(w
        .get("encoder.layer.1.attention.attn.q.weight", &[32, 32])
        .is_ok());
    assert!(w
        .get("encoder.layer.2.attention.attn.q.weight", &[32, 32])
        .is_err());
    assert!(w
        .get("encoder.layer.0.attention.attn.q.weight", &[32, 32])
        .is_err());
    // More layers than the checkpoint has is still an error.
    let e = match edgetune::train::init::load_hf(&settings, 4, 32) {
        Ok(_) => panic!("a 3-layer checkpoint loaded for a 4-layer backbone"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("3 layers"), "{e}");
}

/// MPNet's tokenizer shape (WordPiece, lower-casing, `RobertaProcessing`): `<s>` and `</s>`
/// around the words and belonging to none, `<pad>` (id 1, the id RoBERTa-style positions skip)
/// for padding.
#[test]
fn mpnet_tokenizer_wraps_words_in_s_and_pads_with_id_1() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    let vocab = tiny_checkpoints::write_mpnet_tokenizer(&path);
    let tok = edgetune::tokenize::WordTokenizer::from_file(&path, None).unwrap();
    assert_eq!(tok.pad_id(), 1);
    let words: Vec<String> = ["Play", "some", "jazz"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = tok.encode_words(&words, &|| "t".into()).unwrap();
    let pieces: Vec<&str> = t.ids.iter().map(|&i| vocab[i as usize].as_str()).collect();
    assert_eq!(pieces, ["<s>", "play", "some", "jazz", "</s>"]);
    assert_eq!(t.word_tokens, vec![(1, 2), (2, 3), (3, 4)]);
    assert!(t.type_ids.iter().all(|&x| x == 0));
}
