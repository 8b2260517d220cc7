//! A composed cache entry (a split plus appended examples, made of cached parts) reads exactly as
//! its parts, without copying them; it stands for the whole split, and is rebuilt by extraction
//! when a part is gone.
#![cfg(feature = "real-model")]

use crate::support as common;

use edgetune::backbone::{ModelFiles, SessionOptions};
use edgetune::data::{read_file_split, ReadOptions, Split};
use edgetune::features::{FeatureContext, FeatureSpec, Unit};

fn context(cache: &std::path::Path) -> FeatureContext {
    let mut ctx = FeatureContext::new(
        ModelFiles::from_arg(None).expect("the default model"),
        None,
        SessionOptions::with_threads(2),
        cache.to_path_buf(),
    )
    .unwrap();
    ctx.progress = false;
    ctx
}

fn part(all: &Split, range: std::ops::Range<usize>) -> Split {
    Split {
        examples: all.examples[range].to_vec(),
        ..all.clone()
    }
}

#[test]
fn composed_features_equal_extracted_ones() {
    common::require_setup();
    edgetune::backbone::init_runtime(None).unwrap();
    let valid = read_file_split(
        &common::root().join("data/demo/valid.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap();
    let (a, b) = (part(&valid, 0..6), part(&valid, 6..8));
    let whole = Split {
        examples: [a.examples.clone(), b.examples.clone(), b.examples.clone()].concat(),
        ..valid.clone()
    };
    let spec = FeatureSpec {
        states: vec![3, 6],
        unit: Unit::Words,
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ctx = context(one.path());
    let composed = ctx.compose(&[&a, &b, &b], &spec).unwrap();
    assert_eq!(composed.meta.examples, 10);
    assert_eq!(composed.meta.parts.len(), 3);
    assert!(
        !composed.dir.join("states.f16").exists(),
        "a composed entry holds no states"
    );
    assert_eq!(composed.meta.key, ctx.key(&whole, &spec));
    // The whole split now opens as the composed entry.
    let reopened = ctx.load_or_extract(&whole, &spec).unwrap();
    assert_eq!(reopened.meta.parts, composed.meta.parts);

    // Extracting the whole split (elsewhere) gives the same layout. (Not the same values: the
    // int8 backbone's activation scales depend on the batch a sentence is extracted in.)
    let mut other = context(two.path());
    let extracted = other.load_or_extract(&whole, &spec).unwrap();
    assert!(extracted.meta.parts.is_empty());
    assert_eq!(composed.meta.rows, extracted.meta.rows);
    assert_eq!(composed.meta.word_tokens, extracted.meta.word_tokens);
    assert_eq!(composed.meta.tokens, extracted.meta.tokens);
    // Row for row, the composed entry is its parts' cached features.
    let (pa, pb) = (
        ctx.load_or_extract(&a, &spec).unwrap(),
        ctx.load_or_extract(&b, &spec).unwrap(),
    );
    let (mut x, mut y, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..10 {
        let (src, j) = if i < 6 { (&pa, i) } else { (&pb, (i - 6) % 2) };
        composed.read_rows(i, &mut x, &mut scratch).unwrap();
        src.read_rows(j, &mut y, &mut scratch).unwrap();
        assert_eq!(x, y, "example {i}");
        assert_eq!(composed.pooled(i), src.pooled(j), "example {i}");
        assert_eq!(composed.meta.word_tokens[i], src.meta.word_tokens[j]);
    }
    assert_eq!(composed.disk_bytes(), pa.disk_bytes() + 2 * pb.disk_bytes());

    // A composed entry whose part is gone is rebuilt by extraction, not used.
    std::fs::remove_dir_all(one.path().join(&composed.meta.parts[1])).unwrap();
    let rebuilt = ctx.load_or_extract(&whole, &spec).unwrap();
    assert!(rebuilt.meta.parts.is_empty());
    for i in 0..10 {
        rebuilt.read_rows(i, &mut x, &mut scratch).unwrap();
        extracted.read_rows(i, &mut y, &mut scratch).unwrap();
        assert_eq!(
            x, y,
            "example {i}: the same extraction gives the same features"
        );
    }
}
