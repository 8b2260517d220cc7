//! Every trainable tensor of the heads receives a gradient, and a frozen head none.
//!
//! candle's fused `layer_norm`/`softmax_last_dim` kernels have no backward pass: a head built on
//! them would silently stop training below them. These tests catch that for every parameter.

use candle_core::{Device, Tensor};
use edgetune::heads::{Heads, HeadsConfig, IntentHeadConfig, SlotHeadConfig};

fn heads() -> Heads {
    let config = HeadsConfig {
        hidden: 16,
        states: 3,
        intents: vec!["a".into(), "b".into(), "c".into()],
        tags: vec!["O".into(), "B-x".into(), "I-x".into()],
        intent_head: IntentHeadConfig {
            hidden: 8,
            dropout: 0.1,
        },
        slot_head: SlotHeadConfig {
            gru_hidden: 6,
            dropout: 0.1,
        },
    };
    Heads::new(config, 7, &Device::Cpu).unwrap()
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

fn assert_grads(h: &Heads, loss: &Tensor, trained: &str) {
    let grads = loss.backward().unwrap();
    for p in &h.params.params {
        let g = grads.get(p.var.as_tensor());
        if p.name.starts_with(trained) {
            let g =
                g.unwrap_or_else(|| panic!("trainable tensor `{}` received no gradient", p.name));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0,
                "trainable tensor `{}` received an all-zero gradient",
                p.name
            );
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
    let logits = h
        .intent
        .as_ref()
        .unwrap()
        .forward(&w, &m, &p, Some(&mut rng))
        .unwrap();
    let t = Tensor::from_vec(vec![0u32, 2], 2, &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &t).unwrap();
    assert_grads(&h, &loss, "intent.");
}

#[test]
fn slot_head_gradients_reach_every_parameter() {
    let h = heads();
    let (w, m, _) = batch();
    let logits = h.slot.as_ref().unwrap().forward(&w, &m, None).unwrap();
    let t = Tensor::from_vec(vec![1u32, 2, 0, 0, 1, 0, 1, 2], 8, &Device::Cpu).unwrap();
    let idx = Tensor::from_vec(vec![0u32, 1, 2, 3, 4, 5, 6, 7], 8, &Device::Cpu).unwrap();
    let flat = logits
        .reshape((10, 3))
        .unwrap()
        .index_select(&idx, 0)
        .unwrap();
    let loss = candle_nn::loss::cross_entropy(&flat, &t).unwrap();
    assert_grads(&h, &loss, "slot.");
}

#[test]
fn padding_does_not_change_a_sentence_s_slot_logits() {
    let h = heads();
    let (w, m, _) = batch();
    let full = h.slot.as_ref().unwrap().forward(&w, &m, None).unwrap();
    // The second sentence alone, without its padding.
    let w1 = w.narrow(0, 1, 1).unwrap().narrow(1, 0, 3).unwrap();
    let m1 = m.narrow(0, 1, 1).unwrap().narrow(1, 0, 3).unwrap();
    let alone = h.slot.as_ref().unwrap().forward(&w1, &m1, None).unwrap();
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
