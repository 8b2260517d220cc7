//! `edgetune cache list|prune|clear` on entries written here: bytes, last use, pruning by age and
//! to a size (least recently used first), whole entries only.

use crate::support as common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::edgetune;
use serde_json::Value;

/// An entry `key` of `bytes` bytes last used `age` ago.
fn entry(cache: &Path, key: &str, bytes: usize, age: Duration) {
    let dir = cache.join(key);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("meta.json"), r#"{"examples": 3, "parts": []}"#).unwrap();
    std::fs::write(dir.join("states.f16"), vec![0u8; bytes]).unwrap();
    let f = std::fs::File::open(&dir).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn cache_json(cache: &Path, args: &[&str]) -> Value {
    let mut c = edgetune(cache);
    c.arg("cache").args(args).arg("--json");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn list_prune_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let day = Duration::from_secs(86_400);
    entry(&cache, "old", 4000, 40 * day);
    entry(&cache, "mid", 3000, 5 * day);
    entry(&cache, "new", 2000, Duration::ZERO);
    // A writer's temporary folder is not an entry.
    std::fs::create_dir_all(cache.join(".new.999999-0.tmp")).unwrap();

    let v = cache_json(&cache, &["list"]);
    let keys: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["old", "mid", "new"], "least recently used first");
    assert!(v["bytes"].as_u64().unwrap() >= 9000);

    let v = cache_json(&cache, &["prune", "--older-than", "30d"]);
    assert_eq!(v["keys"], serde_json::json!(["old"]));
    assert!(!cache.join("old").exists());

    // To a size: the least recently used goes first.
    let v = cache_json(&cache, &["prune", "--max-size", "2500"]);
    assert_eq!(v["keys"], serde_json::json!(["mid"]));
    assert!(cache.join("new").join("meta.json").is_file());

    let v = cache_json(&cache, &["clear"]);
    assert_eq!(v["keys"], serde_json::json!(["new"]));
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // prune needs a criterion.
    let mut c = edgetune(&cache);
    c.args(["cache", "prune"]);
    let err = common::fails(c);
    assert!(
        err.contains("--older-than") || err.contains("--max-size"),
        "{err}"
    );
}
