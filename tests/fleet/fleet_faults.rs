//! Faults and hostile peers in a local fleet (`fleet/simulate.sh` on `data/demo`, the real
//! Flower 1.18 SuperLink and the real MiniLM): a device that sends NaN, one that sends a 1000x
//! update, one killed mid-round. Each test checks what happened to the global model's metrics.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::process::Command;

/// Runs the simulation with `extra` flags on data/demo (3 devices unless given) and returns its
/// JSON line.
fn simulate(name: &str, extra: &[&str]) -> serde_json::Value {
    common::require_setup();
    let root = common::root();
    assert!(
        root.join(".venv-fleet/bin/flwr").is_file(),
        "the fleet tests need the pinned Flower in .venv-fleet; run ./setup.sh test"
    );
    let out = std::env::temp_dir().join(format!("edgetune-fleet-{name}-{}", std::process::id()));
    // A cache per test: the tests run at once, and two processes must not write one cache entry.
    let cache = out.with_extension("cache");
    let mut c = Command::new(root.join("fleet/simulate.sh"));
    c.env("EDGETUNE_BIN", env!("CARGO_BIN_EXE_edgetune"))
        .env("EDGETUNE_CACHE", &cache)
        .env_remove("EDGETUNE_MODEL")
        .args([
            "--data",
            "data/demo",
            "--split-by",
            "intent",
            "--no-baselines",
            "--json",
            "--force",
        ])
        .args(["--ping-interval", "5", "--run-timeout", "900"])
        .arg("--out")
        .arg(&out)
        .args(extra)
        .current_dir(&root);
    if !extra.contains(&"--devices") {
        c.args(["--devices", "3"]);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "simulate {extra:?} failed:\n{}\n{}\n(logs in {})",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        out.display()
    );
    let line = String::from_utf8(o.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap()).unwrap();
    eprintln!("{name}: {v}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&cache);
    v
}

fn intent(v: &serde_json::Value, which: &str) -> f64 {
    v[which]["intent_accuracy"].as_f64().unwrap()
}

#[test]
fn a_nan_update_is_dropped_and_the_global_model_is_unharmed() {
    let v = simulate("nan", &["--rounds", "2", "--hostile", "2:nan"]);
    assert_eq!(v["rounds_completed"], 2, "{v}");
    assert_eq!(v["dropped_non_finite"], 2, "one NaN update per round: {v}");
    assert!(intent(&v, "federated") >= intent(&v, "seed") - 0.02, "{v}");
}

#[test]
fn a_1000x_update_is_neutralised_by_the_trimmed_mean() {
    let v = simulate(
        "scale",
        &[
            "--devices",
            "4",
            "--rounds",
            "2",
            "--strategy",
            "trimmed-mean",
            "--trim-beta",
            "0.25",
            "--hostile",
            "3:scale:1000",
        ],
    );
    assert_eq!(v["rounds_completed"], 2, "{v}");
    assert!(intent(&v, "federated") >= intent(&v, "seed") - 0.02, "{v}");
    let norms = v["max_update_norm_ratio"].as_f64().unwrap();
    assert!(norms > 100.0, "the hostile update was not large: {v}");
    assert!(v["max_global_step_norm"].as_f64().unwrap() < 50.0, "{v}");
}

#[test]
fn a_device_killed_mid_round_leaves_the_round_to_the_others() {
    // Device 2 is killed (SIGKILL) once round 2 has started: the SuperLink answers its
    // instruction with an error when its pings stop, and the round aggregates the other two.
    let v = simulate(
        "kill",
        &["--rounds", "2", "--round-timeout", "60", "--kill", "2:2"],
    );
    assert_eq!(v["rounds_completed"], 2, "{v}");
    let replies: Vec<u64> = serde_json::from_value(v["replies_per_round"].clone()).unwrap();
    assert_eq!(replies, [3, 2], "{v}");
    assert!(intent(&v, "federated") >= intent(&v, "seed") - 0.02, "{v}");
}
