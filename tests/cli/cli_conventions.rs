//! The command line's conventions that need no ONNX Runtime: `--help` texts, global flags before
//! or after the subcommand, deprecation notes for renamed flags, errors as one JSON object with
//! `--json` (clap's refusals included), each cause printed once.

use crate::support as common;

use std::process::Output;

use common::{edgetune, fails};

fn run(args: &[&str]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = edgetune(&tmp.path().join("cache"));
    c.args(args);
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_shows_required_flags_and_hides_legacy_spellings() {
    let train = stdout(&run(&["train", "--help"]));
    assert!(
        train.contains("edgetune train --data DIR --out RUN"),
        "{train}"
    );
    for legacy in [
        "--slot-gru",
        "--intent-hidden",
        "--intent-reads-slots",
        "--freeze-intent",
        "--freeze-slot",
        "[aliases",
    ] {
        assert!(!train.contains(legacy), "train --help shows {legacy}");
    }
    assert!(train.contains("--text-column"), "{train}");
    let infer = stdout(&run(&["infer", "--help"]));
    assert!(
        !infer.contains("journal"),
        "infer --help has serve's text: {infer}"
    );
    assert!(
        infer.contains("--run") && infer.contains("--model"),
        "{infer}"
    );
    for cmd in [
        "train", "eval", "infer", "bench", "import", "export", "quantize", "serve", "inspect",
        "choose",
    ] {
        let h = stdout(&run(&[cmd, "--help"]));
        assert!(
            h.contains("--json") && h.contains("-q, --quiet"),
            "{cmd} --help: {h}"
        );
    }
    let bench = stdout(&run(&["bench", "--help"]));
    let serve = stdout(&run(&["serve", "--help"]));
    for h in [&bench, &serve] {
        assert!(h.contains("--spinning [<WHEN>]"), "{h}");
    }
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    for args in [
        &["--json", "infer"][..],
        &["infer", "--json"][..],
        &["-q", "--json", "infer"][..],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)));
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("--run") && msg.contains("--model"), "{msg}");
    }
    let o = run(&["--threads", "0", "inspect", "data/demo"]);
    assert!(!o.status.success());
}

#[test]
fn errors_with_json_are_one_object_and_name_the_flag() {
    let o = run(&[
        "eval",
        "--json",
        "--run",
        "/nonexistent/run",
        "--data",
        "data/demo",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("--run /nonexistent/run"), "{msg}");
    assert!(stderr(&o).contains(msg), "{}", stderr(&o));

    let o = run(&[
        "train",
        "--data",
        "/nonexistent/data",
        "--out",
        "/tmp/never",
    ]);
    let err = stderr(&o);
    assert!(err.contains("--data /nonexistent/data"), "{err}");
    assert_eq!(err.matches("No such file").count(), 0, "{err}");
}

#[test]
fn renamed_flags_print_one_deprecation_note() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = edgetune(&tmp.path().join("cache"));
    c.args(["train", "--data", "data/demo", "--out"])
        .arg(tmp.path().join("run"))
        .args(["--slot-gru", "0"]);
    let err = fails(c);
    assert_eq!(
        err.matches("note: `train --slot-gru` is deprecated; use `--gru-units`")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("--gru-units"), "{err}");
}

#[test]
fn task_weight_and_train_only_typos_name_their_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let train = |extra: &[&str]| {
        let mut c = edgetune(&tmp.path().join("cache"));
        c.args(["train", "--data", "data/demo", "--out"])
            .arg(&run)
            .args(extra);
        fails(c)
    };
    let err = train(&["--task-weight", "intnet=2"]);
    assert!(
        err.contains("--task-weight intnet=2") && err.contains("intent, urgency, tags"),
        "{err}"
    );
}
