//! Progress, pictures, `inspect` and the merged model as an interface, on one real run: `train`
//! on `data/demo` (stderr to a file, so not a terminal), then `eval --plots`, `inspect`, `export`
//! and the Python reference client against `infer --model`.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use common::{edgetune, fails, ok, require_setup, root};

/// A run trained once for every test of this file.
struct Trained {
    dir: PathBuf,
    cache: PathBuf,
    run: PathBuf,
    stderr: String,
    config: Value,
}

static TRAINED: OnceLock<Trained> = OnceLock::new();
static EXPORTED: OnceLock<(PathBuf, String)> = OnceLock::new();

fn trained() -> &'static Trained {
    TRAINED.get_or_init(|| {
        require_setup();
        // Shared by the tests of this file, so not removed when one ends: the run is kept in
        // cargo's target folder for tests and replaced by the next run.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("show-the-work");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("cache");
        let run = dir.join("run");
        let log = dir.join("train.stderr");
        let mut c = edgetune(&cache);
        c.args([
            "train",
            "--data",
            "data/demo",
            "--epochs",
            "30",
            "--patience",
            "1",
            "--out",
        ])
        .arg(&run)
        .env("EDGETUNE_PROGRESS_SECS", "0")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::piped());
        let out = c.output().unwrap();
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(out.status.success(), "train failed:\n{stderr}");
        let config =
            serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
        Trained {
            dir,
            cache,
            run,
            stderr,
            config,
        }
    })
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn demo_test_lines() -> Vec<Value> {
    std::fs::read_to_string(root().join("data/demo/test.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks an SVG parses as XML with an `<svg>` root and text; a PNG decodes fully.
fn check_svg_png(stem: &Path) {
    let svg_path = stem.with_extension("svg");
    let svg = std::fs::read_to_string(&svg_path)
        .unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| panic!("{}: not XML: {e}", svg_path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.has_tag_name("text")),
        "{} has no text",
        svg_path.display()
    );
    let png_path = stem.with_extension("png");
    let bytes = std::fs::read(&png_path).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", png_path.display()));
    assert!(info.width >= 64 && info.height >= 64);
}

#[test]
fn progress_lines_on_a_non_terminal_during_extraction_and_epochs() {
    let t = trained();
    let lines: Vec<&str> = t.stderr.lines().collect();
    let step = |prefix: &str, total: usize| {
        let pat = format!("{prefix}: ");
        let prog: Vec<&&str> = lines
            .iter()
            .filter(|l| {
                l.starts_with(&pat) && l.contains(&format!("/{total} ")) && l.contains("/s, eta ")
            })
            .collect();
        assert!(
            prog.len() >= 2,
            "no progress lines for {prefix}:\n{}",
            t.stderr
        );
        for l in &prog {
            assert!(l.contains('%'), "{l}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{pat}{total}/{total} sentences in "))),
            "no closing line for {prefix}:\n{}",
            t.stderr
        );
    };
    step("extracting train", 519);
    step("extracting test", 101);
    assert!(
        lines.iter().any(|l| l.starts_with("epoch 1/30: ")
            && l.contains(" steps (")
            && l.contains(", eta ")),
        "no progress lines during the first epoch:\n{}",
        t.stderr
    );
    // The progress lines come before the epoch lines: extraction happens first.
    let first_extract = lines
        .iter()
        .position(|l| l.starts_with("extracting train: "))
        .unwrap();
    let first_epoch = lines
        .iter()
        .position(|l| l.starts_with("epoch  1/30: loss"))
        .unwrap();
    assert!(first_extract < first_epoch);
}

#[test]
fn progress_on_a_terminal_is_a_bar_and_lines_elsewhere() {
    let t = trained();
    let eval = format!(
        "'{}' eval --run '{}' --data data/demo --split valid",
        env!("CARGO_BIN_EXE_edgetune"),
        t.run.display()
    );
    // stderr to a file: lines.
    let cache = t.dir.join("cache-lines");
    let log = t.dir.join("eval.stderr");
    let status = Command::new("sh")
        .arg("-c")
        .arg(&eval)
        .current_dir(root())
        .env("EDGETUNE_CACHE", &cache)
        .env("EDGETUNE_PROGRESS_SECS", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(
        lines.contains("extracting valid: 32/80 sentences ("),
        "{lines}"
    );
    // The same command on a pseudo-terminal: a bar, not lines.
    let cache = t.dir.join("cache-tty");
    let out = Command::new("script")
        .args(["-qec", &eval, "/dev/null"])
        .current_dir(root())
        .env("EDGETUNE_CACHE", &cache)
        .env("EDGETUNE_PROGRESS_SECS", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("examples: 80"), "{tty}");
    assert!(
        tty.contains("extracting valid ["),
        "no bar on a terminal:\n{tty}"
    );
    assert!(
        !tty.contains("extracting valid: "),
        "line-mode output on a terminal:\n{tty}"
    );
}

#[test]
fn early_stop_says_when_why_and_which_epoch_was_kept() {
    let t = trained();
    let line = t
        .stderr
        .lines()
        .find(|l| l.starts_with("early stop after epoch "))
        .unwrap_or_else(|| panic!("no early-stop line (patience 1, 30 epochs):\n{}", t.stderr));
    // "early stop after epoch N of 30: no better valid score for 1 epochs (--patience 1); keeping
    // epoch M (best valid score X%)"
    let num = |after: &str| -> usize {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (stopped, kept) = (num("after epoch "), num("keeping epoch "));
    assert!(
        line.contains("no better valid score for 1 epochs (--patience 1)"),
        "{line}"
    );
    assert!(
        line.contains(" of 30:") && line.contains("(best valid score "),
        "{line}"
    );
    let tr = &t.config["training"];
    assert_eq!(
        tr["epochs_run"].as_u64().unwrap() as usize,
        stopped,
        "{line}"
    );
    assert_eq!(tr["best_epoch"].as_u64().unwrap() as usize, kept, "{line}");
    assert_eq!(
        kept + 1,
        stopped,
        "patience 1 stops one epoch after the best"
    );
    assert_eq!(tr["history"].as_array().unwrap().len(), stopped);
}

/// The test split's report of the run, computed in-process with the library (the reference the
/// pictures must match).
fn library_report(t: &Trained) -> edgetune::metrics::EvalReport {
    edgetune::backbone::init_runtime(None).unwrap();
    let (rc, model) = edgetune::run::load_run(&t.run).unwrap();
    let split = edgetune::data::load_eval_split(
        &root().join("data/demo"),
        "test",
        &edgetune::data::ReadOptions::default(),
    )
    .unwrap();
    let files = edgetune::run::backbone_files(&rc, None).unwrap();
    let mut ctx = edgetune::features::FeatureContext::new(
        files,
        Some(rc.backbone.max_tokens),
        edgetune::backbone::SessionOptions::with_threads(2),
        t.cache.clone(),
    )
    .unwrap();
    ctx.progress = false;
    edgetune::eval::evaluate_run(&rc, &model, &split, &mut ctx)
        .unwrap()
        .report
}

#[test]
fn run_pictures_exist_are_valid_and_match_the_metrics() {
    let t = trained();
    let plots = t.run.join("plots");
    for stem in ["training_curves", "intent_confusion_test", "tags_f1_test"] {
        check_svg_png(&plots.join(stem));
    }
    let test_size = demo_test_lines().len();
    let test_m = &t.config["metrics"]["test"];
    let report = library_report(t);

    // Confusion matrix: counts sum to the test-set size and equal the evaluation's, cell by cell.
    let cm = read_json(&plots.join("intent_confusion_test.json"));
    assert_eq!(cm["total"].as_u64().unwrap() as usize, test_size);
    let counts: Vec<Vec<u64>> = serde_json::from_value(cm["counts"].clone()).unwrap();
    assert_eq!(counts.iter().flatten().sum::<u64>() as usize, test_size);
    let labels: Vec<String> = serde_json::from_value(cm["row_labels"].clone()).unwrap();
    let intent = &report.tasks["intent"];
    for (i, gold) in labels.iter().enumerate() {
        for (j, pred) in labels.iter().enumerate() {
            let want = intent
                .counts
                .get(gold)
                .and_then(|r| r.get(pred))
                .copied()
                .unwrap_or(0);
            assert_eq!(counts[i][j] as usize, want, "{gold} -> {pred}");
        }
    }
    let acc = cm["accuracy"].as_f64().unwrap();
    assert!((acc - test_m["intent_accuracy"].as_f64().unwrap()).abs() < 1e-12);

    // F1 bars: one per span type, each the evaluation's per-type F1; micro F1 = the run's slot F1.
    let f1 = read_json(&plots.join("tags_f1_test.json"));
    let rows = f1["rows"].as_array().unwrap();
    let tags = &report.tasks["tags"];
    assert_eq!(rows.len(), tags.labels.len());
    for r in rows {
        let label = r["label"].as_str().unwrap();
        let prf = tags.labels[label];
        assert!(
            (r["f1"].as_f64().unwrap() - prf.f1()).abs() < 1e-12,
            "{label}"
        );
        assert_eq!(
            r["support"].as_u64().unwrap() as usize,
            prf.support(),
            "{label}"
        );
    }
    assert!((f1["micro_f1"].as_f64().unwrap() - test_m["slot_f1"].as_f64().unwrap()).abs() < 1e-12);

    // Training curves: one point per epoch run, the kept epoch and the early stop marked, the
    // intent series equal to the history's validation accuracy.
    let curves = read_json(&plots.join("training_curves.json"));
    let history = t.config["training"]["history"].as_array().unwrap();
    assert_eq!(curves["epochs"].as_array().unwrap().len(), history.len());
    assert_eq!(curves["best_epoch"], t.config["training"]["best_epoch"]);
    assert_eq!(
        curves["early_stop_epoch"],
        t.config["training"]["epochs_run"]
    );
    let series = curves["series"].as_array().unwrap();
    let intent_series = series
        .iter()
        .find(|s| s["name"] == "intent accuracy")
        .unwrap();
    for (h, v) in history
        .iter()
        .zip(intent_series["percent"].as_array().unwrap())
    {
        let want = 100.0 * h["valid"]["intent_accuracy"].as_f64().unwrap();
        assert!((v.as_f64().unwrap() - want).abs() < 1e-9);
    }
    assert!(series.iter().any(|s| s["name"] == "tags span F1"));

    // The page: self-contained (figures inlined), with the metrics.
    let html = std::fs::read_to_string(t.run.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 3, "figures are inlined");
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    let pct = format!(
        "{:.2}%",
        100.0 * test_m["intent_accuracy"].as_f64().unwrap()
    );
    assert!(
        html.contains(&pct),
        "report.html lacks the test intent accuracy {pct}"
    );
    assert!(html.contains("early stop after epoch"));
}

#[test]
fn without_a_test_split_the_pictures_are_of_valid() {
    let t = trained();
    let data = t.dir.join("no-test-data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["train.jsonl", "valid.jsonl"] {
        std::fs::copy(root().join("data/demo").join(f), data.join(f)).unwrap();
    }
    let run = t.dir.join("run-no-test");
    let mut c = edgetune(&t.cache);
    c.args(["train", "--quiet", "--epochs", "2", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run);
    ok(c);
    let plots = run.join("plots");
    check_svg_png(&plots.join("intent_confusion_valid"));
    check_svg_png(&plots.join("tags_f1_valid"));
    assert!(!plots.join("intent_confusion_test.json").exists());
    let cm = read_json(&plots.join("intent_confusion_valid.json"));
    assert_eq!(cm["total"].as_u64().unwrap(), 80, "the valid split's size");
    let config = read_json(&run.join("config.json"));
    assert!(
        (cm["accuracy"].as_f64().unwrap()
            - config["metrics"]["valid"]["intent_accuracy"]
                .as_f64()
                .unwrap())
        .abs()
            < 1e-12
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("valid split (80 examples)"),
        "report.html names the split drawn"
    );
}

#[test]
fn eval_plots_draw_the_evaluated_split_and_refuse_to_overwrite() {
    let t = trained();
    let out = t.dir.join("eval-plots");
    let mut c = edgetune(&t.cache);
    c.args([
        "eval",
        "--data",
        "data/demo",
        "--split",
        "test",
        "--json",
        "--run",
    ])
    .arg(&t.run)
    .arg("--plots")
    .arg(&out);
    let metrics: Value = serde_json::from_str(&ok(c)).unwrap();
    check_svg_png(&out.join("intent_confusion_test"));
    check_svg_png(&out.join("tags_f1_test"));
    // The same model on the same split: the same data as the run's own pictures.
    for name in ["intent_confusion_test.json", "tags_f1_test.json"] {
        assert_eq!(
            read_json(&out.join(name)),
            read_json(&t.run.join("plots").join(name)),
            "{name}"
        );
    }
    let cm = read_json(&out.join("intent_confusion_test.json"));
    assert_eq!(cm["total"], metrics["examples"]);
    // A folder with files is refused without --force, accepted with it.
    let mut again = edgetune(&t.cache);
    again
        .args(["eval", "--data", "data/demo", "--quiet", "--run"])
        .arg(&t.run)
        .arg("--plots")
        .arg(&out);
    let err = fails(again);
    assert!(err.contains("--plots") && err.contains("--force"), "{err}");
    let mut forced = edgetune(&t.cache);
    forced
        .args([
            "eval",
            "--data",
            "data/demo",
            "--quiet",
            "--force",
            "--split",
            "valid",
            "--run",
        ])
        .arg(&t.run)
        .arg("--plots")
        .arg(&out);
    ok(forced);
    check_svg_png(&out.join("intent_confusion_valid"));
}

fn exported() -> &'static (PathBuf, String) {
    EXPORTED.get_or_init(|| {
        let t = trained();
        let model = t.dir.join("merged").join("model.onnx");
        let mut c = edgetune(&t.cache);
        c.args(["export", "--run"])
            .arg(&t.run)
            .arg("--out")
            .arg(&model)
            .env("EDGETUNE_PROGRESS_SECS", "0");
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "export failed:\n{stderr}");
        (model, stderr)
    })
}

#[test]
fn export_self_check_reports_progress() {
    let (_, stderr) = exported();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("self-check (merged model): ")
                && l.contains("sentence runs (")
                && l.contains(", eta ")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("self-check (merged model): ")
                && l.contains(" sentence runs in ")),
        "{stderr}"
    );
}

fn inspect_json(path: &Path) -> Value {
    let mut c = edgetune(&trained().cache);
    c.arg("inspect").arg(path).arg("--json");
    serde_json::from_str(&ok(c)).unwrap()
}

#[test]
fn inspect_describes_a_run() {
    let t = trained();
    let v = inspect_json(&t.run);
    assert_eq!(v["kind"], "run");
    let tasks = v["tasks"].as_array().unwrap();
    let want = t.config["model"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), want.len());
    for (a, b) in tasks.iter().zip(want) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["labels"], b["labels"]);
    }
    assert_eq!(
        v["backbone"]["onnx_sha256"],
        t.config["backbone"]["onnx_sha256"]
    );
    assert_eq!(v["metrics"], t.config["metrics"]);
    assert_eq!(
        v["training"]["best_epoch"],
        t.config["training"]["best_epoch"]
    );
    assert!(
        v["training"].get("history").is_none(),
        "the history is summarised, not repeated"
    );
    assert_eq!(
        v["epochs"].as_array().unwrap().len(),
        t.config["training"]["history"].as_array().unwrap().len()
    );
    // Parameter count = the weights file's values.
    let bytes = std::fs::read(t.run.join("heads.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let total: usize = st
        .tensors()
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>())
        .sum();
    assert_eq!(v["parameters"]["total"].as_u64().unwrap() as usize, total);
    let parts = v["parameters_by_part"].as_object().unwrap();
    assert!(
        parts.contains_key("intent") && parts.contains_key("tags"),
        "{parts:?}"
    );

    let mut c = edgetune(&t.cache);
    c.arg("inspect").arg(&t.run);
    let text = ok(c);
    for want in [
        "tasks (3):",
        "intent (sentence, ",
        "urgency (sentence, 3 labels)",
        "tags (spans, ",
        "backbone: ",
        "parameters: ",
        "metrics on test",
        "training: epochs 30",
    ] {
        assert!(text.contains(want), "`{want}` missing:\n{text}");
    }
}

#[test]
fn inspect_describes_a_model_folder_and_a_merged_model() {
    let t = trained();
    let v = inspect_json(&root().join(".models").join("default"));
    assert_eq!(v["kind"], "model_dir");
    let graphs = v["graphs"].as_array().unwrap();
    let find = |name: &str| {
        graphs
            .iter()
            .find(|g| g["file"].as_str().unwrap().ends_with(name))
            .unwrap()
    };
    let int8 = find("backbone.int8.onnx");
    assert_eq!(int8["quantization"]["precision"], "int8");
    assert!(int8["quantization"]["matmul_integer"].as_u64().unwrap() > 0);
    assert!(int8["parameters"]["by_dtype"]["int8"].as_u64().unwrap() > 1_000_000);
    assert_eq!(find("backbone.onnx")["quantization"]["precision"], "fp32");
    for (file, ok) in v["hashes_match"].as_object().unwrap() {
        assert_eq!(ok, &Value::Bool(true), "{file} differs from the manifest");
    }

    let (model, _) = exported();
    let m = inspect_json(model);
    assert_eq!(m["kind"], "merged");
    assert_eq!(m["tokenizer_matches"], true);
    let names: Vec<&str> = m["graph"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "input_ids",
            "attention_mask",
            "token_type_ids",
            "word_pool",
            "word_mask"
        ]
    );
    let shape = |ports: &str, name: &str| -> Vec<String> {
        let p = m["graph"][ports]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        serde_json::from_value(p["shape"].clone()).unwrap()
    };
    assert_eq!(shape("inputs", "word_pool").len(), 3);
    let intents = t.config["model"]["tasks"][0]["labels"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        shape("outputs", "intent_logits").last().unwrap(),
        &intents.to_string()
    );
    assert_eq!(shape("outputs", "tags_probs").len(), 3);
    assert_eq!(
        m["tasks"][0]["labels"],
        t.config["model"]["tasks"][0]["labels"]
    );

    // Something else is refused with a message naming what was looked for.
    let empty = t.dir.join("empty-folder");
    std::fs::create_dir_all(&empty).unwrap();
    let mut c = edgetune(&t.cache);
    c.arg("inspect").arg(&empty);
    let err = fails(c);
    assert!(
        err.contains("config.json") && err.contains("manifest.json"),
        "{err}"
    );
}

/// Every value equal, numbers within `tol`.
fn assert_same(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            assert_eq!(kx, ky, "{at}: fields differ");
            for (k, v) in x {
                assert_same(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths differ");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_same(u, v, tol, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn python_client_answers_exactly_as_infer_model() {
    let t = trained();
    let (model, _) = exported();
    let probe = Command::new("python3")
        .args(["-c", "import onnxruntime, tokenizers, numpy"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "python3 with onnxruntime, tokenizers and numpy is needed: run `./setup.sh test` \
         (pip install onnxruntime tokenizers numpy): {probe:?}"
    );
    let mut lines: Vec<String> = demo_test_lines()
        .iter()
        .map(|v| {
            v["words"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Edge cases of the contract: no words, odd whitespace, wide characters (byte offsets), a word
    // without any token, and a line beyond the token limit.
    lines.extend([
        String::new(),
        "  turn   on\tthe kitchen light  ".to_string(),
        "play\u{3000}jazz in the café".to_string(),
        "set \u{200b} the alarm".to_string(),
        ["turn on the lights in the living room"; 80].join(" "),
    ]);
    let input = t.dir.join("client-lines.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let mut c = edgetune(&t.cache);
    c.args(["infer", "--model"]).arg(model).arg(&input);
    let rust = ok(c);
    let py = Command::new("python3")
        .arg(root().join("examples/python/edgetune_client.py"))
        .arg(model)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "the Python client failed:\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py = String::from_utf8(py.stdout).unwrap();
    let (r, p): (Vec<&str>, Vec<&str>) = (rust.lines().collect(), py.lines().collect());
    assert_eq!(r.len(), lines.len());
    assert_eq!(p.len(), lines.len());
    let mut spans = 0;
    for (i, (a, b)) in r.iter().zip(&p).enumerate() {
        let (a, b): (Value, Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert_same(&a, &b, 1e-5, &format!("line {}", i + 1));
        spans += a["slots"].as_array().map_or(0, Vec::len);
    }
    assert!(spans > 50, "the comparison covers spans ({spans})");
    let last: Value = serde_json::from_str(r.last().unwrap()).unwrap();
    assert_eq!(last["truncated"], true);
    let empty: Value = serde_json::from_str(r[r.len() - 5]).unwrap();
    assert_eq!(empty["error"], "empty input");
}
