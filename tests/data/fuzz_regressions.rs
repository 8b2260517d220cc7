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

/// What edgetune reads of a backbone ONNX file, as the `onnx_model` target calls it; errors are
/// fine, panics are not.
fn read_like_a_backbone(model: &edgetune::graph::proto::ModelProto) {
    if let Some(g) = &model.graph {
        let _ = edgetune::graph::walk::topological_order(g);
        for t in &g.initializer {
            let _ = edgetune::graph::tensor_to_f32(t);
            let _ = edgetune::graph::tensor_to_i64(t);
        }
        let _ = edgetune::graph::prune(&mut g.clone());
    }
    let _ = edgetune::graph::count_layers(model);
    if let Ok(tensors) = edgetune::graph::hidden::hidden_state_tensors(model) {
        let _ = edgetune::graph::expose_hidden_states(&mut model.clone(), &[0, tensors.len() - 1]);
    }
}

/// `num_layers_overflow.onnx`: metadata claiming `usize::MAX` layers overflowed `2L + 1` when the
/// hidden states were looked up by their LayerNormalization nodes. `initializer_dims_overflow.onnx`:
/// an initializer whose dims multiply past `usize` overflowed its element count.
#[test]
fn onnx_sizes_from_the_file_cannot_overflow() {
    for (path, bytes) in inputs("onnx_model") {
        let model = edgetune::graph::decode_model(&bytes).expect("a valid protobuf");
        read_like_a_backbone(&model);
        if path.ends_with("num_layers_overflow.onnx") {
            assert_eq!(edgetune::graph::count_layers(&model).unwrap(), usize::MAX);
            let err = edgetune::graph::hidden::hidden_state_tensors(&model)
                .expect_err("no such number of LayerNormalization nodes");
            assert!(err.to_string().contains("LayerNormalization"), "{err}");
        }
    }
    let huge = edgetune::graph::tensor("w", &[i64::MAX, i64::MAX, 2], &[0.0f32; 4]);
    assert_eq!(edgetune::graph::tensor_numel(&huge), usize::MAX);
    let err = edgetune::graph::tensor_to_f32(&huge).expect_err("4 values for those dims");
    assert!(err.to_string().contains("4 values"), "{err}");
    let empty = edgetune::graph::tensor::<f32>("e", &[i64::MAX, 0], &[]);
    assert_eq!(
        edgetune::graph::tensor_to_f32(&empty).unwrap(),
        Vec::<f32>::new()
    );
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
