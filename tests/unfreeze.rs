//! `--unfreeze-top N`: the heads and the top backbone layers train together.
//!
//! - gradients: with the real MiniLM checkpoint's top layers under the heads, every trainable
//!   tensor (heads and layers) receives a non-zero gradient through the token-to-word pooling, and
//!   a frozen head none; an optimizer step leaves the frozen head byte-identical;
//! - end to end through the CLI on the demo data: `train --unfreeze-top 1`, `eval --json` (same
//!   metrics as training reported), `infer --run`, a resume after a kill, and a clear refusal of
//!   `export`.

mod common;

use std::path::PathBuf;

use candle_core::{backprop::GradStore, Device, Tensor};
use edgetune::backbone::layers::{TopLayers, Unfrozen};
use edgetune::heads::{Group, Heads, HeadsConfig, IntentHeadConfig, SlotHeadConfig};
use edgetune::onnx::import::{BertConfig, Weights};
use edgetune::train::batch::{make_token_batch, TokenRows};
use edgetune::train::optim::{AdamW, GroupSettings};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::{edgetune, fails, ok, require_setup};

fn minilm() -> PathBuf {
    let p = common::root().join(".models/minilm-hf");
    assert!(
        p.join("model.safetensors").is_file(),
        "{} missing: run ./setup.sh test",
        p.display()
    );
    p
}

/// Heads reading states [3, 4, 5, 6] over the top two real MiniLM layers (first = 4: states 3
/// and 4 come from the cache, 5 and 6 from the layers).
fn model() -> Heads {
    let hf = minilm();
    let cfg = BertConfig::load(&hf.join("config.json")).unwrap();
    let w = Weights::load(&hf.join("model.safetensors")).unwrap();
    let states = vec![3, 4, 5, 6];
    let config = HeadsConfig {
        hidden: cfg.hidden_size,
        states: states.len(),
        intents: vec!["a".into(), "b".into(), "c".into()],
        tags: vec!["O".into(), "B-x".into(), "I-x".into()],
        intent_head: IntentHeadConfig {
            hidden: 16,
            dropout: 0.1,
        },
        slot_head: SlotHeadConfig {
            gru_hidden: 8,
            dropout: 0.1,
        },
    };
    let mut heads = Heads::new(config, 3, &Device::Cpu).unwrap();
    let top = TopLayers::load(&mut heads.params, &w, &cfg, 4, &Device::Cpu).unwrap();
    let cached = Unfrozen::cached_states(&states, 4);
    assert_eq!(cached, vec![3, 4]);
    heads.top = Some(Unfrozen {
        top,
        cached,
        head_states: states,
    });
    heads
}

/// Two sentences of token states (the second shorter, with a multi-token word and a word cut by
/// truncation), as the cache stores them: `[tokens, 2 states, 384]`.
fn tokens() -> Vec<TokenRows> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut ex = |tokens: usize, word_tokens: Vec<(u32, u32)>| TokenRows {
        rows: (0..tokens * 2 * 384)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect(),
        tokens,
        word_tokens,
    };
    vec![
        ex(7, vec![(1, 2), (2, 4), (4, 5), (5, 6)]),
        ex(5, vec![(1, 2), (2, 4), (4, 4)]),
    ]
}

/// The joint loss of the heads that train (intent only if `intent`), with dropout.
fn loss(heads: &Heads, intent: bool) -> Tensor {
    let rows = tokens();
    let refs: Vec<&TokenRows> = rows.iter().collect();
    let tb = make_token_batch(&refs, 2, 384, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let b = heads.token_inputs(&tb, Some((0.1, &mut rng))).unwrap();
    assert_eq!(b.words.dims(), &[2, 4, 4, 384]);
    let slot = heads
        .slot
        .as_ref()
        .unwrap()
        .forward(&b.words, &b.mask, Some(&mut rng))
        .unwrap();
    let tags = Tensor::from_vec(vec![0u32, 1, 2, 0, 1, 0, 0, 0], 8, &Device::Cpu).unwrap();
    let mut l = candle_nn::loss::cross_entropy(&slot.reshape((8, 3)).unwrap(), &tags).unwrap();
    if intent {
        let logits = heads
            .intent
            .as_ref()
            .unwrap()
            .forward(&b.words, &b.mask, &b.pooled, Some(&mut rng))
            .unwrap();
        let y = Tensor::from_vec(vec![0u32, 2], 2, &Device::Cpu).unwrap();
        l = (l + candle_nn::loss::cross_entropy(&logits, &y).unwrap()).unwrap();
    }
    l
}

fn norm(g: &Tensor) -> f32 {
    g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap()
}

/// Checks that parameters for which `trained` holds get a non-zero gradient and others none.
fn check(heads: &Heads, grads: &GradStore, trained: &dyn Fn(Group) -> bool) -> usize {
    let mut n = 0;
    for p in &heads.params.params {
        let g = grads.get(p.var.as_tensor());
        if !trained(p.group) {
            assert!(
                g.is_none(),
                "frozen tensor `{}` received a gradient",
                p.name
            );
            continue;
        }
        let g = g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
        let v = norm(g);
        assert!(v.is_finite(), "`{}`: gradient {v}", p.name);
        // Two biases are gradient-free in exact arithmetic: each adds the same value to every
        // score a softmax normalises (the intent attention over words; the key bias adds q . b_k
        // to every score of a query row). Their gradient must exist; zero (or rounding noise) is
        // allowed.
        if !(p.name == "intent.attn.bias" || p.name.ends_with("attention.self.key.bias")) {
            assert!(v > 0.0, "trainable tensor `{}`: all-zero gradient", p.name);
        }
        n += 1;
    }
    n
}

#[test]
fn every_trainable_tensor_of_heads_and_top_layers_gets_a_gradient() {
    let heads = model();
    let layer_params = heads
        .params
        .params
        .iter()
        .filter(|p| matches!(p.group, Group::Layer(_)))
        .count();
    assert_eq!(layer_params, 32, "two layers of 16 tensors");
    let grads = loss(&heads, true).backward().unwrap();
    let n = check(&heads, &grads, &|_| true);
    assert_eq!(n, heads.params.params.len());
}

#[test]
fn a_frozen_head_gets_no_gradient_and_stays_byte_identical() {
    let heads = model();
    let trained = |g: Group| g != Group::Intent;
    let snapshot = |h: &Heads| -> Vec<Vec<f32>> {
        h.params
            .params
            .iter()
            .filter(|p| p.group == Group::Intent)
            .map(|p| p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let before = snapshot(&heads);
    let layers_before: Vec<f32> = heads.params.by_name()["encoder.layer.5.output.dense.weight"]
        .var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let grads = loss(&heads, false).backward().unwrap();
    check(&heads, &grads, &trained);
    let mut opt = AdamW::default();
    let settings = |g: Group| {
        trained(g).then_some(GroupSettings {
            lr: 1e-3,
            weight_decay: 0.01,
        })
    };
    opt.step(&heads.params, &grads, &settings, 1.0).unwrap();
    let after = snapshot(&heads);
    for (a, b) in before.iter().zip(&after) {
        assert!(
            bytemuck::cast_slice::<f32, u8>(a) == bytemuck::cast_slice::<f32, u8>(b),
            "a frozen tensor changed"
        );
    }
    assert!(
        !opt.moments.keys().any(|k| k.starts_with("intent.")),
        "frozen tensors get no optimizer state"
    );
    let layers_after: Vec<f32> = heads.params.by_name()["encoder.layer.5.output.dense.weight"]
        .var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(layers_before, layers_after, "the unfrozen layer trained");
}

#[test]
fn train_eval_infer_with_the_top_layer_unfrozen() {
    require_setup();
    minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let train_args = |out: &std::path::Path, n: &str| -> Vec<String> {
        [
            "train",
            "--data",
            "data/demo",
            "--unfreeze-top",
            n,
            "--threads",
            "2",
            "--epochs",
            "8",
            "--json",
            "-q",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let mut c = edgetune(&cache);
    c.args(train_args(&run, "1"));
    let v: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();

    let mut c = edgetune(&cache);
    c.args(["eval", "--run"]).arg(&run).args([
        "--data",
        "data/demo",
        "--split",
        "test",
        "--json",
        "-q",
    ]);
    let m: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    // 9 intents (chance ~11%), 9 slot types.
    assert_eq!(m["examples"], 101);
    assert!(m["intent_accuracy"].as_f64().unwrap() > 0.85, "{m}");
    assert!(m["slot_f1"].as_f64().unwrap() > 0.80, "{m}");
    assert!(m["sentence_accuracy"].as_f64().unwrap() > 0.6, "{m}");
    assert_eq!(
        m, v["test"],
        "eval (fine-tuned layers rebuilt) reproduces train's test metrics"
    );

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["top_layers"]["first"], 5);
    assert_eq!(config["features"]["unit"], "tokens");

    let input = tmp.path().join("lines.txt");
    std::fs::write(&input, "turn on the lights in the kitchen\n").unwrap();
    let mut c = edgetune(&cache);
    c.args(["infer", "--run"]).arg(&run).arg(&input);
    let line: serde_json::Value = serde_json::from_str(ok(c).trim()).unwrap();
    assert_eq!(line["intent"]["label"], "turn_on", "{line}");
    assert!(
        line["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "room" && s["text"] == "kitchen"),
        "{line}"
    );

    // Exporting would silently drop the fine-tuned layers: refused with a clear message.
    let mut c = edgetune(&cache);
    c.args(["export", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(tmp.path().join("m.onnx"));
    let err = fails(c);
    assert!(err.contains("--unfreeze-top"), "{err}");
    assert!(!tmp.path().join("m.onnx").exists());

    // A bad checkpoint is a clear error.
    let mut c = edgetune(&cache);
    c.args(train_args(&tmp.path().join("r2"), "1"))
        .arg("--hf-weights")
        .arg(tmp.path());
    let err = fails(c);
    assert!(err.contains("--hf-weights"), "{err}");
    let mut c = edgetune(&cache);
    c.args(train_args(&tmp.path().join("r3"), "7"));
    let err = fails(c);
    assert!(err.contains("6 layers"), "{err}");
}

/// A run with unfrozen layers killed after its first checkpoint and resumed ends with the same
/// weights (heads and layers) as an uninterrupted one: the checkpoint holds the layers and their
/// AdamW moments.
#[test]
fn resume_with_unfrozen_layers_matches_uninterrupted_run() {
    require_setup();
    minilm();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "--data",
            "data/demo",
            "--unfreeze-top",
            "1",
            "--threads",
            "1",
            "--epochs",
            "3",
            "--patience",
            "10",
            "-q",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let a = tmp.path().join("a");
    let mut c = edgetune(&cache);
    c.args(args(&a));
    ok(c);

    let b = tmp.path().join("b");
    let mut c = edgetune(&cache);
    c.args(args(&b));
    common::kill_after_epochs(c, &b, 1);
    let mut c = edgetune(&cache);
    c.args(["train", "--threads", "1", "-q", "--resume"])
        .arg(&b);
    ok(c);
    let wa = std::fs::read(a.join("heads.safetensors")).unwrap();
    let wb = std::fs::read(b.join("heads.safetensors")).unwrap();
    assert!(
        wa == wb,
        "resumed weights differ from the uninterrupted run's"
    );
    let st = safetensors::SafeTensors::deserialize(&wa).unwrap();
    assert!(st.tensor("encoder.layer.5.output.dense.weight").is_ok());
}

/// The fused layer norm equals the formulation from candle primitives in value and in the
/// gradients of its input, scale and shift.
#[test]
fn fused_layer_norm_matches_the_primitive_formulation() {
    use candle_core::Var;
    use edgetune::backbone::layers::LayerNorm;
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0.5f32, 2.0, (3, 5, 24), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 24, &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 24, &dev).unwrap()).unwrap();
    let r = Tensor::randn(0f32, 1.0, (3, 5, 24), &dev).unwrap();
    let ln = LayerNorm {
        weight: w.as_tensor().clone(),
        bias: b.as_tensor().clone(),
        eps: 1e-12,
    };
    let fused = ln.forward(x.as_tensor()).unwrap();
    let reference = ln.forward_reference(x.as_tensor()).unwrap();
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&fused, &reference) < 1e-5);
    let gf = fused
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gr = reference
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [&x, &w, &b] {
        let (a, c) = (
            gf.get(v.as_tensor()).unwrap(),
            gr.get(v.as_tensor()).unwrap(),
        );
        let d = diff(a, c);
        assert!(d < 1e-4, "gradient differs by {d}");
    }
}
