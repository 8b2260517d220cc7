//! The task model with named tasks: several sentence heads and a token head trained together,
//! freezing by task name (a frozen head gets no gradient and stays byte-identical; a sentence head
//! reading a frozen token task gets its states detached), the architecture checks that guard
//! sizes read from files, the parameter count the memory plan uses, and decoding per task kind.

use crate::support as common;

use candle_core::{Device, Tensor};
use edgetune::data::{TaskInfo, TaskKind};
use edgetune::model::{
    to_labels, token_ids, Batch, Decoded, HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig,
    TaskModel, TaskOutput, TokenHeadConfig,
};
use edgetune::nn::Group;
use edgetune::train::optim::{AdamW, GroupSettings};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn strings(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn sentence(name: &str, labels: &str, reads: Option<&str>) -> TaskConfig {
    TaskConfig {
        name: name.into(),
        kind: TaskKind::Sentence,
        labels: strings(labels),
        head: HeadConfig::Sentence(SentenceHeadConfig {
            mlp_width: 8,
            dropout: 0.1,
            reads: reads.map(str::to_string),
        }),
    }
}

fn token(name: &str, kind: TaskKind, labels: &str) -> TaskConfig {
    TaskConfig {
        name: name.into(),
        kind,
        labels: strings(labels),
        head: HeadConfig::Token(TokenHeadConfig {
            gru_units: 6,
            dropout: 0.1,
        }),
    }
}

/// `intent` (reads `tags`), `domain` and the span task `tags`, on 3 states of width 16.
fn config() -> ModelConfig {
    ModelConfig {
        backbone_width: 16,
        mixed_states: 3,
        tasks: vec![
            sentence("intent", "a b c", Some("tags")),
            sentence("domain", "x y", None),
            token("tags", TaskKind::Spans, "O B-t I-t"),
        ],
    }
}

fn batch() -> Batch {
    let dev = Device::Cpu;
    Batch {
        words: Tensor::randn(0f32, 1.0, (2, 5, 3, 16), &dev).unwrap(),
        mask: Tensor::from_vec(vec![1f32, 1., 1., 1., 1., 1., 1., 1., 0., 0.], (2, 5), &dev)
            .unwrap(),
        pooled: Tensor::randn(0f32, 1.0, (2, 16), &dev).unwrap(),
        width: 5,
    }
}

/// The summed loss of the tasks whose logits were computed.
fn loss(model: &TaskModel, logits: &[Option<Tensor>]) -> Tensor {
    let dev = Device::Cpu;
    let mut total: Option<Tensor> = None;
    for (t, l) in model.config.tasks.iter().zip(logits) {
        let Some(l) = l else { continue };
        let part = if t.kind.is_token() {
            let flat = l
                .reshape((10, t.labels.len()))
                .unwrap()
                .index_select(
                    &Tensor::from_vec((0u32..8).collect::<Vec<_>>(), 8, &dev).unwrap(),
                    0,
                )
                .unwrap();
            let y = Tensor::from_vec(vec![1u32, 2, 0, 0, 1, 0, 1, 2], 8, &dev).unwrap();
            candle_nn::loss::cross_entropy(&flat, &y).unwrap()
        } else {
            let y = Tensor::from_vec(vec![0u32, 1], 2, &dev).unwrap();
            candle_nn::loss::cross_entropy(l, &y).unwrap()
        };
        total = Some(match total {
            Some(x) => (x + part).unwrap(),
            None => part,
        });
    }
    total.expect("some task trains")
}

/// Tensors of the tasks named in `trained` get a gradient (non-zero but for the attention-score
/// biases, which softmax ignores), the others none.
fn check_grads(model: &TaskModel, grads: &candle_core::backprop::GradStore, trained: &[&str]) {
    for p in &model.params.params {
        let task = p.name.split('.').next().unwrap();
        let g = grads.get(p.var.as_tensor());
        if trained.contains(&task) {
            let g = g.unwrap_or_else(|| panic!("`{}` received no gradient", p.name));
            let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(n.is_finite(), "`{}`: gradient {n}", p.name);
            if !p.name.ends_with(".attn.bias") {
                assert!(n > 0.0, "`{}`: all-zero gradient", p.name);
            }
        } else {
            assert!(g.is_none(), "frozen `{}` received a gradient", p.name);
        }
    }
}

#[test]
fn three_tasks_forward_and_backward() {
    let model = TaskModel::new(config(), 3, &Device::Cpu).unwrap();
    // Parameters are created task by task, each under its name.
    let prefixes: Vec<&str> = model
        .params
        .params
        .iter()
        .map(|p| p.name.split('.').next().unwrap())
        .collect();
    let first = |t: &str| prefixes.iter().position(|p| *p == t).unwrap();
    assert!(first("intent") < first("domain") && first("domain") < first("tags"));
    for p in &model.params.params {
        let i = model
            .config
            .task(p.name.split('.').next().unwrap())
            .unwrap();
        assert_eq!(p.group, Group::Head(i), "{}", p.name);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let out = model
        .forward(&batch(), &[true, true, true], Some(&mut rng))
        .unwrap();
    let dims: Vec<Vec<usize>> = out
        .logits
        .iter()
        .map(|l| l.as_ref().unwrap().dims().to_vec())
        .collect();
    assert_eq!(dims, vec![vec![2, 3], vec![2, 2], vec![2, 5, 3]]);
    let grads = loss(&model, &out.logits).backward().unwrap();
    check_grads(&model, &grads, &["intent", "domain", "tags"]);
}

#[test]
fn a_frozen_head_gets_no_gradient_and_stays_byte_identical() {
    for frozen in ["intent", "domain", "tags"] {
        let model = TaskModel::new(config(), 3, &Device::Cpu).unwrap();
        let want: Vec<bool> = model
            .config
            .tasks
            .iter()
            .map(|t| t.name != frozen)
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let out = model.forward(&batch(), &want, Some(&mut rng)).unwrap();
        let i = model.config.task(frozen).unwrap();
        assert!(out.logits[i].is_none(), "{frozen}: logits of a frozen task");
        let grads = loss(&model, &out.logits).backward().unwrap();
        let trained: Vec<&str> = ["intent", "domain", "tags"]
            .into_iter()
            .filter(|t| *t != frozen)
            .collect();
        // Freezing `tags` (read by `intent`): the intent head reads its states detached.
        check_grads(&model, &grads, &trained);

        let snapshot = |m: &TaskModel| -> Vec<(String, Vec<u8>)> {
            m.params
                .params
                .iter()
                .map(|p| {
                    let v: Vec<f32> = p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                    (p.name.clone(), bytemuck::cast_slice(&v).to_vec())
                })
                .collect()
        };
        let before = snapshot(&model);
        let mut opt = AdamW::default();
        let settings = |g: Group| match g {
            Group::Head(k) if k == i => None,
            _ => Some(GroupSettings {
                lr: 1e-2,
                weight_decay: 0.01,
            }),
        };
        opt.step(&model.params, &grads, &settings, 1.0).unwrap();
        for ((name, a), (_, b)) in before.iter().zip(snapshot(&model)) {
            if name.starts_with(&format!("{frozen}.")) {
                assert!(*a == b, "frozen tensor `{name}` changed");
            } else if !name.ends_with(".attn.bias") {
                assert!(*a != b, "trained tensor `{name}` did not change");
            }
        }
        assert!(
            !opt.moments
                .keys()
                .any(|k| k.starts_with(&format!("{frozen}."))),
            "frozen tensors get no optimizer state"
        );
    }
}

#[test]
fn a_sentence_head_reading_a_frozen_token_task_sees_the_same_states() {
    // Detached or not, the states the intent head reads are the same values: freezing `tags`
    // changes no logit of `intent` (at inference, without dropout).
    let model = TaskModel::new(config(), 5, &Device::Cpu).unwrap();
    let b = batch();
    let all = model.forward(&b, &[true, true, true], None).unwrap();
    let frozen = model.forward(&b, &[true, true, false], None).unwrap();
    let d = common::tensor_max_abs_diff(
        all.logits[0].as_ref().unwrap(),
        frozen.logits[0].as_ref().unwrap(),
    );
    assert_eq!(d, 0.0);
    // Nothing asked: nothing computed.
    let none = model.forward(&b, &[false, false, false], None).unwrap();
    assert!(none.logits.iter().all(Option::is_none));
}

#[test]
fn head_params_equals_the_built_parameter_count() {
    let mut configs = vec![config()];
    let mut wide = config();
    wide.backbone_width = 24;
    wide.mixed_states = 2;
    wide.tasks
        .push(token("pos", TaskKind::Tokens, "DET NOUN VERB X"));
    if let HeadConfig::Sentence(c) = &mut wide.tasks[1].head {
        c.reads = Some("pos".into());
        c.mlp_width = 5;
    }
    configs.push(wide);
    for c in configs {
        let model = TaskModel::new(c.clone(), 1, &Device::Cpu).unwrap();
        let mut total = 0;
        for i in 0..c.tasks.len() {
            let built = model.params.count(&|g| g == Group::Head(i));
            assert_eq!(
                c.head_params(i),
                built,
                "task {}: head_params vs the built head",
                c.tasks[i].name
            );
            total += built;
        }
        assert_eq!(total, model.params.count(&|_| true));
    }
}

#[test]
fn validate_rejects_bad_architectures_before_anything_is_built() {
    use edgetune::model::config::limits;
    let cases: Vec<(&str, Box<dyn Fn(&mut ModelConfig)>)> = vec![
        ("backbone_width 0", Box::new(|c| c.backbone_width = 0)),
        (
            "backbone_width 16385",
            Box::new(|c| c.backbone_width = limits::MAX_WIDTH + 1),
        ),
        ("mixed_states 0", Box::new(|c| c.mixed_states = 0)),
        (
            "mixed_states 65",
            Box::new(|c| c.mixed_states = limits::MAX_MIXED_STATES + 1),
        ),
        ("0 tasks", Box::new(|c| c.tasks.clear())),
        (
            "257 tasks",
            Box::new(|c| {
                c.tasks = (0..=limits::MAX_TASKS)
                    .map(|i| sentence(&format!("t{i}"), "a b", None))
                    .collect()
            }),
        ),
        (
            "the name appears twice",
            Box::new(|c| c.tasks[1].name = "intent".into()),
        ),
        ("not usable", Box::new(|c| c.tasks[1].name = "a b".into())),
        ("reserved", Box::new(|c| c.tasks[1].name = "text".into())),
        ("0 labels", Box::new(|c| c.tasks[1].labels.clear())),
        (
            "label \"x\" appears twice",
            Box::new(|c| c.tasks[1].labels = strings("x y x")),
        ),
        (
            "an empty label",
            Box::new(|c| c.tasks[1].labels.push(String::new())),
        ),
        (
            "100001 labels",
            Box::new(|c| {
                c.tasks[1].labels = (0..=limits::MAX_LABELS).map(|i| format!("l{i}")).collect()
            }),
        ),
        (
            "head width 0",
            Box::new(|c| {
                if let HeadConfig::Token(t) = &mut c.tasks[2].head {
                    t.gru_units = 0;
                }
            }),
        ),
        (
            "head width 16385",
            Box::new(|c| {
                if let HeadConfig::Sentence(s) = &mut c.tasks[1].head {
                    s.mlp_width = limits::MAX_HEAD_WIDTH + 1;
                }
            }),
        ),
        (
            "dropout 1",
            Box::new(|c| {
                if let HeadConfig::Sentence(s) = &mut c.tasks[1].head {
                    s.dropout = 1.0;
                }
            }),
        ),
        (
            "a sentence task needs a sentence head",
            Box::new(|c| c.tasks[1].head = HeadConfig::Token(TokenHeadConfig::default())),
        ),
        (
            "a spans task needs a token head",
            Box::new(|c| c.tasks[2].head = HeadConfig::Sentence(SentenceHeadConfig::default())),
        ),
        (
            "sentence tasks must come before token tasks",
            Box::new(|c| c.tasks.swap(1, 2)),
        ),
        (
            "reads \"domain\", which is not a token task",
            Box::new(|c| {
                if let HeadConfig::Sentence(s) = &mut c.tasks[0].head {
                    s.reads = Some("domain".into());
                }
            }),
        ),
        (
            "reads \"nope\"",
            Box::new(|c| {
                if let HeadConfig::Sentence(s) = &mut c.tasks[0].head {
                    s.reads = Some("nope".into());
                }
            }),
        ),
        (
            "parameters (more than 1073741824)",
            Box::new(|c| {
                // Every size within its own bound, the heads together far too large.
                c.backbone_width = limits::MAX_WIDTH;
                for t in &mut c.tasks {
                    match &mut t.head {
                        HeadConfig::Sentence(s) => s.mlp_width = limits::MAX_HEAD_WIDTH,
                        HeadConfig::Token(k) => k.gru_units = limits::MAX_HEAD_WIDTH,
                    }
                }
            }),
        ),
    ];
    assert_eq!(config().validate(), Ok(()));
    for (expected, change) in cases {
        let mut c = config();
        change(&mut c);
        let e = c.validate().expect_err(expected);
        assert!(e.contains(expected), "{e:?} does not say {expected:?}");
        // TaskModel::new checks first: no multi-gigabyte allocation for an oversized config.
        let e = TaskModel::new(c, 0, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
}

fn probs(rows: &[&[f32]]) -> Vec<Vec<f32>> {
    rows.iter().map(|r| r.to_vec()).collect()
}

#[test]
fn token_tasks_decode_by_arg_max_and_span_tasks_by_bio() {
    let labels = strings("O B-x I-x");
    let spans = TaskInfo {
        name: "tags".into(),
        kind: TaskKind::Spans,
        labels: labels.clone(),
    };
    let tokens = TaskInfo {
        name: "marks".into(),
        kind: TaskKind::Tokens,
        labels: labels.clone(),
    };
    // Arg-max: O I-x I-x, which is not valid BIO.
    let p = probs(&[&[0.6, 0.3, 0.1], &[0.1, 0.2, 0.7], &[0.1, 0.2, 0.7]]);
    assert_eq!(token_ids(&tokens, &p), vec![0, 2, 2]);
    assert_eq!(token_ids(&spans, &p), vec![1, 2, 2]);

    let sentence = TaskInfo {
        name: "intent".into(),
        kind: TaskKind::Sentence,
        labels: strings("on off"),
    };
    let d = Decoded {
        tasks: vec![
            Some(TaskOutput::Sentence {
                id: 1,
                prob: 0.9,
                logits: vec![0.0, 2.0],
            }),
            Some(TaskOutput::Token { probs: p.clone() }),
            Some(TaskOutput::Token { probs: p }),
        ],
    };
    let tasks = [sentence, spans, tokens];
    let l = to_labels(&tasks, &d, &[true, true, true]);
    assert_eq!(l.sentence["intent"], "off");
    assert_eq!(l.token["tags"], strings("B-x I-x I-x"));
    assert_eq!(l.token["marks"], strings("O I-x I-x"));
    // A word cut by truncation gets the task's first label (`O` of a span task).
    let l = to_labels(&tasks, &d, &[true, true, false]);
    assert_eq!(l.token["tags"], strings("B-x I-x O"));
    assert_eq!(l.token["marks"], strings("O I-x O"));
}
