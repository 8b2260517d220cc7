//! Faults and hostile files, without ONNX Runtime: a library planted above the working directory,
//! a kill after every file operation of training, crafted merged-model metadata and run configs,
//! overwrites, two writers of one run, a diverging loss.
//!
//! Training runs on feature-cache entries the test writes (see `tests/train/train_cached.rs`): the tiny
//! backbone gives the tokenizer and the hashes the cache keys use, and is never run.

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use edgetune::data::{load_dataset, Dataset, ReadOptions};
use edgetune::features::{FeatureContext, FeatureSpec, Unit};
use edgetune::model::{SentenceHeadConfig, TokenHeadConfig};
use edgetune::train::{self, TrainJob, TrainSettings};

/// Width of the tiny backbone.
const HIDDEN: usize = 32;

/// The tiny backbone, the demo data with its cache entries written, in a temp folder.
struct Setup {
    tmp: tempfile::TempDir,
    model: PathBuf,
    ctx: FeatureContext,
    data: Dataset,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (model, _) = common::tiny_backbone(&tmp.path().join("backbone"));
        let ctx = common::tiny_context(&model, &tmp.path().join("cache"));
        let dir = tmp.path().join("demo");
        common::write_demo_variant(&dir, &|v| v.clone());
        let data = load_dataset(&dir, &ReadOptions::default(), 0.1, 0).unwrap();
        let spec = FeatureSpec {
            states: vec![1, 2],
            unit: Unit::Words,
        };
        for s in data.splits() {
            common::write_word_features(&ctx, s, &spec, HIDDEN);
        }
        Setup {
            tmp,
            model,
            ctx,
            data,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `edgetune train` on the cached demo data (small heads, `epochs` epochs, one thread).
    fn train_cmd(&self, out_flag: &str, run: &Path, epochs: usize) -> Command {
        let mut c = common::edgetune(&self.path("cache"));
        c.env_remove("EDGETUNE_ORT_LIB")
            .env_remove(edgetune::fsutil::FAULT_ENV);
        c.args(["--threads", "1", "train", "-q", "--backbone"])
            .arg(&self.model)
            .args([
                "--max-tokens",
                "32",
                "--mlp-width",
                "32",
                "--gru-units",
                "16",
            ])
            .args(["--epochs", &epochs.to_string(), "--batch-size", "64"]);
        if out_flag == "--resume" {
            c.arg("--resume").arg(run);
        } else {
            c.arg("--data")
                .arg(self.path("demo"))
                .arg(out_flag)
                .arg(run);
        }
        c
    }
}

fn small_settings(epochs: usize) -> TrainSettings {
    TrainSettings {
        epochs,
        patience: 100,
        batch_size: 64,
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

/// A kill (abort, as a power loss would end the process) right after each file operation of a
/// training run, then `--resume` (or, when no checkpoint had been written yet, a fresh start):
/// every time the run ends with exactly the weights of the uninterrupted run.
#[test]
fn a_kill_after_any_file_operation_resumes_to_the_same_weights() {
    let s = Setup::new();
    let reference = s.path("reference");
    common::ok(s.train_cmd("--out", &reference, 2));
    let want = common::run_tensors(&reference);
    let mut killed = 0;
    for n in 1..=400u64 {
        let run = s.path(&format!("run-{n}"));
        let mut c = s.train_cmd("--out", &run, 2);
        c.env(edgetune::fsutil::FAULT_ENV, n.to_string());
        let out = c.output().unwrap();
        if out.status.success() {
            // The run has fewer file operations than `n`: every point was covered.
            assert!(killed > 20, "only {killed} kill points were reached");
            assert_eq!(common::run_tensors(&run), want);
            eprintln!(
                "killed after each of {killed} file operations; all resumed to the same weights"
            );
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(edgetune::fsutil::FAULT_ENV),
            "run {n} failed, but not at the fault point: {err}"
        );
        killed += 1;
        if run.join("config.json").exists() {
            // Killed after the run was complete (while removing its checkpoint).
        } else if edgetune::train::checkpoint::exists(&run.join("checkpoint")) {
            common::ok(s.train_cmd("--resume", &run, 2));
        } else {
            // Killed before the first checkpoint: `train --out` refuses to mix a new run into a
            // folder with a job record unless told to start over.
            common::ok({
                let mut c = s.train_cmd("--out", &run, 2);
                c.arg("--force");
                c
            });
        }
        assert_eq!(
            common::run_tensors(&run),
            want,
            "killed after file operation {n}: the finished run differs from the uninterrupted one"
        );
        std::fs::remove_dir_all(&run).unwrap();
    }
    panic!("the run never finished within 400 file operations");
}

/// `train --out` on an interrupted run refuses and points to `--resume`.
#[test]
fn train_out_on_an_interrupted_run_points_to_resume() {
    let s = Setup::new();
    let run = s.path("run");
    // Abort late: after the first epoch's checkpoint is complete. The writes before it (the data
    // kept in the run, the checkpoint's files) vary with what a run records: the first fault
    // point that leaves a complete checkpoint behind.
    let interrupted = (30..400).step_by(10).any(|after| {
        let _ = std::fs::remove_dir_all(&run);
        let mut c = s.train_cmd("--out", &run, 2);
        c.env(edgetune::fsutil::FAULT_ENV, after.to_string());
        !c.output().unwrap().status.success()
            && edgetune::train::checkpoint::exists(&run.join("checkpoint"))
    });
    assert!(
        interrupted,
        "no fault point left a checkpoint of an unfinished run"
    );
    let err = common::fails(s.train_cmd("--out", &run, 2));
    assert!(err.contains("--resume"), "{err}");
}

/// Two writers of one run folder: the second stops at once with a clear error.
#[test]
fn a_run_folder_has_one_writer() {
    let mut s = Setup::new();
    let run = s.path("run");
    let held = train::lock_run(&run).unwrap();
    let e = match train::train(TrainJob {
        dataset: &s.data,
        ctx: &mut s.ctx,
        out: run.clone(),
        settings: small_settings(1),
        verbose: false,
        resume: false,
        lock: None,
        plots: false,
    }) {
        Ok(_) => panic!("a second writer trained into a locked run folder"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("another edgetune process"), "{e}");
    assert!(!run.join("config.json").exists());
    drop(held);
    // The command line says the same while another process trains into the folder.
    let _held = train::lock_run(&run).unwrap();
    let err = common::fails(s.train_cmd("--out", &run, 1));
    assert!(err.contains("another edgetune process"), "{err}");
}

/// A loss that becomes infinite or NaN stops training with an error naming the epoch and step;
/// no run is written.
#[test]
fn a_diverging_loss_stops_training() {
    let mut s = Setup::new();
    let run = s.path("run");
    let e = match train::train(TrainJob {
        dataset: &s.data,
        ctx: &mut s.ctx,
        out: run.clone(),
        settings: TrainSettings {
            // Each step multiplies the weights by 1 - lr * weight_decay = -99.
            lr: 10.0,
            weight_decay: 10.0,
            ..small_settings(3)
        },
        verbose: false,
        resume: false,
        lock: None,
        plots: false,
    }) {
        Ok(_) => panic!("training with lr 10 and weight decay 10 finished"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("epoch") && (e.contains("step") || e.contains("finite")),
        "{e}"
    );
    assert!(
        !run.join("config.json").exists(),
        "a diverged run was written"
    );
}

/// A shared library planted in a folder above the working directory (`/tmp/.runtime/<arch>/`, as
/// anyone may write it) is never loaded: its constructor would run in the process.
#[test]
fn a_library_planted_above_the_working_directory_is_never_loaded() {
    let s = Setup::new();
    let top = s.path("world-writable");
    let lib_dir = top.join(".runtime").join(std::env::consts::ARCH);
    std::fs::create_dir_all(&lib_dir).unwrap();
    let marker = s.path("planted-code-ran");
    let src = s.path("plant.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n__attribute__((constructor)) static void planted(void) {\n  FILE *f = fopen(getenv(\"PLANT_MARKER\"), \"w\");\n  if (f) fclose(f);\n}\n",
    )
    .unwrap();
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(lib_dir.join("libonnxruntime.so"))
        .arg(&src)
        .output()
        .expect(
            "a C compiler (cc) is needed to build the planted library; ./setup.sh installs gcc",
        );
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let cwd = top.join("a").join("b");
    std::fs::create_dir_all(&cwd).unwrap();
    // Data without cached features: training must open an ONNX Runtime session to extract them.
    let data = s.path("fresh");
    common::write_demo_variant(&data, &|v| {
        let mut v = v.clone();
        v["intent"] = format!("{}-x", v["intent"].as_str().unwrap()).into();
        v
    });
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgetune"));
    c.current_dir(&cwd)
        .env("PLANT_MARKER", &marker)
        .env("EDGETUNE_CACHE", s.path("cache2"))
        .env_remove("EDGETUNE_ORT_LIB")
        .env_remove("EDGETUNE_MODEL")
        .args([
            "--threads",
            "1",
            "train",
            "-q",
            "--epochs",
            "1",
            "--max-tokens",
            "32",
        ])
        .arg("--backbone")
        .arg(&s.model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(s.path("run"));
    let out = c.output().unwrap();
    assert!(
        !marker.exists(),
        "the library planted in {} was loaded",
        lib_dir.display()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Without set-up, the error says where it looked, and that is not the planted folder.
        assert!(err.contains("looked in"), "{err}");
        assert!(!err.contains(&top.display().to_string()), "{err}");
    }
}

/// A merged model whose label lists do not fit its outputs is refused when opened (a shorter list
/// would index out of bounds; a longer one would give wrong labels silently).
#[test]
fn crafted_merged_metadata_is_refused() {
    use edgetune::graph::proto::tensor_proto::DataType;
    use edgetune::graph::{set_metadata, Dim, GraphBuilder};
    use edgetune::onnx::merged::{
        MergedMeta, META_FORMAT, META_MAX_TOKENS, META_TASKS, META_TOKENIZER_SHA,
    };
    let model = |labels: &[&str], classes: i64| {
        let mut b = GraphBuilder::new("crafted");
        let x = b.input(
            "x",
            DataType::Float,
            &[Dim::param("batch"), Dim::Fixed(classes)],
        );
        for (name, ty) in [
            ("intent_logits", DataType::Float),
            ("intent_probs", DataType::Float),
        ] {
            let y = b.op("Identity", &[&x], vec![]);
            b.output_as(&y, name, ty, &[Dim::param("batch"), Dim::Fixed(classes)]);
        }
        let id = b.op("ArgMax", &[&x], vec![]);
        b.output_as(&id, "intent_id", DataType::Int64, &[Dim::param("batch")]);
        let mut m = b.into_model("test");
        set_metadata(&mut m, META_FORMAT, "2");
        let tasks = serde_json::json!([{ "name": "intent", "kind": "sentence", "labels": labels }]);
        set_metadata(&mut m, META_TASKS, &tasks.to_string());
        set_metadata(&mut m, META_TOKENIZER_SHA, "0");
        set_metadata(&mut m, META_MAX_TOKENS, "128");
        m
    };
    let p = Path::new("crafted.onnx");
    assert!(MergedMeta::read(&model(&["a", "b", "c"], 3), p).is_ok());
    for (labels, classes, expect) in [
        (&["a", "b"][..], 3, "classes"),
        (&["a", "b", "c", "d"][..], 3, "classes"),
        (&[][..], 3, "no labels"),
        (&["a", "a", "b"][..], 3, "twice"),
    ] {
        let e = MergedMeta::read(&model(labels, classes), p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(expect) && e.contains("crafted.onnx"),
            "{labels:?}: {e}"
        );
    }
    let mut m = model(&["a", "b", "c"], 3);
    set_metadata(
        &mut m,
        META_TASKS,
        "[{\"name\": \"text\", \"kind\": \"sentence\", \"labels\": [\"a\"]}]",
    );
    assert!(MergedMeta::read(&m, p).is_err(), "a reserved task name");
    set_metadata(&mut m, META_FORMAT, "7");
    assert!(MergedMeta::read(&m, p)
        .unwrap_err()
        .to_string()
        .contains("format"));
}

/// A run config asking for heads far larger than its weights file is refused before anything that
/// size is allocated; empty label lists are refused.
#[test]
fn crafted_run_configs_are_refused_before_allocation() {
    let mut s = Setup::new();
    let run = s.path("run");
    train::train(TrainJob {
        dataset: &s.data,
        ctx: &mut s.ctx,
        out: run.clone(),
        settings: small_settings(1),
        verbose: false,
        resume: false,
        lock: None,
        plots: false,
    })
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let before = edgetune::sys::peak_rss().unwrap_or(0);
    for (what, edit) in [
        (
            "mlp_width",
            &(|c: &mut serde_json::Value| {
                c["model"]["tasks"][0]["head"]["sentence"]["mlp_width"] = 1_000_000_000u64.into();
            }) as &dyn Fn(&mut serde_json::Value),
        ),
        ("gru_units", &|c| {
            c["model"]["tasks"][1]["head"]["token"]["gru_units"] = 16_000.into();
        }),
        ("labels", &|c| {
            c["model"]["tasks"][0]["labels"] = serde_json::json!([]);
        }),
        ("backbone_width", &|c| {
            c["model"]["backbone_width"] = 1u64.wrapping_shl(40).into();
        }),
    ] {
        let bad = s.path(&format!("bad-{what}"));
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::copy(run.join("heads.safetensors"), bad.join("heads.safetensors")).unwrap();
        let mut c = config.clone();
        edit(&mut c);
        std::fs::write(bad.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        let e = match edgetune::run::load_run(&bad) {
            Ok(_) => panic!("{what}: a crafted config loaded"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("config.json"), "{what}: {e}");
    }
    let after = edgetune::sys::peak_rss().unwrap_or(0);
    assert!(
        after < before + (256 << 20),
        "refusing the crafted configs raised the peak RSS by {} MiB",
        (after - before) >> 20
    );
}

/// `quantize` and `import` refuse to overwrite without `--force`.
#[test]
fn quantize_and_import_refuse_to_overwrite() {
    let s = Setup::new();
    let int8 = s.model.join(edgetune::onnx::import::INT8_FILE);
    std::fs::write(&int8, b"someone's model").unwrap();
    let mut c = common::edgetune(&s.path("cache"));
    c.arg("quantize").arg(&s.model);
    let err = common::fails(c);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&int8).unwrap(), b"someone's model");
    let mut c = common::edgetune(&s.path("cache"));
    c.args(["import", "--no-verify"])
        .arg(s.path("backbone").join("hf"))
        .arg("--out")
        .arg(&s.model);
    let err = common::fails(c);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&int8).unwrap(), b"someone's model");
    // With --force the folder is rebuilt as a whole: the stale int8 file does not survive.
    let mut c = common::edgetune(&s.path("cache"));
    c.args(["import", "--no-verify", "--force"])
        .arg(s.path("backbone").join("hf"))
        .arg("--out")
        .arg(&s.model);
    common::ok(c);
    assert!(
        !int8.exists(),
        "a re-import kept the old {}",
        int8.display()
    );
}
