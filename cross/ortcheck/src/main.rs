//! `ortcheck LIB MODEL.onnx [THREADS]`: load ONNX Runtime from LIB, run MODEL on one fixed BERT-style
//! input (batch 1, 8 tokens: "[CLS] hello world ! this is a [SEP]" in the uncased BERT vocabulary),
//! print one JSON object: library, architecture, the first output's name, shape and all values.
//! Exit code 0 on success, 1 with a message on stderr otherwise.

use std::fmt::Write as _;

use ort::session::Session;
use ort::value::Tensor;

const IDS: [i64; 8] = [101, 7592, 2088, 999, 2023, 2003, 1037, 102];

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        return Err("usage: ortcheck LIB MODEL.onnx [THREADS]".into());
    }
    let (lib, model) = (&args[0], &args[1]);
    let threads: usize = args.get(2).map(|t| t.parse().map_err(|e| format!("THREADS: {e}"))).transpose()?.unwrap_or(1);
    let env = ort::init_from(lib)
        .map_err(|e| format!("loading {lib}: {e}"))?
        .with_name("ortcheck")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("creating the environment: {e}"))?;
    let mut session = Session::builder(&env)
        .map_err(|e| format!("session builder: {e}"))?
        .with_intra_threads(threads)
        .map_err(|e| format!("session options: {e}"))?
        .commit_from_file(model)
        .map_err(|e| format!("loading {model}: {e}"))?;
    let n = IDS.len();
    let mut inputs: Vec<(String, Tensor<i64>)> = Vec::new();
    for input in session.inputs() {
        let data: Vec<i64> = match input.name() {
            "input_ids" => IDS.to_vec(),
            "attention_mask" => vec![1; n],
            "token_type_ids" => vec![0; n],
            other => return Err(format!("unexpected model input {other:?}")),
        };
        let t = Tensor::from_array(([1usize, n], data)).map_err(|e| format!("input tensor: {e}"))?;
        inputs.push((input.name().to_string(), t));
    }
    let out_name = session.outputs().first().ok_or("model has no outputs")?.name().to_string();
    let outputs = session.run(inputs).map_err(|e| format!("running {model}: {e}"))?;
    let (shape, values) = outputs[out_name.as_str()]
        .try_extract_tensor::<f32>()
        .map_err(|e| format!("output {out_name}: {e}"))?;
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"arch\":\"{}\",\"ort_lib\":{:?},\"output\":{:?},\"shape\":{:?},\"values\":[",
        std::env::consts::ARCH,
        lib,
        out_name,
        shape.iter().copied().collect::<Vec<i64>>()
    );
    for (i, v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(format!("output {out_name}[{i}] is not finite: {v}"));
        }
        let _ = write!(json, "{}{v:e}", if i == 0 { "" } else { "," });
    }
    json.push_str("]}");
    Ok(json)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ortcheck: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
