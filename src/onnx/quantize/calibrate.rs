//! Calibration: per-channel activation statistics from the fp32 model on sample sentences.

use std::collections::HashMap;
use std::path::Path;

use super::error::QuantizeError;
use super::options::ActivationStats;
use super::rewrite::weight_matmuls;
use super::scratch::temp_dir;
use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph;
use crate::graph::proto::{tensor_proto::DataType, type_proto, ModelProto, TypeProto};
use crate::graph::{load_model, save_model};
use crate::progress::Progress;

/// Calibration rows kept per activation for choosing the smoothing strength.
pub const SAMPLE_ROWS: usize = 192;

/// Runs the fp32 model on calibration sentences with every weight-MatMul input exposed, and
/// collects per-channel max |x| over real (unpadded) tokens, plus sampled rows. With `progress`,
/// the sentences done are shown on stderr.
pub fn activation_stats(
    fp32_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    alpha: f32,
    threads: Option<usize>,
    progress: bool,
) -> Result<ActivationStats, QuantizeError> {
    let mut model = load_model(fp32_path)?;
    let inputs = expose_matmul_inputs(&mut model)?;
    let dir = temp_dir()?;
    let tmp = dir.path().join("calibration.onnx");
    save_model(&tmp, &model)?;
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(&tmp, &opts)?;
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut stats = ActivationStats {
        amax: HashMap::new(),
        alpha,
        samples: HashMap::new(),
    };
    let mut token_counter = 0usize;
    let mut bar = Progress::new("calibration", texts.len() as u64, "sentences", progress);
    for chunk in texts.chunks(32) {
        let b = EncoderBatch::tokenize(tokenizer, chunk, 128)?;
        let outs = runtime::run_encoder(&mut s, &b, &names)?;
        for (name, o) in names.iter().zip(outs) {
            add_batch(&mut stats, name, &o, &b.attention_mask, token_counter);
        }
        token_counter += b.attention_mask.iter().filter(|&&m| m != 0).count();
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    drop(s);
    drop(dir);
    Ok(stats)
}

/// Makes the activation (first input) of every weight MatMul a graph output; returns their names,
/// sorted.
fn expose_matmul_inputs(model: &mut ModelProto) -> Result<Vec<String>, QuantizeError> {
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| QuantizeError::graph("model has no graph"))?;
    let mut inputs: Vec<String> = weight_matmuls(model)
        .iter()
        .map(|&(ni, _)| g.node[ni].input[0].clone())
        .collect();
    inputs.sort();
    inputs.dedup();
    if let Some(g) = model.graph.as_mut() {
        let have: std::collections::HashSet<String> =
            g.output.iter().filter_map(|o| o.name.clone()).collect();
        for x in inputs.iter().filter(|x| !have.contains(*x)) {
            let mut vi = graph::value_info(x, DataType::Float, &[]);
            if let Some(TypeProto {
                value: Some(type_proto::Value::TensorType(t)),
                ..
            }) = vi.r#type.as_mut()
            {
                t.shape = None;
            }
            g.output.push(vi);
        }
    }
    Ok(inputs)
}

/// Adds one batch's activation `o` of `name`: the per-channel max |x| over real tokens, and every
/// 7th real token's row (counted over the whole run from `token_counter`) up to [`SAMPLE_ROWS`].
fn add_batch(
    stats: &mut ActivationStats,
    name: &str,
    o: &runtime::FloatOutput,
    mask: &[i64],
    token_counter: usize,
) {
    let k = o.shape.last().copied().unwrap_or(0);
    if k == 0 || o.data.len() != mask.len() * k {
        return;
    }
    let e = stats
        .amax
        .entry(name.to_string())
        .or_insert_with(|| vec![0f32; k]);
    let smp = stats.samples.entry(name.to_string()).or_default();
    let real = mask.iter().enumerate().filter(|(_, &m)| m != 0);
    for (counter, (t, _)) in (token_counter..).zip(real) {
        let row = &o.data[t * k..(t + 1) * k];
        for (a, &v) in e.iter_mut().zip(row) {
            *a = a.max(v.abs());
        }
        if counter.is_multiple_of(7) && smp.len() < SAMPLE_ROWS * k {
            smp.extend_from_slice(row);
        }
    }
}
