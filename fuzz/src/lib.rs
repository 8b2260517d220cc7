//! The harnesses of edgetune's fuzz targets, one function per target: each hands arbitrary bytes to
//! one of the library's parsers of outside input, exactly as the product calls it, and checks what
//! an accepted input promises (the documented invariants of the parsed value). A panic, an abort
//! or an allocation over [`alloc::HEAP_LIMIT`] is a crash.

pub mod alloc;
pub mod small;

#[global_allocator]
static HEAP: alloc::BoundedAlloc = alloc::BoundedAlloc;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::{Device, Tensor};
use edgetune::backbone::layers::TopLayers;
use edgetune::data::{
    parse_jointbert, parse_text, validate_tag, DataError, Example, Format, ReadOptions, Split,
    TaskKind, INTENT, TAGS,
};
use edgetune::graph;
use edgetune::hf::Weights;
use edgetune::infer::{StreamLine, StreamLineReader, MAX_LINE_BYTES};
use edgetune::model::TaskModel;
use edgetune::nn::{Group, ParamBuilder, ParamSet, WeightSource};
use edgetune::onnx::merged::MergedMeta;
use edgetune::run;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A text file's content as the data loader sees it: UTF-8 (here lossy, so that every input
/// reaches the parser) without a leading byte-order mark.
fn text_of(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}

/// Checks the invariants every loaded split keeps (`edgetune::data::example`): non-empty words
/// without whitespace, one label per word in every token task, non-empty sentence labels, at least
/// one label, the same tasks in every example, BIO tags in `tags`, `intent` a sentence task and
/// `tags` a token task; and that task discovery gives usable label lists.
fn check_examples(result: Result<Vec<Example>, DataError>, format: Format) {
    let examples = match result {
        Ok(e) => e,
        Err(e) => {
            // Every error names the file.
            assert!(
                e.to_string().contains("fuzz"),
                "error without the file: {e}"
            );
            return;
        }
    };
    for e in &examples {
        assert!(!e.words.is_empty(), "{}: no words", e.origin);
        for w in &e.words {
            assert!(
                !w.is_empty() && !w.chars().any(char::is_whitespace),
                "{}: bad word {w:?}",
                e.origin
            );
        }
        assert!(!e.labels.is_empty(), "{}: no labels", e.origin);
        for (task, label) in &e.labels.sentence {
            assert!(
                !label.trim().is_empty(),
                "{}: empty label of {task}",
                e.origin
            );
            assert_ne!(task, TAGS, "{}: `tags` as a sentence task", e.origin);
        }
        for (task, labels) in &e.labels.token {
            assert_eq!(
                labels.len(),
                e.words.len(),
                "{}: {task} labels vs words",
                e.origin
            );
            for l in labels {
                assert!(
                    !l.is_empty() && !l.chars().any(char::is_whitespace),
                    "{}: bad label {l:?} of {task}",
                    e.origin
                );
            }
            if task == TAGS {
                for l in labels {
                    assert!(validate_tag(l).is_ok(), "{}: bad tag {l:?}", e.origin);
                }
            }
            assert_ne!(task, INTENT, "{}: `intent` as a token task", e.origin);
        }
        let first = &examples[0].labels;
        assert!(
            first.sentence.keys().eq(e.labels.sentence.keys())
                && first.token.keys().eq(e.labels.token.keys()),
            "{}: tasks differ from the first example's",
            e.origin
        );
    }
    let split = Split {
        name: "train".into(),
        source: "fuzz".into(),
        format,
        examples,
    };
    for t in split.tasks() {
        assert!(!t.labels.is_empty(), "task {} without labels", t.name);
        let unique: BTreeSet<&String> = t.labels.iter().collect();
        assert_eq!(
            unique.len(),
            t.labels.len(),
            "task {} repeats a label",
            t.name
        );
        if t.kind == TaskKind::Spans {
            assert_eq!(t.labels[0], "O", "span task {} without O first", t.name);
        }
    }
}

/// `parse_text` of a JSON-lines, TSV or CSV file (CoNLL: [`data_conll`]).
pub fn data_text(format: Format, bytes: &[u8]) {
    let text = text_of(bytes);
    let path = Path::new(match format {
        Format::Jsonl => "fuzz/train.jsonl",
        Format::Tsv => "fuzz/train.tsv",
        Format::Csv => "fuzz/train.csv",
        _ => "fuzz/train.txt",
    });
    check_examples(
        parse_text(path, format, &text, &ReadOptions::format(Some(format))),
        format,
    );
}

/// First line of a CoNLL input that gives the column names (`--columns`) instead of being data.
pub const COLUMNS_LINE: &str = "# columns: ";

/// `parse_text` of a CoNLL file; a first line `# columns: word,pos,ner` sets `ReadOptions.columns`.
pub fn data_conll(bytes: &[u8]) {
    let text = text_of(bytes);
    let (columns, body) = match text.strip_prefix(COLUMNS_LINE) {
        Some(rest) => {
            let (names, body) = rest.split_once('\n').unwrap_or((rest, ""));
            (Some(names.split(',').map(str::to_string).collect()), body)
        }
        None => (None, &*text),
    };
    let opts = ReadOptions {
        format: Some(Format::Conll),
        columns,
        text_column: None,
    };
    check_examples(
        parse_text(Path::new("fuzz/train.conll"), Format::Conll, body, &opts),
        Format::Conll,
    );
}

/// `parse_jointbert`: the first byte says which of `seq.out` (bit 0) and `label` (bit 1) exist; the
/// rest is `seq.in`, `seq.out` and `label` separated by NUL bytes.
pub fn data_jointbert(bytes: &[u8]) {
    let Some((&flags, rest)) = bytes.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0).map(text_of);
    let seq_in = parts.next().unwrap_or_default();
    let seq_out = parts.next().unwrap_or_default();
    let label = parts.next().unwrap_or_default();
    check_examples(
        parse_jointbert(
            Path::new("fuzz/train"),
            &seq_in,
            (flags & 1 != 0).then_some(&*seq_out),
            (flags & 2 != 0).then_some(&*label),
        ),
        Format::JointBert,
    );
}

/// Zero-valued tensors of any requested shape: a weights file that holds whatever a config asks
/// for (up to a size a file given to the fuzzer could have).
struct AnyWeights(RefCell<Vec<Vec<f32>>>);

impl WeightSource for AnyWeights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32], String> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= 1 << 16)
            .ok_or_else(|| format!("{name}: {shape:?} is larger than this file"))?;
        let mut held = self.0.borrow_mut();
        held.push(vec![0.0; n]);
        let v: *const Vec<f32> = held.last().expect("just pushed");
        // SAFETY: the vectors are never removed or changed while `self` lives, and a vector's
        // heap buffer does not move when the outer vector grows.
        Ok(unsafe { (*v).as_slice() })
    }
}

/// `run::parse_config` of a run's `config.json` (format 1 or 2). An accepted config must build: its
/// heads (when small enough to build here) and its fine-tuned layers from a weights file that has
/// every tensor they name, run on a tiny input.
pub fn run_config(bytes: &[u8]) {
    let Ok(rc) = run::parse_config(bytes, Path::new("fuzz/run/config.json")) else {
        return;
    };
    let params: usize = (0..rc.model.tasks.len())
        .map(|i| rc.model.head_params(i))
        .sum();
    if params <= 1 << 20 {
        TaskModel::new(rc.model.clone(), 0, &Device::Cpu).expect("a validated model builds");
    }
    let _ = run::head_states(&rc);
    if let Some(t) = &rc.top_layers {
        let source = AnyWeights(RefCell::new(Vec::new()));
        let mut set = ParamSet::default();
        let mut rng = <ChaCha8Rng as SeedableRng>::seed_from_u64(0);
        let mut vb = ParamBuilder::new(&mut set, &mut rng, Group::Layer(0), &Device::Cpu)
            .with_source(&source);
        if let Ok(top) = TopLayers::load(&mut vb, &t.config, t.first) {
            let h = t.config.hidden_size;
            if h <= 256 {
                let x = Tensor::zeros((1, 2, h), candle_core::DType::F32, &Device::Cpu)
                    .expect("small tensor");
                let mask = Tensor::ones((1, 2), candle_core::DType::F32, &Device::Cpu)
                    .expect("small tensor");
                let _ = top.forward(&x, &mask, None);
            }
        }
    }
}

thread_local! {
    static SMALL_MODEL: TaskModel =
        TaskModel::new(small::small_model_config(), 0, &Device::Cpu).expect("the small model builds");
}

/// `run::load_weights` of a run's `heads.safetensors` into the parameters of a small model.
pub fn run_weights(bytes: &[u8]) {
    SMALL_MODEL.with(|m| {
        let _ = run::load_weights(bytes, &m.params, Path::new("fuzz/run/heads.safetensors"));
    });
}

/// `hf::Weights::from_bytes` of a `model.safetensors`, then the lookups the importer and the
/// fine-tuned layers make (names with and without prefixes, shapes checked).
pub fn hf_weights(bytes: &[u8]) {
    let Ok(w) = Weights::from_bytes(bytes, Path::new("fuzz/model.safetensors")) else {
        return;
    };
    let cfg = small::small_bert_config();
    for (name, shape) in [
        ("embeddings.word_embeddings.weight", &[16usize, 4][..]),
        ("embeddings.LayerNorm.weight", &[4][..]),
        ("embeddings.LayerNorm.bias", &[4][..]),
    ] {
        if let Ok(v) = w.get(name, shape) {
            assert_eq!(
                v.len(),
                shape.iter().product::<usize>(),
                "{name}: length vs shape"
            );
        }
    }
    let mut set = ParamSet::default();
    let mut rng = <ChaCha8Rng as SeedableRng>::seed_from_u64(0);
    let mut vb =
        ParamBuilder::new(&mut set, &mut rng, Group::Layer(0), &Device::Cpu).with_source(&w);
    let _ = TopLayers::load(&mut vb, &cfg, 1);
}

/// What edgetune reads of an ONNX model (a backbone to import, quantize, export or run): decoding,
/// opsets, metadata, topological order, layer count, hidden-state tensors and exposing them (on a
/// copy), pruning (on a copy), and initializers as numbers.
pub fn onnx_model(bytes: &[u8]) {
    let Ok(model) = graph::decode_model(bytes) else {
        return;
    };
    let _ = graph::default_opset(&model);
    let _ = graph::model_metadata(&model);
    if let Some(g) = &model.graph {
        let _ = graph::input_ids_dims(g);
        for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
            let _ = graph::value_info_shape(v);
        }
        if let Ok(order) = graph::walk::topological_order(g) {
            let mut seen = vec![false; g.node.len()];
            for &i in &order {
                assert!(
                    !std::mem::replace(&mut seen[i], true),
                    "node {i} ordered twice"
                );
            }
            assert_eq!(order.len(), g.node.len(), "not every node ordered");
        }
        for t in &g.initializer {
            if let Ok(v) = graph::tensor_to_f32(t) {
                assert_eq!(v.len(), graph::tensor_numel(t));
            }
            let _ = graph::tensor_to_i64(t);
        }
        let mut pruned = g.clone();
        let _ = graph::prune(&mut pruned);
    }
    let _ = graph::count_layers(&model);
    if let Ok(tensors) = graph::hidden::hidden_state_tensors(&model) {
        let l = tensors.len() - 1;
        let mut copy = model.clone();
        let states = [0, l / 2, l];
        if let Ok(names) = graph::expose_hidden_states(&mut copy, &states) {
            let g = copy.graph.as_ref().expect("exposed on a graph");
            for n in &names {
                assert!(
                    g.output.iter().any(|o| o.name.as_deref() == Some(n)),
                    "{n} is not an output"
                );
            }
        }
    }
}

/// `MergedMeta::read` of a merged model's metadata (`infer --model`, `bench`, `serve`).
pub fn merged_meta(bytes: &[u8]) {
    let Ok(model) = graph::decode_model(bytes) else {
        return;
    };
    let Ok(meta) = MergedMeta::read(&model, Path::new("fuzz/model.onnx")) else {
        return;
    };
    assert!(!meta.tasks.is_empty());
    assert!((3..=1 << 16).contains(&meta.max_tokens));
    for t in &meta.tasks {
        assert!(!t.labels.is_empty(), "task {} without labels", t.name);
    }
}

/// Bytes repeated up to a length: a long stream from a short input.
struct Repeat<'a> {
    bytes: &'a [u8],
    at: usize,
    left: usize,
}

impl Read for Repeat<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes.is_empty() || self.left == 0 {
            return Ok(0);
        }
        let n = out.len().min(self.left).min(self.bytes.len() - self.at);
        out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at = (self.at + n) % self.bytes.len();
        self.left -= n;
        Ok(n)
    }
}

/// `infer::StreamLineReader` over arbitrary bytes. The first byte sets the line limit (1..=256
/// bytes, or [`MAX_LINE_BYTES`] for 0), the second the read buffer (1..=256 bytes), the third how often the
/// rest is repeated (a stream of up to 192 KiB). Every line is numbered in turn, a text line is at
/// most the limit long and has no line break, and the reader's heap stays within a few lines.
pub fn line_reader(bytes: &[u8]) {
    let [limit, buffer, repeat, rest @ ..] = bytes else {
        return;
    };
    let max = if *limit == 0 {
        MAX_LINE_BYTES
    } else {
        usize::from(*limit)
    };
    let capacity = usize::from(*buffer) + 1;
    let total = (rest.len() * (usize::from(*repeat) + 1)).min(192 << 10);
    let stream = Repeat {
        bytes: rest,
        at: 0,
        left: total,
    };
    let breaks_in = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    let expected_lines = match rest.len() {
        0 => 0,
        n => {
            let breaks = breaks_in(rest) * (total / n) + breaks_in(&rest[..total % n]);
            breaks + usize::from(rest[(total - 1) % n] != b'\n')
        }
    };
    alloc::reset_call_peak();
    let base = alloc::live();
    let mut n = 0;
    for item in StreamLineReader::new(BufReader::with_capacity(capacity, stream), max) {
        let (number, line) = item.expect("reading from memory does not fail");
        n += 1;
        assert_eq!(number, n, "lines numbered in turn");
        if let StreamLine::Text(t) = &line {
            assert!(
                t.len() <= max,
                "line {number}: {} bytes over the limit {max}",
                t.len()
            );
            assert!(!t.contains('\n'), "line {number} holds a line break");
        }
        // The reader's buffer (at most twice the limit as it grows), the line's copy, the read
        // buffer, and this line's message.
        let bound = 3 * max + capacity + 4096;
        assert!(
            alloc::call_peak() - base <= bound,
            "line {number}: {} bytes held for lines of at most {max}",
            alloc::call_peak() - base
        );
    }
    assert_eq!(n, expected_lines, "line count");
}

/// The fuzz targets by name: each one's harness.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("data_jsonl", |b| data_text(Format::Jsonl, b)),
    ("data_conll", data_conll),
    ("data_tsv", |b| data_text(Format::Tsv, b)),
    ("data_csv", |b| data_text(Format::Csv, b)),
    ("data_jointbert", data_jointbert),
    ("run_config", run_config),
    ("run_weights", run_weights),
    ("hf_weights", hf_weights),
    ("onnx_model", onnx_model),
    ("merged_meta", merged_meta),
    ("line_reader", line_reader),
];

/// The harness of target `name`.
pub fn harness(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
