//! With the real ONNX Runtime and MiniLM: the vocabulary misuses of issue 25 answered with the
//! flag to use, and `--json` on every command parsed by a JSON parser (schemas in docs/cli.md).

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::{edgetune, root};
use serde_json::Value;

/// A trained demo run and its merged model, shared by the tests of this file.
struct Fixture {
    dir: PathBuf,
    run: PathBuf,
    merged: PathBuf,
    train_json: Value,
    export_json: Value,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        common::require_setup();
        let dir = tempfile::tempdir().unwrap().keep();
        let (run, merged) = (dir.join("run"), dir.join("deploy").join("model.onnx"));
        let mut c = edgetune(&dir.join("cache"));
        c.args([
            "train",
            "--data",
            "data/demo",
            "--epochs",
            "3",
            "--no-plots",
            "--json",
        ])
        .arg("--out")
        .arg(&run);
        let train_json = json(&common::ok(c));
        let mut c = edgetune(&dir.join("cache"));
        c.args(["export", "--json", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&merged);
        let export_json = json(&common::ok(c));
        Fixture {
            dir,
            run,
            merged,
            train_json,
            export_json,
        }
    })
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {s}"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    let f = fixture();
    let mut c = edgetune(&f.dir.join("cache"));
    c.args(args);
    c.output().unwrap()
}

/// Runs a command that must fail; returns its stderr and checks it prints the error once, last.
fn refused(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("edgetune: error: "), "{args:?}: {err}");
    assert_eq!(err.matches("edgetune: error").count(), 1, "{err}");
    assert!(
        !err.contains("os error"),
        "{args:?}: a bare OS error: {err}"
    );
    err
}

/// Runs a command with `--json` that must succeed; returns its one JSON object.
fn json_of(args: &[&str]) -> Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&String::from_utf8_lossy(&o.stdout))
}

#[test]
fn a_path_given_to_the_wrong_flag_names_the_right_one() {
    let f = fixture();
    let (run_s, m) = (p(&f.run), p(&f.merged));
    let err = refused(&["infer", "--model", run_s, "/dev/null"]);
    assert!(
        err.contains(&format!("{run_s} is a run folder; use --run {run_s}")),
        "{err}"
    );
    let err = refused(&[
        "actions",
        "check",
        "examples/actions.toml",
        "--model",
        run_s,
    ]);
    assert!(err.contains("is a run folder; use --run"), "{err}");
    let err = refused(&["infer", "--run", m, "/dev/null"]);
    assert!(
        err.contains(&format!("{m} is a merged model; use --model {m}")),
        "{err}"
    );
    let err = refused(&["eval", "--run", m, "--data", "data/demo"]);
    assert!(err.contains("use --model"), "{err}");
    let out = p(&f.dir).to_string() + "/never";
    for flag in ["--backbone", "--model"] {
        let err = refused(&["train", "--data", "data/demo", "--out", &out, flag, m]);
        assert!(
            err.contains("is a merged model") && err.contains("--backbone takes a backbone"),
            "{err}"
        );
    }
    assert!(
        !Path::new(&out).exists(),
        "a refused train left {out} behind"
    );
    let err = refused(&["bench", "--model", m, "--backbone", run_s]);
    assert!(err.contains("run folder"), "{err}");
    let backbone = root().join(".models/default");
    let err = refused(&["infer", "--model", p(&backbone), "/dev/null"]);
    assert!(err.contains("is a backbone; use --backbone"), "{err}");
    let err = refused(&["eval", "--model", p(&backbone), "--data", "data/demo"]);
    assert!(err.contains("is a backbone; use --backbone"), "{err}");

    // A corrupt model: the flag, the file and the cause once.
    let bad = f.dir.join("corrupt.onnx");
    std::fs::write(&bad, vec![0xffu8; 5000]).unwrap();
    let err = refused(&["infer", "--model", p(&bad), "/dev/null"]);
    assert!(err.contains(&format!("--model {}", p(&bad))), "{err}");
    // serve: the error names --socket and nothing prints after it.
    let err = refused(&[
        "serve",
        "--run",
        run_s,
        "--socket",
        "/nonexistent/dir/x.sock",
        "--no-stdin",
    ]);
    assert!(err.contains("--socket /nonexistent/dir/x.sock"), "{err}");
    assert!(!err.contains("retrain thread"), "{err}");
}

#[test]
fn eval_refuses_data_without_a_shared_task_and_scores_the_merged_model() {
    let f = fixture();
    let data = f.dir.join("reviews");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("test.tsv"),
        "sentiment\tsentence\npositive\tgreat phone\nnegative\tbad battery\n",
    )
    .unwrap();
    for flag in [("--run", &f.run), ("--model", &f.merged)] {
        let err = refused(&["eval", flag.0, p(flag.1), "--data", p(&data)]);
        assert!(
            err.contains("sentiment") && err.contains("intent, urgency, tags")
                || err.contains("sentiment") && err.contains("intent"),
            "{err}"
        );
        assert!(err.contains("none in common"), "{err}");
    }
    let by_run = json_of(&["eval", "--json", "--run", p(&f.run), "--data", "data/demo"]);
    let by_model = json_of(&[
        "eval",
        "--json",
        "--model",
        p(&f.merged),
        "--data",
        "data/demo",
    ]);
    for k in ["intent_accuracy", "slot_f1", "all_tasks_accuracy"] {
        let (a, b) = (by_run[k].as_f64().unwrap(), by_model[k].as_f64().unwrap());
        assert!((a - b).abs() <= 0.02, "{k}: run {a}, merged model {b}");
    }
    assert_eq!(by_run["examples"], by_model["examples"]);
    // Labels the model does not know are reported.
    let odd = f.dir.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(
        odd.join("test.jsonl"),
        "{\"text\": \"make me a sandwich\", \"intent\": \"cook\"}\n{\"text\": \"turn on the lamp\", \"intent\": \"turn_on\"}\n",
    )
    .unwrap();
    let v = json_of(&["eval", "--json", "--model", p(&f.merged), "--data", p(&odd)]);
    let unknown = v["unknown_labels"].as_array().unwrap();
    assert!(unknown[0].as_str().unwrap().contains("`cook`"), "{v}");
}

#[test]
fn json_on_every_command() {
    let f = fixture();
    let (run_s, m) = (p(&f.run), p(&f.merged));
    assert!(f.train_json["valid"].is_object(), "{}", f.train_json);
    let check = &f.export_json["check"];
    assert_eq!(
        check["intent_ids"], check["tasks"]["intent"]["ids"],
        "{check}"
    );
    assert_eq!(check["slot_ids"], check["tasks"]["tags"]["ids"], "{check}");

    let out = f.dir.join("dry");
    let v = json_of(&[
        "train",
        "--dry-run",
        "--json",
        "--data",
        "data/demo",
        "--out",
        p(&out),
    ]);
    assert_eq!(v["dry_run"], true);
    let tasks = v["tasks"].as_array().unwrap();
    let intent = tasks.iter().find(|t| t["name"] == "intent").unwrap();
    assert!(
        intent["label_counts"].as_object().unwrap().len() >= 2,
        "{v}"
    );
    assert!(v["expected_peak_bytes"].as_u64().unwrap() > 0);
    assert!(!out.exists(), "--dry-run wrote {}", out.display());

    let v = json_of(&["inspect", "--json", run_s]);
    assert!(v.is_object());
    let v = json_of(&[
        "actions",
        "check",
        "examples/actions.toml",
        "--json",
        "--model",
        m,
    ]);
    assert_eq!(v["valid"], true);
    assert!(!v["rules"].as_array().unwrap().is_empty());

    // bench with the merged model only: no extraction figure; with --backbone, one.
    let v = json_of(&["bench", "--json", "--model", m, "--n", "5"]);
    assert!(
        v["p50_ms"].as_f64().unwrap() > 0.0 && v.get("extraction").is_none(),
        "{v}"
    );
    let backbone = root().join(".models/default");
    let v = json_of(&[
        "bench",
        "--json",
        "--model",
        m,
        "--n",
        "5",
        "--backbone",
        p(&backbone),
    ]);
    assert!(
        v["extraction"]["sentences_per_second"].as_f64().unwrap() > 0.0,
        "{v}"
    );

    // infer: one JSON object per line (also with --json).
    let input = f.dir.join("lines.txt");
    std::fs::write(&input, "turn on the lamp\nplay some jazz\n").unwrap();
    let o = run(&["infer", "--json", "--model", m, p(&input)]);
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), 2);

    // import and quantize on a tiny checkpoint.
    let hf = f.dir.join("tiny-hf");
    common::write_tiny_bert(&hf, 2, false, 5);
    let model_dir = f.dir.join("tiny");
    let v = json_of(&["import", "--json", p(&hf), "--out", p(&model_dir)]);
    assert_eq!(v["layers"], 2);
    let v = json_of(&["quantize", "--json", p(&model_dir)]);
    assert!(v.is_object(), "{v}");

    // Errors with --json: one object with `error`.
    let o = run(&[
        "fleet",
        "join",
        "--json",
        "--superlink",
        "nohost",
        "--run",
        run_s,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert!(v["error"].as_str().unwrap().contains("--superlink"), "{v}");
}

#[test]
fn force_replaces_a_finished_run() {
    let f = fixture();
    let target = f.dir.join("replace");
    copy_dir(&f.run, &target);
    let mut c = edgetune(&f.dir.join("cache"));
    c.args([
        "train",
        "--data",
        "data/demo",
        "--epochs",
        "1",
        "-q",
        "--no-plots",
    ])
    .arg("--out")
    .arg(&target);
    let err = common::fails(c);
    assert!(err.contains("--force"), "{err}");
    let mut c = edgetune(&f.dir.join("cache"));
    c.args([
        "train",
        "--data",
        "data/demo",
        "--epochs",
        "1",
        "-q",
        "--no-plots",
        "--force",
    ])
    .arg("--out")
    .arg(&target);
    common::ok(c);
    let rc: Value =
        serde_json::from_slice(&std::fs::read(target.join("config.json")).unwrap()).unwrap();
    assert_eq!(rc["training"]["epochs_run"].as_u64().or(Some(1)), Some(1));
    let left: Vec<_> = std::fs::read_dir(&f.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".replaced-"))
        .collect();
    assert!(left.is_empty(), "the old run was not removed: {left:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
