//! `train --resume` after a kill -9 reaches the same result as an uninterrupted run.

#![cfg(feature = "real-model")]

use crate::support as common;

use common::{edgetune, ok, require_setup};

fn args(run: &std::path::Path) -> Vec<String> {
    [
        "train",
        "--data",
        "data/demo",
        "--threads",
        "1",
        "--epochs",
        "5",
        "--patience",
        "10",
        "--seed",
        "5",
        "-q",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([run.display().to_string()])
    .collect()
}

#[test]
fn resume_after_kill_matches_uninterrupted_run() {
    require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let a = tmp.path().join("a");
    let mut c = edgetune(&cache);
    c.args(args(&a));
    ok(c);

    let b = tmp.path().join("b");
    let mut c = edgetune(&cache);
    c.args(args(&b));
    common::kill_after_epochs(c, &b, 2);
    assert!(
        !b.join("config.json").exists(),
        "a killed run must not look finished"
    );

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
    assert!(
        !b.join("checkpoint").exists(),
        "the checkpoint is removed once the run is finished"
    );
}
