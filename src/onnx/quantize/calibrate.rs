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
use crate::graph::proto::tensor_proto::DataType;
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
    let inputs: Vec<String> = {
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| QuantizeError::graph("model has no graph"))?;
        let mut v: Vec<String> = weight_matmuls(&model)
            .iter()
            .map(|&(ni, _)| g.node[ni].input[0].clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if let Some(g) = model.graph.as_mut() {
        let have: std::collections::HashSet<String> =
            g.output.iter().filter_map(|o| o.name.clone()).collect();
        for x in &inputs {
            if !have.contains(x) {
                let mut vi = graph::value_info(x, DataType::Float, &[]);
                if let Some(crate::graph::proto::TypeProto {
                    value: Some(crate::graph::proto::type_proto::Value::TensorType(t)),
                    ..
                }) = vi.r#type.as_mut()
                {
                    t.shape = None;
                }
                g.output.push(vi);
            }
        }
    }
    let dir = temp_dir()?;
    let tmp = dir.path().join("calibration.onnx");
    save_model(&tmp, &model)?;
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(&tmp, &opts)?;
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut amax: HashMap<String, Vec<f32>> = HashMap::new();
    let mut samples: HashMap<String, Vec<f32>> = HashMap::new();
    let mut token_counter = 0usize;
    let mut bar = Progress::new("calibration", texts.len() as u64, "sentences", progress);
    for chunk in texts.chunks(32) {
        let b = EncoderBatch::tokenize(tokenizer, chunk, 128)?;
        let outs = runtime::run_encoder(&mut s, &b, &names)?;
        for (name, o) in names.iter().zip(outs) {
            let k = o.shape.last().copied().unwrap_or(0);
            if k == 0 || o.data.len() != b.attention_mask.len() * k {
                continue;
            }
            let e = amax
                .entry(name.to_string())
                .or_insert_with(|| vec![0f32; k]);
            let smp = samples.entry(name.to_string()).or_default();
            let mut counter = token_counter;
            for (t, &m) in b.attention_mask.iter().enumerate() {
                if m != 0 {
                    let row = &o.data[t * k..(t + 1) * k];
                    for (a, &v) in e.iter_mut().zip(row) {
                        *a = a.max(v.abs());
                    }
                    // Every 7th real token, up to SAMPLE_ROWS rows.
                    if counter.is_multiple_of(7) && smp.len() < SAMPLE_ROWS * k {
                        smp.extend_from_slice(row);
                    }
                    counter += 1;
                }
            }
        }
        token_counter += b.attention_mask.iter().filter(|&&m| m != 0).count();
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    drop(s);
    drop(dir);
    Ok(ActivationStats {
        amax,
        alpha,
        samples,
    })
}
