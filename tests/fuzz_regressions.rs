//! Inputs that crashed the fuzz targets (`fuzz/regressions/TARGET/`, see `fuzz/README.md`),
//! replayed through the same library entry points: each must now be refused with an error that
//! names the file and the field, never a panic or a wrongly typed task.

use std::fs;
use std::path::{Path, PathBuf};

use edgetune::data::{parse_text, Format, ReadOptions};

/// The regression inputs of fuzz target `target`, with their paths (at least one).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("regression inputs of the text formats are UTF-8")
}

/// A run whose fine-tuned layers have `num_attention_heads: 0` divided by zero when the layers were
/// loaded; `parse_config` now checks that architecture like a checkpoint's `config.json`.
#[test]
fn run_config_with_an_unusable_layer_architecture_is_refused() {
    for (path, bytes) in inputs("run_config") {
        let err = edgetune::run::parse_config(&bytes, &path)
            .expect_err("the run's top_layers.config is not usable");
        let msg = err.to_string();
        assert!(
            msg.contains("top_layers.config") && msg.contains("num_attention_heads"),
            "{}: {msg}",
            path.display()
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}

/// A model whose metadata claims `usize::MAX` layers overflowed `2L + 1` when its hidden states were
/// looked up by their LayerNormalization nodes.
#[test]
fn onnx_layer_count_from_metadata_cannot_overflow() {
    for (path, bytes) in inputs("onnx_model") {
        let model = edgetune::graph::decode_model(&bytes).expect("a valid protobuf");
        let layers = edgetune::graph::count_layers(&model).expect("metadata layer count");
        assert_eq!(layers, usize::MAX, "{}", path.display());
        let err = edgetune::graph::hidden::hidden_state_tensors(&model)
            .expect_err("no such number of LayerNormalization nodes");
        assert!(err.to_string().contains("LayerNormalization"), "{err}");
        let err = edgetune::graph::expose_hidden_states(&mut model.clone(), &[0])
            .expect_err("nothing to expose");
        assert!(err.to_string().contains("LayerNormalization"), "{err}");
    }
}

/// Parses regression input `bytes` of a text format as the fuzz target does (`data_conll`: a first
/// line `# columns: a,b` gives the column names); returns the error message.
fn text_error(format: Format, path: &Path, bytes: &[u8]) -> String {
    let mut body = text(bytes);
    let mut opts = ReadOptions::format(Some(format));
    if let Some(rest) = body.strip_prefix("# columns: ") {
        let (names, rest) = rest.split_once('\n').unwrap_or((rest, ""));
        opts.columns = Some(names.split(',').map(str::to_string).collect());
        body = rest;
    }
    match parse_text(path, format, body, &opts) {
        Ok(examples) => panic!("{}: accepted as {examples:?}", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            msg
        }
    }
}

/// `tags` as a sentence label or `intent` as per-word labels were accepted as tasks of the wrong
/// kind (a sentence task `tags` escaped the BIO check, and both names mean one kind to eval,
/// infer and the merged model).
#[test]
fn intent_and_tags_keep_their_kind_in_every_format() {
    for (format, target, needle) in [
        (Format::Jsonl, "data_jsonl", "field \""),
        (Format::Tsv, "data_tsv", "header: `tags`"),
        (Format::Csv, "data_csv", "header: `tags`"),
        (Format::Conll, "data_conll", "--columns: `intent`"),
    ] {
        for (path, bytes) in inputs(target) {
            let msg = text_error(format, &path, &bytes);
            assert!(msg.contains(needle), "{}: {msg}", path.display());
        }
    }
    let jsonl = inputs("data_jsonl");
    let messages: Vec<String> = jsonl
        .iter()
        .map(|(p, b)| text_error(Format::Jsonl, p, b))
        .collect();
    assert!(messages
        .iter()
        .any(|m| m.contains("field \"tags\": expected an array of strings")));
    assert!(messages
        .iter()
        .any(|m| m.contains("field \"intent\": expected a string")));
}
