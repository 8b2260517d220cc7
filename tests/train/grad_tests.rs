//! Every trainable tensor of the heads receives a gradient, and a frozen head none; the fused
//! kernels match their formulations from candle primitives in values and gradients.
//!
//! candle's fused `layer_norm`/`softmax_last_dim` kernels have no backward pass: a head built on
//! them would silently stop training below them. These tests catch that for every parameter.

use candle_core::{Device, Tensor};

use crate::support as common;
use common::tensor_max_abs_diff as max_abs_diff;
use edgetune::data::TaskKind;
use edgetune::model::{
    Batch, Head, HeadConfig, ModelConfig, SentenceHead, SentenceHeadConfig, TaskConfig, TaskLogits,
    TaskModel, TokenHead, TokenHeadConfig,
};

fn heads() -> TaskModel {
    heads_with(false)
}

fn strings(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// `intent` (3 classes) and `tags` (BIO, 3 classes) over 3 states of width 16; `reads`: the intent
/// head also reads the tags head's recurrent states.
fn heads_with(reads: bool) -> TaskModel {
    let config = ModelConfig {
        backbone_width: 16,
        mixed_states: 3,
        tasks: vec![
            TaskConfig {
                name: "intent".into(),
                kind: TaskKind::Sentence,
                labels: strings("a b c"),
                head: HeadConfig::Sentence(SentenceHeadConfig {
                    mlp_width: 8,
                    dropout: 0.1,
                    reads: reads.then(|| "tags".to_string()),
                }),
            },
            TaskConfig {
                name: "tags".into(),
                kind: TaskKind::Spans,
                labels: strings("O B-x I-x"),
                head: HeadConfig::Token(TokenHeadConfig {
                    gru_units: 6,
                    dropout: 0.1,
                }),
            },
        ],
    };
    TaskModel::new(config, 7, &Device::Cpu).unwrap()
}

fn sentence_head(m: &TaskModel, i: usize) -> &SentenceHead {
    match &m.heads[i] {
        Head::Sentence(h) => h,
        Head::Token(_) => panic!("task {i} is a token task"),
    }
}

fn token_head(m: &TaskModel, i: usize) -> &TokenHead {
    match &m.heads[i] {
        Head::Token(h) => h,
        Head::Sentence(_) => panic!("task {i} is a sentence task"),
    }
}

fn batch() -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let words = Tensor::randn(0f32, 1.0, (2, 5, 3, 16), &dev).unwrap();
    // Second sentence is shorter: padding at the end must not break the backward pass.
    let mask =
        Tensor::from_vec(vec![1f32, 1., 1., 1., 1., 1., 1., 1., 0., 0.], (2, 5), &dev).unwrap();
    let pooled = Tensor::randn(0f32, 1.0, (2, 16), &dev).unwrap();
    (words, mask, pooled)
}

/// Every tensor whose name starts with one of `trained` has a non-zero gradient, every other none.
fn assert_grads(h: &TaskModel, loss: &Tensor, trained: &[&str]) {
    let grads = loss.backward().unwrap();
    for p in &h.params.params {
        let g = grads.get(p.var.as_tensor());
        if trained.iter().any(|t| p.name.starts_with(t)) {
            let g =
                g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            // The attention-score bias shifts every score of a sentence equally; softmax is
            // invariant to that, so its gradient is zero up to rounding (it must still exist).
            if !p.name.ends_with(".attn.bias") {
                assert!(
                    norm > 0.0,
                    "trainable tensor `{}` received an all-zero gradient",
                    p.name
                );
            }
        } else {
            assert!(
                g.is_none(),
                "frozen tensor `{}` received a gradient",
                p.name
            );
        }
    }
}

#[test]
fn intent_head_gradients_reach_every_parameter() {
    let h = heads();
    let (w, m, p) = batch();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let logits = sentence_head(&h, 0)
        .forward(&w, &m, &p, None, Some(&mut rng))
        .unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &intent_targets()).unwrap();
    assert_grads(&h, &loss, &["intent."]);
}

#[test]
fn slot_head_gradients_reach_every_parameter() {
    let h = heads();
    let (w, m, _) = batch();
    let logits = token_head(&h, 1).forward(&w, &m, None).unwrap();
    assert_grads(&h, &slot_loss(&logits), &["tags."]);
}

fn intent_targets() -> Tensor {
    Tensor::from_vec(vec![0u32, 2], 2, &Device::Cpu).unwrap()
}

/// Slot loss over the 8 real words of [`batch`].
fn slot_loss(logits: &Tensor) -> Tensor {
    let t = Tensor::from_vec(vec![1u32, 2, 0, 0, 1, 0, 1, 2], 8, &Device::Cpu).unwrap();
    let idx = Tensor::from_vec(vec![0u32, 1, 2, 3, 4, 5, 6, 7], 8, &Device::Cpu).unwrap();
    let flat = logits
        .reshape((10, 3))
        .unwrap()
        .index_select(&idx, 0)
        .unwrap();
    candle_nn::loss::cross_entropy(&flat, &t).unwrap()
}

fn edgetune_batch() -> Batch {
    let (words, mask, pooled) = batch();
    Batch {
        words,
        mask,
        pooled,
        width: 5,
    }
}

/// Training forward pass (dropout on) of heads whose intent head reads the tags states; the tags
/// head's logits only if `slot` trains.
fn coupled_forward(h: &TaskModel, slot: bool) -> TaskLogits {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    h.forward(&edgetune_batch(), &[true, slot], Some(&mut rng))
        .unwrap()
}

fn take(out: &mut TaskLogits, i: usize) -> Tensor {
    out.logits[i].take().expect("logits of a task asked for")
}

#[test]
fn intent_head_reading_slot_states_trains_both_heads_jointly() {
    let h = heads_with(true);
    let mut out = coupled_forward(&h, true);
    let il = candle_nn::loss::cross_entropy(&take(&mut out, 0), &intent_targets()).unwrap();
    let loss = (il + slot_loss(&take(&mut out, 1))).unwrap();
    assert_grads(&h, &loss, &["intent.", "tags."]);
}

#[test]
fn intent_loss_alone_reaches_the_slot_states_it_reads() {
    // The tags states are shared input: the intent loss must reach the tags head's recurrent layer
    // (not its output layer) when the tags head trains.
    let h = heads_with(true);
    let mut out = h.forward(&edgetune_batch(), &[true, true], None).unwrap();
    let loss = candle_nn::loss::cross_entropy(&take(&mut out, 0), &intent_targets()).unwrap();
    let grads = loss.backward().unwrap();
    for p in &h.params.params {
        let g = grads.get(p.var.as_tensor());
        if p.name.starts_with("tags.out") {
            assert!(g.is_none(), "`{}` received an intent gradient", p.name);
        } else {
            assert!(g.is_some(), "`{}` received no intent gradient", p.name);
        }
    }
}

#[test]
fn frozen_slot_head_read_by_the_intent_head_receives_no_gradient() {
    let h = heads_with(true);
    let mut out = coupled_forward(&h, false);
    assert!(
        out.logits[1].is_none(),
        "tags logits computed for a frozen tags head"
    );
    let loss = candle_nn::loss::cross_entropy(&take(&mut out, 0), &intent_targets()).unwrap();
    assert_grads(&h, &loss, &["intent."]);
}

#[test]
fn padding_does_not_change_a_sentence_s_slot_logits() {
    let h = heads();
    let (w, m, _) = batch();
    let full = token_head(&h, 1).forward(&w, &m, None).unwrap();
    // The second sentence alone, without its padding.
    let w1 = w.narrow(0, 1, 1).unwrap().narrow(1, 0, 3).unwrap();
    let m1 = m.narrow(0, 1, 1).unwrap().narrow(1, 0, 3).unwrap();
    let alone = token_head(&h, 1).forward(&w1, &m1, None).unwrap();
    let diff = (full.narrow(0, 1, 1).unwrap().narrow(1, 0, 3).unwrap() - alone)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff < 1e-5,
        "padding leaked into the backward GRU: max |diff| {diff}"
    );
}

/// The fused recurrence (`nn::bigru`, hand-written backward) against the GRU built from candle
/// primitives (`GruDir::forward`, candle's autograd): same states, same gradients for the input
/// and all eight weight tensors, on a batch with sentences of different lengths (incl. 1).
#[test]
fn fused_bigru_matches_the_candle_reference_forward_and_backward() {
    use edgetune::nn::{
        bigru, gather_positions, reverse_indices, Group, GruDir, ParamBuilder, ParamSet,
    };
    use rand::SeedableRng;
    let dev = Device::Cpu;
    let (inp, hid, b, t) = (5, 7, 4, 6);
    let lengths = vec![6usize, 3, 1, 5];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut ps = ParamSet::default();
    let (fwd, bwd) = {
        let mut vb = ParamBuilder::new(&mut ps, &mut rng, Group::Head(0), &dev);
        (
            GruDir::new(&mut vb.pp("f"), inp, hid).unwrap(),
            GruDir::new(&mut vb.pp("b"), inp, hid).unwrap(),
        )
    };
    let xv = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, inp), &dev).unwrap())
        .unwrap();
    let x = xv.as_tensor();
    let mask: Vec<f32> = lengths
        .iter()
        .flat_map(|&l| (0..t).map(move |p| if p < l { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (b, t, 1), &dev).unwrap();
    // A loss that weights every position and unit differently.
    let weights = Tensor::randn(0f32, 1.0, (b, t, 2 * hid), &dev).unwrap();
    let loss_of = |h: &Tensor| {
        h.broadcast_mul(&mask)
            .unwrap()
            .mul(&weights)
            .unwrap()
            .sum_all()
    };

    let rev = reverse_indices(&lengths, t, &dev).unwrap();
    let f = fwd.forward(x).unwrap();
    let r = gather_positions(
        &bwd.forward(&gather_positions(x, &rev).unwrap()).unwrap(),
        &rev,
    )
    .unwrap();
    let reference = Tensor::cat(&[f, r], 2)
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap();
    for train in [false, true] {
        let fused = bigru(&fwd, &bwd, x, lengths.clone(), train).unwrap();

        let d = max_abs_diff(&reference, &fused);
        assert!(
            d < 1e-5,
            "fused GRU states (train {train}) differ from the reference by {d}"
        );

        let g_ref = loss_of(&reference).unwrap().backward().unwrap();
        let g_fused = loss_of(&fused).unwrap().backward().unwrap();
        let mut checked = vec![("input", x.clone())];
        checked.extend(
            ps.params
                .iter()
                .map(|p| (p.name.as_str(), p.var.as_tensor().clone())),
        );
        assert_eq!(checked.len(), 9);
        for (name, t) in &checked {
            let a = g_ref
                .get(t)
                .unwrap_or_else(|| panic!("reference: no gradient for `{name}`"));
            let b = g_fused
                .get(t)
                .unwrap_or_else(|| panic!("fused GRU: no gradient for `{name}`"));
            let d = max_abs_diff(a, b);
            let scale = max_abs_diff(a, &a.zeros_like().unwrap()).max(1e-3);
            assert!(
            d <= 1e-4 * scale.max(1.0),
            "gradient of `{name}` (train {train}) differs: max |diff| {d} (reference max {scale})"
        );
        }
    }
}

/// The fused layer mix and constant multiply against plain candle formulations: same values, same
/// gradients for the weights, and for the states when they are tracked (unfrozen layers).
#[test]
fn fused_mix_and_const_mul_match_candle() {
    use edgetune::nn::kernels::ops::{const_mul, MixOp};
    let dev = Device::Cpu;
    let (b, w, k, h) = (2, 3, 4, 10);
    let xv = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, w, k, h), &dev).unwrap())
        .unwrap();
    let wv = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, k, &dev).unwrap()).unwrap();
    let (x, wt) = (xv.as_tensor(), wv.as_tensor());
    let weights = Tensor::randn(0f32, 1.0, (b, w, h), &dev).unwrap();
    let factors: Vec<f32> = (0..b * w).map(|i| (i % 3) as f32 * 0.5).collect();
    let ft = Tensor::from_vec(factors.clone(), (b, w, 1), &dev).unwrap();

    let reference = x
        .broadcast_mul(&wt.reshape((1, 1, k, 1)).unwrap())
        .unwrap()
        .sum(2)
        .unwrap()
        .broadcast_mul(&ft)
        .unwrap();
    let fused = const_mul(&x.apply_op2(wt, MixOp).unwrap(), factors, h).unwrap();
    assert!(
        max_abs_diff(&reference, &fused) < 1e-5,
        "fused mix values differ"
    );
    let gr = weighted_sum_grads(&reference, &weights);
    let gf = weighted_sum_grads(&fused, &weights);
    for (name, t) in [("states", x), ("weights", wt)] {
        let (a, b) = (
            gr.get(t).unwrap(),
            gf.get(t)
                .unwrap_or_else(|| panic!("no gradient for {name}")),
        );
        let d = max_abs_diff(a, b);
        assert!(d < 1e-4, "gradient for the {name} differs by {d}");
    }
    // Constant (untracked) states get no gradient at all.
    let c = Tensor::randn(0f32, 1.0, (b, w, k, h), &dev).unwrap();
    let g = c
        .apply_op2(wt, MixOp)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&c).is_none(), "constant states received a gradient");
    assert!(g.get(wt).is_some(), "mix weights received no gradient");
}

/// The fused self-attention core (`nn::kernels::attention::AttentionOp`, hand-written backward)
/// against the former formulation from candle primitives (`attention_reference`: head split,
/// batched matmuls, biased softmax): same context, same gradients for `q`, `k`, `v` (relative to the
/// largest reference value), on a batch with padding (lengths 7, 4, 1) and a head width that is not
/// a multiple of 8; padded positions weigh in the loss too. Also with the probabilities recomputed
/// in the backward pass instead of saved.
#[test]
fn fused_attention_matches_the_primitive_formulation() {
    use candle_core::Var;
    use edgetune::backbone::layers::TopLayers;
    use edgetune::nn::kernels::attention::{attention, attention_reference, AttentionOp};
    let dev = Device::Cpu;
    let (b, t, heads, d) = (3, 7, 4, 12);
    let h = heads * d;
    let lengths = [7usize, 4, 1];
    let mask: Vec<f32> = lengths
        .iter()
        .flat_map(|&l| (0..t).map(move |p| if p < l { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (b, t), &dev).unwrap();
    let bias = TopLayers::attention_bias(&mask).unwrap();
    let vars: Vec<Var> = (0..3)
        .map(|_| Var::from_tensor(&Tensor::randn(0f32, 1.5, (b, t, h), &dev).unwrap()).unwrap())
        .collect();
    let [q, k, v] = [0, 1, 2].map(|i| vars[i].as_tensor().clone());
    let weights = Tensor::randn(0f32, 1.0, (b, t, h), &dev).unwrap();
    let loss_of = |c: &Tensor| c.mul(&weights).unwrap().sum_all().unwrap();

    let reference = attention_reference(&q, &k, &v, &bias, heads).unwrap();
    let g_ref = loss_of(&reference).backward().unwrap();
    let bias_values = bias.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let recomputing = q
        .apply_op3(&k, &v, AttentionOp::new(heads, bias_values, false))
        .unwrap();
    let fused = attention(&q, &k, &v, &bias, heads).unwrap();
    for (what, out) in [("saved P", &fused), ("recomputed P", &recomputing)] {
        let scale = max_abs_diff(&reference, &reference.zeros_like().unwrap());
        let diff = max_abs_diff(&reference, out);
        assert!(
            diff <= 1e-5 * scale,
            "fused attention ({what}): context differs by {diff} (reference max {scale})"
        );
        let g = loss_of(out).backward().unwrap();
        for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
            let a = g_ref.get(x).unwrap();
            let f = g
                .get(x)
                .unwrap_or_else(|| panic!("fused attention ({what}): no gradient for {name}"));
            let scale = max_abs_diff(a, &a.zeros_like().unwrap());
            let diff = max_abs_diff(a, f);
            assert!(
                scale > 0.0 && diff <= 1e-5 * scale,
                "fused attention ({what}): gradient of {name} differs by {diff} (reference max {scale})"
            );
        }
    }
    // Padded keys get exactly zero probability: changing k and v there changes nothing.
    let noise = Tensor::randn(0f32, 10.0, (b, t, h), &dev).unwrap();
    let pad = mask.unsqueeze(2).unwrap().affine(-1.0, 1.0).unwrap();
    let k2 = (&k + noise.broadcast_mul(&pad).unwrap()).unwrap();
    let v2 = (&v + noise.broadcast_mul(&pad).unwrap()).unwrap();
    let moved = attention(&q, &k2, &v2, &bias, heads).unwrap();
    let diff = max_abs_diff(&fused, &moved);
    assert!(diff == 0.0, "padded keys leaked into the context: {diff}");
}

/// Keys masked with `-inf` (and a row with every key masked) give zeros, never NaN, in the context
/// and the gradients.
#[test]
fn fused_attention_masked_rows_do_not_produce_nan() {
    use candle_core::Var;
    use edgetune::nn::kernels::attention::attention;
    let dev = Device::Cpu;
    let (b, t, heads, h) = (2, 3, 2, 8);
    let vars: Vec<Var> = (0..3)
        .map(|_| Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, h), &dev).unwrap()).unwrap())
        .collect();
    let [q, k, v] = [0, 1, 2].map(|i| vars[i].as_tensor().clone());
    let ninf = f32::NEG_INFINITY;
    let bias = Tensor::from_vec(vec![0f32, ninf, ninf, ninf, ninf, ninf], (b, t), &dev).unwrap();
    let c = attention(&q, &k, &v, &bias, heads).unwrap();
    let g = c.sum_all().unwrap().backward().unwrap();
    let finite = |x: &Tensor| {
        x.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    };
    assert!(finite(&c), "context has non-finite values: {c}");
    for x in [&q, &k, &v] {
        assert!(finite(g.get(x).unwrap()), "non-finite gradient");
    }
    let second = c.narrow(0, 1, 1).unwrap();
    assert_eq!(
        max_abs_diff(&second, &second.zeros_like().unwrap()),
        0.0,
        "a fully masked sentence must give a zero context"
    );
    // Bad input is an error, not a panic.
    let short_bias = Tensor::zeros((b, t - 1), candle_core::DType::F32, &dev).unwrap();
    assert!(attention(&q, &k, &v, &short_bias, heads).is_err());
    assert!(attention(&q, &k, &v, &bias, 3).is_err());
}

/// Gradients of `sum(y * w)`: a loss whose gradient with respect to `y` is `w` (not all ones).
fn weighted_sum_grads(y: &Tensor, w: &Tensor) -> candle_core::backprop::GradStore {
    y.mul(w).unwrap().sum_all().unwrap().backward().unwrap()
}

/// The fused exact GELU (`nn::kernels::gelu::GeluErfOp`) against candle's `gelu_erf` and its autograd:
/// same values, same gradient.
#[test]
fn fused_gelu_matches_candle() {
    use candle_core::Var;
    use edgetune::nn::kernels::gelu::gelu_erf;
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (5, 37), &dev).unwrap()).unwrap();
    let w = Tensor::randn(0f32, 1.0, (5, 37), &dev).unwrap();
    let reference = x.as_tensor().gelu_erf().unwrap();
    let fused = gelu_erf(x.as_tensor()).unwrap();
    let diff = max_abs_diff(&reference, &fused);
    assert!(diff <= 2e-6, "fused GELU values differ by {diff}");
    let gr = weighted_sum_grads(&reference, &w);
    let gf = weighted_sum_grads(&fused, &w);
    let (a, f) = (
        gr.get(x.as_tensor()).unwrap(),
        gf.get(x.as_tensor()).expect("fused GELU: no gradient"),
    );
    let scale = max_abs_diff(a, &a.zeros_like().unwrap());
    let diff = max_abs_diff(a, f);
    assert!(
        diff <= 1e-5 * scale,
        "fused GELU gradient differs by {diff} (reference max {scale})"
    );
}

/// The fused layer norm equals the formulation from candle primitives in value and in the
/// gradients of its input, scale and shift.
#[test]
fn fused_layer_norm_matches_the_primitive_formulation() {
    use candle_core::Var;
    use edgetune::nn::LayerNorm;
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
    assert!(max_abs_diff(&fused, &reference) < 1e-5);
    let gf = weighted_sum_grads(&fused, &r);
    let gr = weighted_sum_grads(&reference, &r);
    for v in [&x, &w, &b] {
        let (a, c) = (
            gf.get(v.as_tensor()).unwrap(),
            gr.get(v.as_tensor()).unwrap(),
        );
        let d = max_abs_diff(a, c);
        assert!(d < 1e-4, "gradient differs by {d}");
    }
}
