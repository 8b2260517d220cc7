//! Embedding edgetune in a Rust program: open a merged model, predict a line, read a slot.
//!
//! `cargo run --example embed --no-default-features -- MODEL.onnx "turn on the kitchen light"`
//! (`tokenizer.json` beside the model, as `edgetune export` writes it; ONNX Runtime's library
//! from `$EDGETUNE_ORT_LIB`, beside the executable, or set-up's `.runtime/`).

use edgetune::{MergedModel, Predict, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(text)) = (args.next(), args.next()) else {
        return Err("usage: embed MODEL.onnx TEXT".into());
    };
    let mut model = MergedModel::open(path.as_ref(), &SessionOptions::with_threads(1))?;
    let prediction = model.predict(&text)?;
    if let Some((intent, prob)) = prediction.intent() {
        println!("intent: {intent} ({prob:.2})");
    }
    for slot in prediction.slots() {
        println!(
            "slot {}: {:?} (words {}..{})",
            slot.kind, slot.text, slot.start, slot.end
        );
    }
    // The same JSON as `edgetune infer --model`.
    println!("{}", serde_json::to_string(&prediction)?);
    Ok(())
}
