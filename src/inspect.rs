//! What a run folder, a model folder or a merged model holds, without running anything: tasks and
//! labels, the backbone and its hashes, quantization, parameter counts, training settings and
//! metrics, a graph's inputs and outputs with their shapes (`edgetune inspect`).
//!
//! [`inspect`] decides what `path` is: a folder with `config.json` is a run, a folder with
//! `manifest.json` a model folder, an `.onnx` file with edgetune's merged-model metadata a merged
//! model (any other `.onnx` file is described as a plain graph). [`Inspection`] serializes to one
//! JSON object and renders as text ([`Inspection::text`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::data::TaskKind;
use crate::fsutil;
use crate::graph::proto::tensor_proto::DataType;
use crate::graph::proto::{ModelProto, ValueInfoProto};
use crate::graph::{decode_model, metadata_value, model_metadata, value_info_shape, Dim};
use crate::metrics::Metrics;
use crate::onnx::import::{Manifest, MANIFEST_FILE};
use crate::onnx::merged::{MergedMeta, MAX_MODEL_BYTES, META_FORMAT};
use crate::run::{self, RunConfig, CONFIG_FILE};

/// Errors of [`inspect`]: each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The path is none of the things `inspect` reads.
    #[error("{path}: {message}")]
    Unknown {
        /// The path given.
        path: PathBuf,
        /// Why it was not recognised.
        message: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it claims to be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> InspectError + '_ {
    move |source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> InspectError {
    InspectError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A task: name, kind and labels (the index of a label is its class id).
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    /// The task's name.
    pub name: String,
    /// `sentence`, `spans` or `tokens`.
    pub kind: TaskKind,
    /// Its labels in class-id order.
    pub labels: Vec<String>,
}

/// A graph input or output.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    /// Its name.
    pub name: String,
    /// Element type (`float`, `int64`, ...).
    pub dtype: String,
    /// Dimensions: a number, or the name of a dynamic dimension.
    pub shape: Vec<String>,
}

/// Parameters (initializer values) of a graph or a weights file, by element type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ParamCount {
    /// All values.
    pub total: u64,
    /// Values per element type (`float`, `int8`, ...).
    pub by_dtype: BTreeMap<String, u64>,
    /// Tensors.
    pub tensors: usize,
}

/// Quantization as seen in a graph: the int8 operators it holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuantOps {
    /// `MatMulInteger` nodes (dynamic int8 weight MatMuls as edgetune writes them).
    pub matmul_integer: usize,
    /// `DynamicQuantizeLinear` nodes (activations quantized at run time).
    pub dynamic_quantize_linear: usize,
    /// Fused int8 MatMuls (`DynamicQuantizeMatMul`, `MatMulIntegerToFloat`), as other tools write them.
    pub fused_int8_matmuls: usize,
    /// Plain float `MatMul` nodes.
    pub float_matmuls: usize,
    /// `int8`/`uint8` when any int8 operator is present, else `fp32`.
    pub precision: String,
}

/// An ONNX file.
#[derive(Debug, Clone, Serialize)]
pub struct GraphSummary {
    /// The file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// Producer and opset.
    pub producer: String,
    /// Default-domain opset.
    pub opset: i64,
    /// Inputs with shapes.
    pub inputs: Vec<Port>,
    /// Outputs with shapes.
    pub outputs: Vec<Port>,
    /// Parameters.
    pub parameters: ParamCount,
    /// Int8 operators.
    pub quantization: QuantOps,
    /// The model's metadata (`edgetune.*` keys and others).
    pub metadata: BTreeMap<String, String>,
}

/// A run folder.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The folder.
    pub path: PathBuf,
    /// Run format.
    pub format: u32,
    /// The edgetune that wrote it.
    pub edgetune_version: String,
    /// Tasks and labels.
    pub tasks: Vec<TaskSummary>,
    /// The backbone and its hashes, as recorded.
    pub backbone: run::BackboneRef,
    /// Hidden states the heads read.
    pub head_states: Vec<usize>,
    /// Fine-tuned top layers (`first..L`), if any.
    pub top_layers: Option<(usize, usize)>,
    /// Parameters of the weights file, by task (the first part of each tensor's name).
    pub parameters: ParamCount,
    /// Parameters per task or part.
    pub parameters_by_part: BTreeMap<String, u64>,
    /// Training settings (the history is left out; see `epochs`).
    pub training: Value,
    /// Validation score and loss per epoch: `(epoch, loss, score)`.
    pub epochs: Vec<(usize, f64, f64)>,
    /// Metrics by split.
    pub metrics: BTreeMap<String, Metrics>,
    /// `report.html`, when the run has one.
    pub report: Option<PathBuf>,
}

/// A model folder (written by `edgetune import`, maybe quantized).
#[derive(Debug, Clone, Serialize)]
pub struct ModelDirInfo {
    /// The folder.
    pub path: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// Every `.onnx` file of the folder.
    pub graphs: Vec<GraphSummary>,
    /// Whether each file's hash matches the manifest's (`None`: the manifest does not list it).
    pub hashes_match: BTreeMap<String, Option<bool>>,
}

/// A merged model (`edgetune export`).
#[derive(Debug, Clone, Serialize)]
pub struct MergedInfo {
    /// Merged-model format.
    pub format: u32,
    /// Tasks and labels, in output order.
    pub tasks: Vec<TaskSummary>,
    /// Truncation length in tokens.
    pub max_tokens: usize,
    /// Pad id of `input_ids`.
    pub pad_id: Option<u32>,
    /// SHA-256 of the tokenizer the model expects.
    pub tokenizer_sha256: String,
    /// Whether `tokenizer.json` beside the model has that hash (`None`: no such file).
    pub tokenizer_matches: Option<bool>,
    /// The graph.
    pub graph: GraphSummary,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inspection {
    /// A run folder.
    Run(Box<RunInfo>),
    /// A model folder.
    ModelDir(Box<ModelDirInfo>),
    /// A merged model.
    Merged(Box<MergedInfo>),
    /// Any other ONNX file.
    Graph(Box<GraphSummary>),
}

/// Describes `path`: a run folder, a model folder, a merged model or another ONNX file.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    if path.is_dir() {
        if path.join(CONFIG_FILE).is_file() {
            return inspect_run(path).map(|r| Inspection::Run(Box::new(r)));
        }
        if path.join(MANIFEST_FILE).is_file() {
            return inspect_model_dir(path).map(|m| Inspection::ModelDir(Box::new(m)));
        }
        return Err(InspectError::Unknown {
            path: path.to_path_buf(),
            message: format!(
                "a folder without {CONFIG_FILE} (a run) or {MANIFEST_FILE} (a model folder)"
            ),
        });
    }
    if !path.is_file() {
        return Err(InspectError::Unknown {
            path: path.to_path_buf(),
            message: "no such file or folder".into(),
        });
    }
    let (model, graph) = read_graph(path)?;
    if metadata_value(&model, META_FORMAT).is_some() {
        let meta = MergedMeta::read(&model, path).map_err(|e| invalid(path, e.to_string()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tok = dir.join("tokenizer.json");
        let tokenizer_matches = tok
            .is_file()
            .then(|| fsutil::sha256_file(&tok).map(|s| s == meta.tokenizer_sha256))
            .transpose()
            .map_err(io_err(&tok))?;
        return Ok(Inspection::Merged(Box::new(MergedInfo {
            format: meta.format,
            tasks: meta
                .tasks
                .iter()
                .map(|t| TaskSummary {
                    name: t.name.clone(),
                    kind: t.kind,
                    labels: t.labels.clone(),
                })
                .collect(),
            max_tokens: meta.max_tokens,
            pad_id: meta.pad_id,
            tokenizer_sha256: meta.tokenizer_sha256,
            tokenizer_matches,
            graph,
        })));
    }
    Ok(Inspection::Graph(Box::new(graph)))
}

/// Reads an ONNX file (size checked before it is read) and summarizes it.
pub fn read_graph(path: &Path) -> Result<(ModelProto, GraphSummary), InspectError> {
    let bytes_len = std::fs::metadata(path).map_err(io_err(path))?.len();
    if bytes_len > MAX_MODEL_BYTES {
        return Err(invalid(
            path,
            format!("{bytes_len} bytes, over protobuf's 2 GiB limit"),
        ));
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let model =
        decode_model(&bytes).map_err(|e| invalid(path, format!("not an ONNX model: {e}")))?;
    let sha256 = fsutil::sha256_bytes(&bytes);
    drop(bytes);
    let g = model.graph.clone().unwrap_or_default();
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let mut parameters = ParamCount::default();
    for t in &g.initializer {
        let n = t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>();
        parameters.total += n;
        parameters.tensors += 1;
        *parameters
            .by_dtype
            .entry(dtype_name(t.data_type.unwrap_or(0)))
            .or_default() += n;
    }
    let mut q = QuantOps::default();
    for n in &g.node {
        match n.op_type.as_deref().unwrap_or("") {
            "MatMulInteger" => q.matmul_integer += 1,
            "DynamicQuantizeLinear" => q.dynamic_quantize_linear += 1,
            "DynamicQuantizeMatMul" | "MatMulIntegerToFloat" => q.fused_int8_matmuls += 1,
            "MatMul" => q.float_matmuls += 1,
            _ => {}
        }
    }
    q.precision = if q.matmul_integer + q.fused_int8_matmuls > 0 {
        "int8".into()
    } else {
        "fp32".into()
    };
    let ports = |v: &[ValueInfoProto], skip_inits: bool| -> Vec<Port> {
        v.iter()
            .filter(|p| !(skip_inits && inits.contains(p.name.as_deref().unwrap_or(""))))
            .map(port)
            .collect()
    };
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
        .and_then(|o| o.version)
        .unwrap_or(0);
    let summary = GraphSummary {
        file: path.to_path_buf(),
        bytes: bytes_len,
        sha256,
        producer: format!(
            "{} {}",
            model.producer_name.clone().unwrap_or_default(),
            model.producer_version.clone().unwrap_or_default()
        )
        .trim()
        .to_string(),
        opset,
        inputs: ports(&g.input, true),
        outputs: ports(&g.output, false),
        parameters,
        quantization: q,
        metadata: model_metadata(&model).into_iter().collect(),
    };
    Ok((model, summary))
}

fn port(v: &ValueInfoProto) -> Port {
    let (dtype, dims) = value_info_shape(v).unwrap_or((0, Vec::new()));
    Port {
        name: v.name.clone().unwrap_or_default(),
        dtype: dtype_name(dtype),
        shape: dims
            .into_iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Param(p) if p.is_empty() => "?".into(),
                Dim::Param(p) => p,
            })
            .collect(),
    }
}

fn dtype_name(t: i32) -> String {
    DataType::try_from(t)
        .map(|d| d.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| format!("type {t}"))
}

fn inspect_run(dir: &Path) -> Result<RunInfo, InspectError> {
    let rc: RunConfig = run::read_config(dir).map_err(|e| invalid(dir, e.to_string()))?;
    let wpath = dir.join(&rc.weights.file);
    let (parameters, parameters_by_part) = safetensors_params(&wpath)?;
    let epochs = rc
        .training
        .history
        .iter()
        .map(|h| (h.epoch, h.loss, h.valid.score()))
        .collect();
    let mut training = serde_json::to_value(&rc.training).unwrap_or(Value::Null);
    if let Some(o) = training.as_object_mut() {
        o.remove("history");
    }
    let report = dir.join("report.html");
    Ok(RunInfo {
        path: dir.to_path_buf(),
        format: rc.format,
        edgetune_version: rc.edgetune_version.clone(),
        tasks: rc
            .model
            .tasks
            .iter()
            .map(|t| TaskSummary {
                name: t.name.clone(),
                kind: t.kind,
                labels: t.labels.clone(),
            })
            .collect(),
        backbone: rc.backbone.clone(),
        head_states: run::head_states(&rc),
        top_layers: rc
            .top_layers
            .as_ref()
            .map(|t| (t.first, rc.backbone.layers)),
        parameters,
        parameters_by_part,
        training,
        epochs,
        metrics: rc.metrics.clone(),
        report: report.is_file().then_some(report),
    })
}

/// Largest safetensors header read (a run's is a few KiB).
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Parameter counts from a safetensors file's header (the tensors themselves are not read).
fn safetensors_params(path: &Path) -> Result<(ParamCount, BTreeMap<String, u64>), InspectError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut head = [0u8; 8];
    f.read_exact(&mut head).map_err(io_err(path))?;
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER_BYTES || n + 8 > len {
        return Err(invalid(
            path,
            format!("safetensors header of {n} bytes in a file of {len}"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    let header: BTreeMap<String, Value> = serde_json::from_slice(&buf)
        .map_err(|e| invalid(path, format!("safetensors header: {e}")))?;
    let mut count = ParamCount::default();
    let mut parts: BTreeMap<String, u64> = BTreeMap::new();
    for (name, t) in &header {
        if name == "__metadata__" {
            continue;
        }
        let shape = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(path, format!("tensor `{name}` has no shape")))?;
        let numel = shape
            .iter()
            .map(|d| d.as_u64().unwrap_or(0))
            .product::<u64>();
        let dtype = t
            .get("dtype")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_ascii_lowercase();
        count.total += numel;
        count.tensors += 1;
        *count.by_dtype.entry(dtype).or_default() += numel;
        let part = name.split('.').next().unwrap_or(name).to_string();
        *parts.entry(part).or_default() += numel;
    }
    Ok((count, parts))
}

fn inspect_model_dir(dir: &Path) -> Result<ModelDirInfo, InspectError> {
    let manifest = Manifest::load(dir).map_err(|e| invalid(dir, e.to_string()))?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
        .collect();
    names.sort();
    let mut graphs = Vec::new();
    let mut hashes_match = BTreeMap::new();
    for p in names {
        let (_, g) = read_graph(&p)?;
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        hashes_match.insert(
            name.clone(),
            manifest.files.get(&name).map(|h| *h == g.sha256),
        );
        graphs.push(g);
    }
    let tok = dir.join("tokenizer.json");
    if tok.is_file() {
        let sha = fsutil::sha256_file(&tok).map_err(io_err(&tok))?;
        hashes_match.insert(
            "tokenizer.json".into(),
            manifest.files.get("tokenizer.json").map(|h| *h == sha),
        );
    }
    Ok(ModelDirInfo {
        path: dir.to_path_buf(),
        manifest,
        graphs,
        hashes_match,
    })
}

fn millions(n: u64) -> String {
    if n >= 100_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}%", 100.0 * v))
        .unwrap_or_else(|| "-".into())
}

fn push_tasks(out: &mut String, tasks: &[TaskSummary]) {
    let _ = writeln!(out, "tasks ({}):", tasks.len());
    for t in tasks {
        let kind = match t.kind {
            TaskKind::Sentence => "sentence",
            TaskKind::Spans => "spans",
            TaskKind::Tokens => "tokens",
        };
        let _ = writeln!(
            out,
            "  {} ({kind}, {} labels): {}",
            t.name,
            t.labels.len(),
            t.labels.join(", ")
        );
    }
}

fn push_params(out: &mut String, what: &str, p: &ParamCount) {
    let by: Vec<String> = p
        .by_dtype
        .iter()
        .map(|(k, v)| format!("{k} {}", millions(*v)))
        .collect();
    let _ = writeln!(
        out,
        "{what}: {} in {} tensors ({})",
        millions(p.total),
        p.tensors,
        by.join(", ")
    );
}

fn push_graph(out: &mut String, g: &GraphSummary, metadata: bool) {
    let _ = writeln!(
        out,
        "file: {} ({:.1} MB)",
        g.file.display(),
        g.bytes as f64 / 1e6
    );
    let _ = writeln!(out, "  sha256: {}", g.sha256);
    let _ = writeln!(out, "  producer: {}, opset {}", g.producer, g.opset);
    let q = &g.quantization;
    let _ = writeln!(
        out,
        "  quantization: {} ({} MatMulInteger, {} DynamicQuantizeLinear, {} fused int8 MatMuls, {} float MatMuls)",
        q.precision, q.matmul_integer, q.dynamic_quantize_linear, q.fused_int8_matmuls, q.float_matmuls
    );
    let mut p = String::new();
    push_params(&mut p, "  parameters", &g.parameters);
    out.push_str(&p);
    for (title, ports) in [("inputs", &g.inputs), ("outputs", &g.outputs)] {
        let _ = writeln!(out, "  {title}:");
        for x in ports.iter() {
            let _ = writeln!(out, "    {} {} [{}]", x.name, x.dtype, x.shape.join(", "));
        }
    }
    if metadata && !g.metadata.is_empty() {
        let _ = writeln!(out, "  metadata:");
        for (k, v) in &g.metadata {
            let v = if v.chars().count() > 100 {
                format!(
                    "{}… ({} bytes)",
                    v.chars().take(100).collect::<String>(),
                    v.len()
                )
            } else {
                v.clone()
            };
            let _ = writeln!(out, "    {k} = {v}");
        }
    }
}

impl Inspection {
    /// The description as readable text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        match self {
            Inspection::Run(r) => run_text(&mut out, r),
            Inspection::ModelDir(m) => model_dir_text(&mut out, m),
            Inspection::Merged(m) => merged_text(&mut out, m),
            Inspection::Graph(g) => {
                let _ = writeln!(out, "ONNX graph (not a merged model)");
                push_graph(&mut out, g, true);
            }
        }
        out
    }
}

/// A run: tasks, backbone, parameters, training and its epochs, metrics per split, the report.
fn run_text(out: &mut String, r: &RunInfo) {
    let _ = writeln!(
        out,
        "run: {} (format {}, edgetune {})",
        r.path.display(),
        r.format,
        r.edgetune_version
    );
    push_tasks(out, &r.tasks);
    let b = &r.backbone;
    let _ = writeln!(
        out,
        "backbone: {} ({} layers, width {}, max {} tokens)",
        b.onnx.display(),
        b.layers,
        b.hidden,
        b.max_tokens
    );
    let _ = writeln!(out, "  sha256: {}", b.onnx_sha256);
    let _ = writeln!(
        out,
        "  tokenizer: {} (sha256 {})",
        b.tokenizer.display(),
        b.tokenizer_sha256
    );
    let _ = writeln!(out, "  heads read hidden states {:?}", r.head_states);
    if let Some((first, l)) = r.top_layers {
        let _ = writeln!(
            out,
            "  fine-tuned layers {first}..{l} (in the weights file)"
        );
    }
    push_params(out, "parameters", &r.parameters);
    for (part, n) in &r.parameters_by_part {
        let _ = writeln!(out, "  {part}: {}", millions(*n));
    }
    let t = &r.training;
    let get = |k: &str| match t.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "training: epochs {} (run {}, kept {}), patience {}, batch {}, lr {}, seed {}, data {}",
        get("epochs"),
        get("epochs_run"),
        get("best_epoch"),
        get("patience"),
        get("batch_size"),
        get("lr"),
        get("seed"),
        get("data")
    );
    for (e, l, s) in &r.epochs {
        let _ = writeln!(
            out,
            "  epoch {e:>3}: loss {l:.4}, valid score {:.2}%",
            100.0 * s
        );
    }
    for (split, m) in &r.metrics {
        push_metrics(out, split, m);
    }
    if let Some(p) = &r.report {
        let _ = writeln!(out, "report: {}", p.display());
    }
}

/// A split's metrics: each task's scores, the all-tasks accuracy.
fn push_metrics(out: &mut String, split: &str, m: &Metrics) {
    let _ = writeln!(out, "metrics on {split} ({} examples):", m.examples);
    for (task, s) in &m.tasks {
        let mut parts = Vec::new();
        if s.accuracy.is_some() {
            parts.push(format!("accuracy {}", pct(s.accuracy)));
        }
        if s.span_f1.is_some() {
            parts.push(format!(
                "span F1 {} (precision {}, recall {})",
                pct(s.span_f1),
                pct(s.precision),
                pct(s.recall)
            ));
        }
        if s.token_accuracy.is_some() {
            parts.push(format!("token accuracy {}", pct(s.token_accuracy)));
        }
        let _ = writeln!(out, "  {task}: {}", parts.join(", "));
    }
    if m.all_tasks_accuracy.is_some() {
        let _ = writeln!(out, "  all tasks: {}", pct(m.all_tasks_accuracy));
    }
}

/// A model folder: architecture, files against the manifest, quantization, graphs.
fn model_dir_text(out: &mut String, m: &ModelDirInfo) {
    let c = &m.manifest.config;
    let _ = writeln!(
        out,
        "model folder: {} ({})",
        m.path.display(),
        m.manifest.format
    );
    let _ = writeln!(
        out,
        "architecture: {} layers, width {}, {} heads, vocabulary {}",
        m.manifest.num_layers, m.manifest.hidden_size, c.num_attention_heads, c.vocab_size
    );
    let _ = writeln!(out, "files (sha256, matches the manifest):");
    for (name, ok) in &m.hashes_match {
        let sha = m
            .manifest
            .files
            .get(name)
            .map(String::as_str)
            .unwrap_or("(not in the manifest)");
        let mark = match ok {
            Some(true) => "ok",
            Some(false) => "DIFFERS",
            None => "-",
        };
        let _ = writeln!(out, "  {name}: {sha} [{mark}]");
    }
    if let Some(q) = m.manifest.extra.get("quantization") {
        let s = &q["summary"];
        let f = &q["fidelity"];
        let count = |v: &Value| v.as_array().map_or(0, Vec::len);
        let _ = writeln!(
                out,
                "quantization (manifest): {} MatMuls int8, {} kept fp32, {} outlier channels; pooled cosine mean {}, min {} on {} sentences",
                count(&s["quantized"]),
                count(&s["kept_fp32"]),
                s["outlier_channels"],
                f["mean_cosine"],
                f["min_cosine"],
                f["sentences"]
            );
    }
    for g in &m.graphs {
        push_graph(out, g, false);
    }
}

/// A merged model: format, tasks, tokenizer, graph.
fn merged_text(out: &mut String, m: &MergedInfo) {
    let _ = writeln!(
        out,
        "merged model (format {}), max {} tokens, pad id {}",
        m.format,
        m.max_tokens,
        m.pad_id.map_or("-".into(), |p| p.to_string())
    );
    push_tasks(out, &m.tasks);
    let tok = match m.tokenizer_matches {
        Some(true) => "tokenizer.json beside it matches",
        Some(false) => "tokenizer.json beside it DIFFERS",
        None => "no tokenizer.json beside it",
    };
    let _ = writeln!(out, "tokenizer sha256: {} ({tok})", m.tokenizer_sha256);
    push_graph(out, &m.graph, true);
}
