//! Embedding edgetune: open a merged model, predict a line, read a slot. `cargo run --example
//! embed --no-default-features -- MODEL.onnx "turn on the kitchen light"` (`tokenizer.json` beside
//! the model; ONNX Runtime from `$EDGETUNE_ORT_LIB`, beside the executable or set-up's `.runtime/`).

use edgetune::{MergedModel, Predict, SessionOptions};

/// What this program prints for `text`: the intent, the slots, and `infer`'s JSON answer.
pub fn embed(path: &str, text: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut model = MergedModel::open(path.as_ref(), &SessionOptions::with_threads(1))?;
    let prediction = model.predict(text)?;
    let mut out = String::new();
    if let Some((intent, prob)) = prediction.intent() {
        out += &format!("intent: {intent} ({prob:.2})\n");
    }
    for slot in prediction.slots() {
        out += &format!("slot {}: {:?}\n", slot.kind, slot.text);
    }
    Ok(out + &serde_json::to_string(&prediction)? + "\n")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, text] = args.as_slice() else {
        return Err("usage: embed MODEL.onnx TEXT".into());
    };
    print!("{}", embed(path, text)?);
    Ok(())
}
