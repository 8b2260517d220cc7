//! The fleet's task spec: what every device's heads must share for their tensors to be averaged.
//! The server fixes it (`fleet/edgetune_fleet/spec.py` computes it from the seed run) and sends it
//! with every round as JSON under [`SPEC_KEY`]; a device compares it with its own run's and refuses
//! a mismatch, naming the part and both values.
//!
//! ```json
//! {"backbone": {"onnx_sha256", "tokenizer_sha256", "layers", "hidden", "max_tokens"},
//!  "features": {"states": [3, 4, 5, 6], "unit": "words"},
//!  "model": {"backbone_width", "mixed_states", "tasks": [{"name", "kind", "labels", "head"}]},
//!  "tensors": [["intent.mix.weights", [4]], ...]}
//! ```
//!
//! `model` is the run's `config.json` `model` with every `dropout` removed (a training setting,
//! not part of what the heads compute); `tensors` lists the head tensors in the order they travel
//! (sorted by name, as in `heads.safetensors`).

use serde_json::{json, Value};

use crate::model::TaskModel;
use crate::run::RunConfig;

/// The config key of the spec in a round's instructions.
pub const SPEC_KEY: &str = "edgetune.spec";

/// The spec of a run (`rc`, its `model`).
pub fn spec_of(rc: &RunConfig, model: &TaskModel) -> Result<Value, String> {
    if rc.top_layers.is_some() {
        return Err(
            "the run fine-tuned backbone layers (--unfreeze-top); a fleet averages heads on a \
             frozen backbone only"
                .into(),
        );
    }
    let mut m = serde_json::to_value(&rc.model).map_err(|e| e.to_string())?;
    strip_dropout(&mut m);
    let mut tensors: Vec<(String, Vec<usize>)> = model
        .params
        .params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().dims().to_vec()))
        .collect();
    tensors.sort();
    Ok(json!({
        "backbone": {
            "onnx_sha256": rc.backbone.onnx_sha256,
            "tokenizer_sha256": rc.backbone.tokenizer_sha256,
            "layers": rc.backbone.layers,
            "hidden": rc.backbone.hidden,
            "max_tokens": rc.backbone.max_tokens,
        },
        "features": serde_json::to_value(&rc.features).map_err(|e| e.to_string())?,
        "model": m,
        "tensors": tensors,
    }))
}

fn strip_dropout(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("dropout");
            map.values_mut().for_each(strip_dropout);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_dropout),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) if s.len() == 64 => s[..12].to_string(),
        other => other.to_string(),
    };
    if s.len() > 160 {
        format!("{}...", &s[..160])
    } else {
        s
    }
}

/// `Ok` when the server's spec (`server`, JSON) equals this device's (`own`); else the first
/// difference, with the server's and the device's values.
pub fn check(server: &str, own: &Value) -> Result<(), String> {
    let server: Value =
        serde_json::from_str(server).map_err(|e| format!("the server's spec is not JSON: {e}"))?;
    if &server == own {
        return Ok(());
    }
    for (key, what) in [
        ("backbone", "backbone"),
        ("features", "hidden states the heads read"),
    ] {
        for (field, sv) in server[key].as_object().into_iter().flatten() {
            let ov = &own[key][field];
            if sv != ov {
                return Err(format!(
                    "{what}: {key}.{field} is {} on the server, {} on this device",
                    short(sv),
                    short(ov)
                ));
            }
        }
    }
    let (st, ot) = (&server["model"]["tasks"], &own["model"]["tasks"]);
    let names = |t: &Value| -> Vec<String> {
        t.as_array()
            .into_iter()
            .flatten()
            .map(|x| x["name"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    if names(st) != names(ot) {
        return Err(format!(
            "tasks: the server's are {:?}, this device's {:?}",
            names(st),
            names(ot)
        ));
    }
    for (s, o) in st
        .as_array()
        .into_iter()
        .flatten()
        .zip(ot.as_array().into_iter().flatten())
    {
        let name = s["name"].as_str().unwrap_or("?");
        for field in ["kind", "labels", "head"] {
            if s[field] != o[field] {
                return Err(format!(
                    "task `{name}`: {field} is {} on the server, {} on this device",
                    short(&s[field]),
                    short(&o[field])
                ));
            }
        }
    }
    if server["model"] != own["model"] {
        return Err(format!(
            "head architecture: the server's is {}, this device's {}",
            short(&server["model"]),
            short(&own["model"])
        ));
    }
    if server["tensors"] != own["tensors"] {
        return Err(format!(
            "head tensors: the server's are {}, this device's {}",
            short(&server["tensors"]),
            short(&own["tensors"])
        ));
    }
    Err(format!(
        "the specs differ: server {}, device {}",
        short(&server),
        short(own)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(labels: &[&str], sha: &str) -> Value {
        json!({
            "backbone": {"onnx_sha256": sha, "tokenizer_sha256": "t", "layers": 6, "hidden": 384, "max_tokens": 128},
            "features": {"states": [3, 4], "unit": "words"},
            "model": {"backbone_width": 384, "mixed_states": 2, "tasks": [
                {"name": "intent", "kind": "sentence", "labels": labels, "head": {"sentence": {"mlp_width": 256}}}]},
            "tensors": [["intent.out.weight", [9, 256]]],
        })
    }

    #[test]
    fn names_the_difference() {
        let own = spec(&["a", "b"], &"1".repeat(64));
        assert!(check(&own.to_string(), &own).is_ok());
        let e = check(&spec(&["a", "c"], &"1".repeat(64)).to_string(), &own).unwrap_err();
        assert!(
            e.contains("task `intent`: labels is [\"a\",\"c\"] on the server"),
            "{e}"
        );
        let e = check(&spec(&["a", "b"], &"2".repeat(64)).to_string(), &own).unwrap_err();
        assert!(
            e.contains("backbone.onnx_sha256 is 222222222222 on the server, 111111111111"),
            "{e}"
        );
        assert!(check("{", &own).is_err());
    }

    #[test]
    fn dropout_is_not_part_of_the_spec() {
        let mut v = json!({"tasks": [{"head": {"sentence": {"mlp_width": 8, "dropout": 0.1}}}]});
        strip_dropout(&mut v);
        assert_eq!(
            v,
            json!({"tasks": [{"head": {"sentence": {"mlp_width": 8}}}]})
        );
    }
}
