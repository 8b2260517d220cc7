//! The library's feature-cache writer (`FeatureContext::write_entry`), which the tests use to stand
//! in for the backbone: what it writes opens as a cache entry with the given values (f16-rounded
//! states), and features of the wrong size are an error naming the example, leaving no entry.

use crate::support as common;

use edgetune::data::{load_dataset, ReadOptions};
use edgetune::features::{ExampleFeatures, FeatureSpec, Unit};

const HIDDEN: usize = 32;

fn spec() -> FeatureSpec {
    FeatureSpec {
        states: vec![1, 2],
        unit: Unit::Words,
    }
}

#[test]
fn a_written_entry_opens_with_its_values() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _hf) = common::tiny_backbone(&tmp.path().join("backbone"));
    let mut ctx = common::tiny_context(&model, &tmp.path().join("cache"));
    let data = load_dataset(
        &common::root().join("data/demo"),
        &ReadOptions::default(),
        0.1,
        0,
    )
    .unwrap();
    let split = &data.train;
    common::write_word_features(&ctx, split, &spec(), HIDDEN);
    // Opening it must not extract: the tiny backbone is never run (ONNX Runtime is not loaded).
    let f = ctx.load_or_extract(split, &spec()).unwrap();
    assert_eq!(f.len(), split.examples.len());
    let (mut rows, mut scratch) = (Vec::new(), Vec::new());
    for (i, e) in split.examples.iter().enumerate().take(20) {
        f.read_rows(i, &mut rows, &mut scratch).unwrap();
        let words = f.meta.rows[i] as usize;
        assert!(words > 0 && words <= e.words.len());
        assert_eq!(rows.len(), words * 2 * HIDDEN);
        let want = common::word_vector(&e.words[0], 2, HIDDEN);
        for (a, b) in rows[HIDDEN..2 * HIDDEN].iter().zip(&want) {
            assert!((a - b).abs() <= b.abs() * 1e-3 + 1e-3, "{a} vs {b}");
        }
        assert_eq!(f.pooled(i).len(), HIDDEN);
    }
}

#[test]
fn features_of_the_wrong_size_name_the_example_and_leave_no_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _hf) = common::tiny_backbone(&tmp.path().join("backbone"));
    let cache = tmp.path().join("cache");
    let ctx = common::tiny_context(&model, &cache);
    let data = load_dataset(
        &common::root().join("data/demo"),
        &ReadOptions::default(),
        0.1,
        0,
    )
    .unwrap();
    let split = &data.train;
    let written = ctx.write_entry(split, &spec(), HIDDEN, |_, _| ExampleFeatures {
        states: vec![0.0; 3],
        pooled: vec![0.0; HIDDEN],
    });
    let Err(err) = written.map(|f| f.len()) else {
        panic!("features of the wrong size were written")
    };
    let err = err.to_string();
    let first = &split.examples[0].origin;
    let at = format!("{}:{}", first.file.display(), first.line);
    assert!(err.contains(&at), "{err} should name {at}");
    let key = ctx.key(split, &spec());
    assert!(!cache.join(&key).exists(), "no entry may be left: {err}");
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert!(left.is_empty(), "no temporary entry may be left: {left:?}");
}
