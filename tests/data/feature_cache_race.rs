//! Two writers of the same feature-cache entry at the same time (two processes, or two threads
//! of one process: a service's retrain and a fleet round): each writes in its own temporary folder
//! and renames it into place; the loser of the rename uses the winner's entry. Both get the
//! features, the cache ends with one complete entry and no temporary folder.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use edgetune::backbone::{ModelFiles, SessionOptions};
use edgetune::data::Split;
use edgetune::features::{FeatureContext, FeatureSpec, Unit};

fn split() -> Split {
    common::text_split(
        "race",
        &[
            "turn on the kitchen lights",
            "play some jazz in the living room",
            "set a timer for ten minutes",
            "what is the weather in Zürich tomorrow",
        ],
    )
}

fn ctx(cache: &Path) -> FeatureContext {
    edgetune::backbone::init_runtime(None).unwrap();
    let files = ModelFiles::resolve(&common::root().join(".models/default")).unwrap();
    let mut c = FeatureContext::new(
        files,
        None,
        SessionOptions::with_threads(1),
        cache.to_path_buf(),
    )
    .unwrap();
    c.progress = false;
    c
}

#[test]
fn two_concurrent_writers_of_one_entry_both_succeed() {
    common::require_setup();
    let spec = FeatureSpec {
        states: vec![6],
        unit: Unit::Words,
    };
    for round in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().to_path_buf();
        let barrier = Arc::new(Barrier::new(2));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, barrier, spec) = (cache.clone(), barrier.clone(), spec.clone());
                std::thread::spawn(move || {
                    let mut c = ctx(&cache);
                    let s = split();
                    barrier.wait();
                    let f = c.load_or_extract(&s, &spec).map_err(|e| e.to_string())?;
                    Ok::<_, String>(f.meta.pooled_checksum)
                })
            })
            .collect();
        let sums: Vec<u32> = writers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e}"))
            })
            .collect();
        assert_eq!(sums[0], sums[1], "round {round}");
        let names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "round {round}: {names:?}");
        assert!(!names[0].ends_with(".tmp"), "{names:?}");
        // The entry opens again from the cache.
        let f = ctx(&cache).load_or_extract(&split(), &spec).unwrap();
        assert_eq!(f.meta.pooled_checksum, sums[0]);
    }
}
