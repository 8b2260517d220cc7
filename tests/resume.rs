//! `train --resume` after a kill -9 reaches the same result as an uninterrupted run.

mod common;

use std::time::{Duration, Instant};

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
    let mut child = c.spawn().unwrap();
    let state = b.join("checkpoint").join("state.json");
    let start = Instant::now();
    loop {
        let epoch = std::fs::read(&state)
            .ok()
            .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s).ok())
            .and_then(|v| v["epoch"].as_u64())
            .unwrap_or(0);
        if epoch >= 2 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
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
