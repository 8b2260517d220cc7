//! The feature cache with the real backbone: reused when nothing changed, rebuilt when anything it
//! depends on changed or when an entry is damaged; its rows match a direct backbone run.

#![cfg(feature = "real-model")]

use crate::support as common;

use edgetune::backbone::{ModelFiles, SessionOptions};
use edgetune::data::Split;
use edgetune::features::{FeatureContext, FeatureSpec, Unit};

fn split(texts: &[&str]) -> Split {
    common::text_split("t", texts)
}

fn ctx(cache: &std::path::Path, max_tokens: Option<usize>) -> FeatureContext {
    ctx_with(cache, max_tokens, &common::root().join(".models/default"))
}

/// A context on a given backbone (a model directory or .onnx file).
fn ctx_with(
    cache: &std::path::Path,
    max_tokens: Option<usize>,
    model: &std::path::Path,
) -> FeatureContext {
    edgetune::backbone::init_runtime(None).unwrap();
    let files = ModelFiles::resolve(model).unwrap();
    let mut c = FeatureContext::new(
        files,
        max_tokens,
        SessionOptions::with_threads(1),
        cache.to_path_buf(),
    )
    .unwrap();
    c.progress = false;
    c
}

#[test]
fn cache_is_keyed_by_content_and_rebuilt_when_stale_or_damaged() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let spec = FeatureSpec {
        states: vec![5, 6],
        unit: Unit::Words,
    };
    let s = split(&[
        "turn on the kitchen lights",
        "play jazz",
        "what is the weather in paris tomorrow",
    ]);
    let mut c = ctx(tmp.path(), None);
    let f1 = c.load_or_extract(&s, &spec).unwrap();
    assert_eq!(f1.meta.rows, vec![5, 2, 7]);
    let states = f1.dir.join("states.f16");
    let mtime = std::fs::metadata(&states).unwrap().modified().unwrap();

    // Unchanged: the same entry, not recomputed.
    let f2 = c.load_or_extract(&s, &spec).unwrap();
    assert_eq!(f2.dir, f1.dir);
    assert_eq!(
        std::fs::metadata(&states).unwrap().modified().unwrap(),
        mtime
    );

    // Changed text, states or token limit: another key.
    let s2 = split(&[
        "turn on the kitchen lights",
        "play blues",
        "what is the weather in paris tomorrow",
    ]);
    assert_ne!(c.key(&s2, &spec), c.key(&s, &spec));
    assert_ne!(
        c.key(
            &s,
            &FeatureSpec {
                states: vec![6],
                unit: Unit::Words
            }
        ),
        c.key(&s, &spec)
    );
    let c8 = ctx(tmp.path(), Some(8));
    assert_ne!(c8.key(&s, &spec), c.key(&s, &spec));

    // A damaged entry is rebuilt, never reused.
    let mut rows = Vec::new();
    let mut scratch = Vec::new();
    f1.read_rows(2, &mut rows, &mut scratch).unwrap();
    drop((f1, f2));
    std::fs::write(&states, b"garbage").unwrap();
    let f3 = c.load_or_extract(&s, &spec).unwrap();
    let mut rows3 = Vec::new();
    f3.read_rows(2, &mut rows3, &mut scratch).unwrap();
    assert_eq!(rows, rows3);
    // No temp directories are left behind.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn cached_rows_match_a_direct_backbone_run() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let spec = FeatureSpec {
        states: vec![3, 6],
        unit: Unit::Words,
    };
    let s = split(&["set an alarm for seven", "unbelievably loud music"]);
    // The default int8 backbone quantizes activations dynamically, with one scale per MatMul
    // input *per batch*: a sentence extracted in a batch and the same sentence alone differ by int8
    // noise. This test checks alignment and storage exactly, so it uses the fp32 graph of the same
    // model (set-up's import, kept beside the int8 file).
    let fp32 = common::root().join(".models/default/backbone.onnx");
    assert!(
        fp32.is_file(),
        "{} missing: run models/prepare.sh",
        fp32.display()
    );
    let mut c = ctx_with(tmp.path(), None, &fp32);
    let f = c.load_or_extract(&s, &spec).unwrap();
    let toks = c.tokenize(&s).unwrap();
    let b = c.backbone(&spec).unwrap();
    let pos: Vec<usize> = spec
        .states
        .iter()
        .map(|st| b.states.iter().position(|x| x == st).unwrap())
        .collect();
    let last = b.states.iter().position(|&x| x == b.layers).unwrap();
    let out = b.run(&[&toks[1]]).unwrap();
    let direct = edgetune::features::example_rows(&out, 0, &toks[1], &pos, last);
    let mut rows = Vec::new();
    f.read_rows(1, &mut rows, &mut Vec::new()).unwrap();
    assert_eq!(rows.len(), direct.rows.len());
    // The cache stores f16: equal within half precision.
    let max = rows
        .iter()
        .zip(&direct.rows)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(max < 2e-3, "cached rows differ from a direct run by {max}");
    let pd = f
        .pooled(1)
        .iter()
        .zip(&direct.pooled)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(pd < 1e-4, "pooled embedding differs by {pd}");
}
