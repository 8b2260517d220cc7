//! Training end to end without ONNX Runtime: the feature cache entries of the demo data (with extra
//! tasks) are written straight into the cache folder (fixed pseudo-random vectors per word stand in
//! for the backbone's states), so `train` reads only the cache, as it does after extraction. Then:
//!
//! - several tasks of every kind train together; `eval` reproduces the test metrics; the metrics
//!   name every task and keep the legacy keys; the run's merged graph follows the contract;
//! - freezing: a frozen head stays byte-identical, a task the data lacks is carried over, a
//!   sentence head reading a frozen token task is allowed, and nothing-to-train is an error;
//! - adding a task with `--init-from`: the old heads byte-identical, their metrics identical, the
//!   new task trained;
//! - `--unfreeze-top 1` on token-level entries: the layer trains, the run rebuilds it.
//!
//! The tiny backbone (a 2-layer BERT the test writes and imports) provides the tokenizer, the layer
//! count and the hashes the cache keys use; it is never run.

use crate::support as common;

use std::path::{Path, PathBuf};

use edgetune::data::{load_dataset, load_eval_split, Dataset, ReadOptions, TaskKind};
use edgetune::eval::evaluate_run;
use edgetune::features::{FeatureContext, FeatureSpec, Unit};
use edgetune::metrics::Metrics;
use edgetune::model::{SentenceHeadConfig, TokenHeadConfig};
use edgetune::train::{self, TrainJob, TrainOutcome, TrainSettings};

/// Width of the tiny backbone (and of the cached vectors).
const HIDDEN: usize = 32;

struct Setup {
    tmp: tempfile::TempDir,
    ctx: FeatureContext,
    /// The tiny backbone's Hugging Face checkpoint (for unfrozen layers).
    hf: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (model, hf) = common::tiny_backbone(&tmp.path().join("backbone"));
        let ctx = common::tiny_context(&model, &tmp.path().join("cache"));
        Setup { tmp, ctx, hf }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The demo data rewritten by `f` into `name`, loaded, with its cache entries written.
    fn data(&self, name: &str, f: &dyn Fn(&serde_json::Value) -> serde_json::Value) -> Dataset {
        let dir = self.path(name);
        common::write_demo_variant(&dir, f);
        let d = load_dataset(&dir, &ReadOptions::default(), 0.1, 0).unwrap();
        for s in d.splits() {
            common::write_word_features(&self.ctx, s, &spec(), HIDDEN);
        }
        d
    }

    fn train(&mut self, data: &Dataset, out: &Path, settings: TrainSettings) -> TrainOutcome {
        train::train(TrainJob {
            dataset: data,
            ctx: &mut self.ctx,
            out: out.to_path_buf(),
            settings,
            verbose: false,
            resume: false,
            lock: None,
            plots: false,
        })
        .unwrap()
    }

    fn train_err(&mut self, data: &Dataset, out: &Path, settings: TrainSettings) -> String {
        match train::train(TrainJob {
            dataset: data,
            ctx: &mut self.ctx,
            out: out.to_path_buf(),
            settings,
            verbose: false,
            resume: false,
            lock: None,
            plots: false,
        }) {
            Ok(_) => panic!("training succeeded"),
            Err(e) => e.to_string(),
        }
    }

    /// `eval` of a run on the test split of the data in `data`.
    fn eval(&mut self, run: &Path, data: &Path) -> Metrics {
        let (rc, model) = edgetune::run::load_run(run).unwrap();
        let split = load_eval_split(data, "test", &ReadOptions::default()).unwrap();
        evaluate_run(&rc, &model, &split, &mut self.ctx)
            .unwrap()
            .report
            .metrics
    }
}

/// The cached states: the tiny backbone's default (its upper half and last layer, 1 and 2).
fn spec() -> FeatureSpec {
    FeatureSpec {
        states: vec![1, 2],
        unit: Unit::Words,
    }
}

/// Small heads, a few epochs.
fn settings(epochs: usize) -> TrainSettings {
    TrainSettings {
        epochs,
        patience: 100,
        batch_size: 32,
        sentence_head: SentenceHeadConfig {
            mlp_width: 32,
            ..SentenceHeadConfig::default()
        },
        token_head: TokenHeadConfig {
            gru_units: 16,
            ..TokenHeadConfig::default()
        },
        ..TrainSettings::default()
    }
}

/// The demo data with `domain` (a second sentence task) and `shape` (a per-word task) added.
fn four_tasks(v: &serde_json::Value) -> serde_json::Value {
    let mut v = common::demo_with_domain(v);
    let shapes: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| common::shape_of(w.as_str().unwrap()))
        .collect();
    v["shape"] = serde_json::json!(shapes);
    v
}

/// The demo data with only `domain`.
fn domain_only(v: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "words": v["words"],
        "domain": common::domain_of(v["intent"].as_str().unwrap()),
    })
}

fn demo(v: &serde_json::Value) -> serde_json::Value {
    v.clone()
}

#[test]
fn four_tasks_train_together_and_eval_reproduces_the_test_metrics() {
    let mut s = Setup::new();
    let data = s.data("four", &four_tasks);
    let run = s.path("run");
    let out = s.train(&data, &run, settings(20));
    let rc = &out.config;
    assert_eq!(rc.format, 2);
    let tasks: Vec<(&str, TaskKind)> = rc
        .model
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.kind))
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("domain", TaskKind::Sentence),
            ("intent", TaskKind::Sentence),
            ("shape", TaskKind::Tokens),
            ("tags", TaskKind::Spans),
        ]
    );
    assert_eq!(
        rc.model.tasks[2].labels,
        vec!["det", "long", "num", "short"]
    );
    assert_eq!(rc.model.tasks[3].labels[0], "O");
    assert_eq!(rc.features, spec());
    assert!(run.join("config.json").is_file() && !run.join("checkpoint").exists());

    let (test, _) = out.test.as_ref().expect("the demo data has a test split");
    eprintln!("test metrics: {}", serde_json::to_string(test).unwrap());
    assert_eq!(test.examples, 101);
    // Far above chance (5 domains, 9 intents, 4 shapes, 9 slot types).
    assert!(test.tasks["domain"].accuracy.unwrap() > 0.75, "{test:?}");
    assert!(test.tasks["intent"].accuracy.unwrap() > 0.7, "{test:?}");
    assert!(
        test.tasks["shape"].token_accuracy.unwrap() > 0.85,
        "{test:?}"
    );
    assert!(test.tasks["tags"].span_f1.unwrap() > 0.45, "{test:?}");
    assert!(test.all_tasks_accuracy.unwrap() > 0.2, "{test:?}");
    // The legacy keys are the `intent` and `tags` scores.
    assert_eq!(test.intent_accuracy, test.tasks["intent"].accuracy);
    assert_eq!(test.slot_f1, test.tasks["tags"].span_f1);
    assert!(test.sentence_accuracy.is_some());
    let json = serde_json::to_value(test).unwrap();
    let keys: Vec<&String> = json["tasks"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["domain", "intent", "shape", "tags"]);
    assert!(json["all_tasks_accuracy"].is_number());
    assert_eq!(rc.metrics["test"], *test);

    // `eval` of the run (its model loaded from disk) gives the same figures.
    assert_eq!(s.eval(&run, &s.path("four")), *test);
    // Scoring only some tasks: data with intent and tags alone.
    let m = s.eval(&run, &edgetune_demo());
    assert_eq!(m.intent_accuracy, test.intent_accuracy);
    assert_eq!(m.slot_f1, test.slot_f1);
    assert_eq!(m.tasks.keys().collect::<Vec<_>>(), ["intent", "tags"]);

    merged_graph_contract(&run);
    export_refusals(&run, s.tmp.path());
}

/// `export` refuses, before any work: replacing a file without `--force`, a directory as `--out`,
/// `--fp32-layers` on a run without fine-tuned layers.
fn export_refusals(run: &Path, dir: &Path) {
    use edgetune::onnx::export::{export_run, ExportOptions};
    let opts = |out: PathBuf, fp32_layers: bool| ExportOptions {
        run: run.to_path_buf(),
        out,
        backbone: None,
        check_file: None,
        fp32_layers,
        force: false,
        session: edgetune::backbone::SessionOptions::with_threads(1),
        progress: false,
    };
    let taken = dir.join("taken.onnx");
    std::fs::write(&taken, b"someone else's model").unwrap();
    let e = export_run(&opts(taken.clone(), false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("taken.onnx") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's model");
    let e = export_run(&opts(dir.to_path_buf(), false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a directory"), "{e}");
    let e = export_run(&opts(dir.join("m.onnx"), true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--fp32-layers") && e.contains("--unfreeze-top"),
        "{e}"
    );
    assert!(!dir.join("m.onnx").exists());
}

fn edgetune_demo() -> PathBuf {
    common::root().join("data/demo")
}

/// The merged graph of a run (built without ONNX Runtime): per task `NAME_logits`, `NAME_probs`,
/// `NAME_id`/`NAME_ids`; `tags` also under the format-1 names `slot_*`; metadata `edgetune.tasks`
/// (and the format-1 label keys), all read back by the merged-model reader.
fn merged_graph_contract(run: &Path) {
    use edgetune::onnx::export::{build_merged, MergeSpec};
    use edgetune::onnx::merged::{MergedMeta, META_INTENTS, META_TAGS, META_TASKS};
    let (rc, model) = edgetune::run::load_run(run).unwrap();
    let backbone = edgetune::graph::load_model(&rc.backbone.onnx).unwrap();
    let tokenizer =
        edgetune::tokenize::WordTokenizer::from_file(&rc.backbone.tokenizer, Some(32)).unwrap();
    let spec = MergeSpec {
        states: edgetune::run::head_states(&rc),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: tokenizer.pad_id(),
    };
    let merged = build_merged(backbone, &model, &spec).unwrap();
    let outputs: Vec<&str> = merged
        .graph
        .as_ref()
        .unwrap()
        .output
        .iter()
        .filter_map(|o| o.name.as_deref())
        .collect();
    for name in [
        "domain_logits",
        "domain_probs",
        "domain_id",
        "intent_logits",
        "intent_probs",
        "intent_id",
        "shape_logits",
        "shape_probs",
        "shape_ids",
        "tags_logits",
        "tags_probs",
        "tags_ids",
        "slot_logits",
        "slot_probs",
        "slot_ids",
    ] {
        assert!(outputs.contains(&name), "no output {name}: {outputs:?}");
    }
    assert_eq!(outputs.len(), 15, "{outputs:?}");
    let tasks: serde_json::Value =
        serde_json::from_str(edgetune::graph::metadata_value(&merged, META_TASKS).unwrap())
            .unwrap();
    assert_eq!(tasks[2]["name"], "shape");
    assert_eq!(tasks[2]["kind"], "tokens");
    assert_eq!(tasks[3]["kind"], "spans");
    assert!(edgetune::graph::metadata_value(&merged, META_INTENTS).is_some());
    assert!(edgetune::graph::metadata_value(&merged, META_TAGS).is_some());
    let meta = MergedMeta::read(&merged, Path::new("merged.onnx")).unwrap();
    assert_eq!(meta.format, 2);
    assert_eq!(
        meta.tasks,
        model
            .config
            .tasks
            .iter()
            .map(|t| t.info())
            .collect::<Vec<_>>()
    );
    // A label list that does not fit its output is refused, not mislabelled.
    let mut bad = merged.clone();
    let mut t = tasks.clone();
    t[1]["labels"].as_array_mut().unwrap().pop();
    edgetune::graph::set_metadata(&mut bad, META_TASKS, &t.to_string());
    let e = MergedMeta::read(&bad, Path::new("merged.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("intent_logits") && e.contains("classes"), "{e}");
}

fn with_init(mut s: TrainSettings, base: &Path, freeze: &[&str]) -> TrainSettings {
    s.init_from = Some(base.to_path_buf());
    s.freeze = freeze.iter().map(|f| f.to_string()).collect();
    s
}

#[test]
fn frozen_heads_stay_byte_identical() {
    let mut s = Setup::new();
    let data = s.data("demo", &demo);
    let base = s.path("base");
    s.train(&data, &base, settings(2));
    let a = common::run_tensors(&base);

    // The intent head frozen, the tags head trains.
    let frozen = s.path("frozen-intent");
    s.train(&data, &frozen, with_init(settings(2), &base, &["intent"]));
    let b = common::run_tensors(&frozen);
    common::assert_tensors(&a, &b, "intent.", true);
    common::assert_tensors(&a, &b, "tags.", false);

    // Tags only (CoNLL): trains the tags head, carries the intent head over unchanged.
    let conll = s.path("conll");
    std::fs::create_dir(&conll).unwrap();
    for split in ["train", "valid"] {
        let text = std::fs::read_to_string(common::root().join(format!("data/demo/{split}.jsonl")))
            .unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for (w, t) in v["words"]
                .as_array()
                .unwrap()
                .iter()
                .zip(v["tags"].as_array().unwrap())
            {
                out.push_str(&format!(
                    "{} {}\n",
                    w.as_str().unwrap(),
                    t.as_str().unwrap()
                ));
            }
            out.push('\n');
        }
        std::fs::write(conll.join(format!("{split}.conll")), out).unwrap();
    }
    let tags_data = load_dataset(&conll, &ReadOptions::default(), 0.1, 0).unwrap();
    for split in tags_data.splits() {
        common::write_word_features(&s.ctx, split, &spec(), HIDDEN);
    }
    let tags_only = s.path("tags-only");
    let out = s.train(&tags_data, &tags_only, with_init(settings(2), &base, &[]));
    assert_eq!(out.config.model.task("intent"), Some(0));
    let c = common::run_tensors(&tags_only);
    common::assert_tensors(&a, &c, "intent.", true);
    common::assert_tensors(&a, &c, "tags.", false);
    // The carried-over intent head still scores as before on intent data.
    let m_base = s.eval(&base, &s.path("demo"));
    let m_tags = s.eval(&tags_only, &s.path("demo"));
    assert_eq!(m_base.intent_accuracy, m_tags.intent_accuracy);

    // Everything frozen: nothing to train.
    let e = s.train_err(
        &data,
        &s.path("x"),
        with_init(settings(2), &base, &["intent", "tags"]),
    );
    assert!(e.contains("nothing to train"), "{e}");
    // Freezing needs a run to keep the head from, and a head that exists there.
    let e = s.train_err(&data, &s.path("y"), {
        let mut st = settings(2);
        st.freeze = vec!["intent".into()];
        st
    });
    assert!(e.contains("--init-from"), "{e}");
    let e = s.train_err(
        &data,
        &s.path("z"),
        with_init(settings(2), &base, &["topic"]),
    );
    assert!(
        e.contains("--freeze topic") && e.contains("intent, tags"),
        "{e}"
    );
    for dir in ["x", "y", "z"] {
        assert!(!s.path(dir).join("config.json").exists());
    }
}

/// A sentence head that reads the token head's states (`--intent-reads-slots true`): freezing
/// either head still keeps it byte-identical.
#[test]
fn heads_coupled_by_token_states_freeze_either_head() {
    let mut s = Setup::new();
    let data = s.data("demo", &demo);
    let base = s.path("base");
    let coupled = TrainSettings {
        sentence_reads_tokens: true,
        ..settings(2)
    };
    let out = s.train(&data, &base, coupled.clone());
    assert_eq!(out.config.model.reads(0), Some(1), "intent reads tags");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["tasks"][0]["head"]["sentence"]["reads"], "tags",
        "{config}"
    );
    let a = common::run_tensors(&base);

    let frozen_tags = s.path("frozen-tags");
    s.train(
        &data,
        &frozen_tags,
        with_init(coupled.clone(), &base, &["tags"]),
    );
    let b = common::run_tensors(&frozen_tags);
    common::assert_tensors(&a, &b, "tags.", true);
    common::assert_tensors(&a, &b, "intent.", false);

    let frozen_intent = s.path("frozen-intent");
    s.train(
        &data,
        &frozen_intent,
        with_init(coupled, &base, &["intent"]),
    );
    let b = common::run_tensors(&frozen_intent);
    common::assert_tensors(&a, &b, "intent.", true);
    common::assert_tensors(&a, &b, "tags.", false);
}

/// `train --init-from RUN --data NEW` where NEW has only a new sentence task: the run's heads are
/// carried over byte-identical (so are their metrics), the new task's head is trained.
#[test]
fn adding_a_task_keeps_the_old_heads_and_their_metrics() {
    let mut s = Setup::new();
    let data = s.data("demo", &demo);
    let base = s.path("base");
    s.train(&data, &base, settings(4));
    let new_data = s.data("domain", &domain_only);
    let added = s.path("added");
    let out = s.train(&new_data, &added, with_init(settings(15), &base, &[]));
    let names: Vec<&str> = out
        .config
        .model
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["intent", "domain", "tags"]);

    let (a, b) = (common::run_tensors(&base), common::run_tensors(&added));
    common::assert_tensors(&a, &b, "intent.", true);
    common::assert_tensors(&a, &b, "tags.", true);
    assert!(b.keys().any(|k| k.starts_with("domain.")));
    assert_eq!(
        a.len() + b.keys().filter(|k| k.starts_with("domain.")).count(),
        b.len()
    );

    // The old tasks score exactly as before; the new one is trained.
    let demo_dir = s.path("demo");
    assert_eq!(s.eval(&added, &demo_dir), s.eval(&base, &demo_dir));
    let (test, _) = out.test.as_ref().unwrap();
    eprintln!("new task: {:?}", test.tasks);
    assert_eq!(test.tasks.keys().collect::<Vec<_>>(), ["domain"]);
    assert!(test.tasks["domain"].accuracy.unwrap() > 0.75, "{test:?}");
    let all = s.data("all", &common::demo_with_domain);
    let m = s.eval(&added, &s.path("all"));
    assert_eq!(m.tasks.len(), 3);
    drop(all);
}

/// `--unfreeze-top 1` on token-level cache entries: the top layer of the tiny checkpoint trains with
/// the heads, the run stores it (and only it), `eval` rebuilds it from the run and reproduces the
/// test metrics, and the merged graph splices it in.
#[test]
fn an_unfrozen_top_layer_trains_and_the_run_rebuilds_it() {
    let mut s = Setup::new();
    let dir = s.path("demo");
    common::write_demo_variant(&dir, &demo);
    let data = load_dataset(&dir, &ReadOptions::default(), 0.1, 0).unwrap();
    // Heads read states 1 and 2; layer 1 (state 1 -> 2) is unfrozen, so the cache holds state 1
    // per token.
    let token_spec = FeatureSpec {
        states: vec![1],
        unit: Unit::Tokens,
    };
    for split in data.splits() {
        common::write_token_features(&s.ctx, split, &token_spec, HIDDEN);
    }
    let (sentence, token, reads) = train::default_heads(1);
    assert!(
        reads,
        "with unfrozen layers sentence heads read the token states by default"
    );
    let settings = TrainSettings {
        unfreeze_top: 1,
        hf_weights: Some(s.hf.clone()),
        sentence_reads_tokens: reads,
        sentence_head: SentenceHeadConfig {
            mlp_width: 32,
            ..sentence
        },
        token_head: TokenHeadConfig {
            gru_units: 16,
            ..token
        },
        ..settings(16)
    };
    let run = s.path("run");
    let out = s.train(&data, &run, settings);
    let rc = &out.config;
    assert_eq!(rc.features, token_spec);
    let t = rc.top_layers.as_ref().expect("fine-tuned layers recorded");
    assert_eq!((t.first, t.head_states.clone()), (1, vec![1, 2]));
    assert_eq!(rc.model.reads(0), Some(1));

    let trained = common::run_tensors(&run);
    let layer = "encoder.layer.1.output.dense.weight";
    assert!(trained.contains_key(layer));
    assert!(!trained.keys().any(|k| k.starts_with("encoder.layer.0.")));
    let checkpoint = edgetune::hf::Weights::load(&s.hf.join("model.safetensors")).unwrap();
    let original: Vec<u8> = checkpoint
        .get(layer, &[HIDDEN, 64])
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(
        trained[layer] != original,
        "the unfrozen layer did not train"
    );

    let (test, _) = out.test.as_ref().unwrap();
    eprintln!("unfrozen: {}", serde_json::to_string(test).unwrap());
    assert!(test.intent_accuracy.unwrap() > 0.6, "{test:?}");
    assert!(test.slot_f1.unwrap() > 0.3, "{test:?}");
    assert_eq!(s.eval(&run, &dir), *test);

    // The merged graph with the fine-tuned layer spliced in, built as `export --fp32-layers` does.
    use edgetune::onnx::export::{build_merged, build_top_layers, splice_top_layers, MergeSpec};
    let (rc, model) = edgetune::run::load_run(&run).unwrap();
    let weights = edgetune::hf::Weights::load(&run.join("heads.safetensors")).unwrap();
    let top = build_top_layers(&t.config, &weights, t.first).unwrap();
    let backbone = edgetune::graph::load_model(&rc.backbone.onnx).unwrap();
    let spliced = splice_top_layers(backbone, &top, t.first).unwrap();
    let spec = MergeSpec {
        states: edgetune::run::head_states(&rc),
        tokenizer_sha256: rc.backbone.tokenizer_sha256.clone(),
        max_tokens: rc.backbone.max_tokens,
        pad_id: 0,
    };
    let merged = build_merged(spliced, &model, &spec).unwrap();
    let meta = edgetune::onnx::merged::MergedMeta::read(&merged, Path::new("m.onnx")).unwrap();
    assert_eq!(meta.tasks.len(), 2);
}
