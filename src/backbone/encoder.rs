//! Running the frozen encoder in ONNX Runtime and returning the hidden states asked for.

use std::path::PathBuf;

use ndarray::{Array2, Array3, ArrayViewD, Ix3};
use ort::session::Session;
use ort::value::TensorRef;

use super::error::BackboneError;
use super::files::ModelFiles;
use super::runtime::{open_session, SessionOptions, SessionSource};
use crate::tokenize::Tokenized;

/// A loaded encoder that returns the hidden states it was asked for.
pub struct Backbone {
    session: Session,
    path: PathBuf,
    /// Hidden size.
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// The hidden states returned by [`Backbone::run`], in this order (0 = embeddings, `layers` = last).
    pub states: Vec<usize>,
    output_names: Vec<String>,
    has_token_types: bool,
    pad_id: u32,
}

/// One batch's outputs.
pub struct BatchStates {
    /// One `[batch, tokens, hidden]` array per requested state, in [`Backbone::states`] order.
    pub states: Vec<Array3<f32>>,
}

impl Backbone {
    /// Loads the model, exposing the requested hidden states as outputs. `states` may include
    /// `layers` (the last hidden state); an empty list means the last one only.
    pub fn load(
        files: &ModelFiles,
        states: &[usize],
        pad_id: u32,
        opts: &SessionOptions,
    ) -> Result<Self, BackboneError> {
        let path = files.onnx.clone();
        let merr = |message: String| BackboneError::Model {
            path: path.clone(),
            message,
        };
        let mut model = crate::graph::load_model(&path).map_err(|e| merr(e.to_string()))?;
        let layers = crate::graph::count_layers(&model).map_err(|e| merr(e.to_string()))?;
        let states: Vec<usize> = if states.is_empty() {
            vec![layers]
        } else {
            states.to_vec()
        };
        if let Some(bad) = states.iter().find(|&&s| s > layers) {
            return Err(merr(format!(
                "hidden state {bad} requested, but the model has {layers} layers (0..={layers})"
            )));
        }
        let lower: Vec<usize> = states.iter().copied().filter(|&s| s < layers).collect();
        let mut names_lower = Vec::new();
        if !lower.is_empty() {
            names_lower = crate::graph::expose_hidden_states(&mut model, &lower)
                .map_err(|e| merr(e.to_string()))?;
        }
        let bytes = prost::Message::encode_to_vec(&model);
        drop(model);
        let session = open_session(SessionSource::Bytes(&bytes, &path), opts)?;
        drop(bytes);
        let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !input_names.contains(&needed) {
                return Err(merr(format!(
                    "model has no input `{needed}` (inputs: {input_names:?})"
                )));
            }
        }
        let has_token_types = input_names.contains(&"token_type_ids");
        if let Some(extra) = input_names
            .iter()
            .find(|n| !["input_ids", "attention_mask", "token_type_ids"].contains(n))
        {
            return Err(merr(format!("unsupported model input `{extra}`")));
        }
        if !session
            .outputs()
            .iter()
            .any(|o| o.name() == "last_hidden_state")
        {
            return Err(merr("model has no output `last_hidden_state`".into()));
        }
        // `expose_hidden_states` returns one output name per requested lower state, in order.
        let mut lower_names = names_lower.into_iter();
        let output_names = states
            .iter()
            .map(|&s| {
                if s == layers {
                    Ok("last_hidden_state".to_string())
                } else {
                    lower_names
                        .next()
                        .ok_or_else(|| merr(format!("hidden state {s} could not be exposed")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut me = Self {
            session,
            path,
            hidden: 0,
            layers,
            states,
            output_names,
            has_token_types,
            pad_id,
        };
        let probe = Tokenized {
            ids: vec![pad_id, pad_id],
            type_ids: vec![0, 0],
            word_tokens: vec![],
            truncated: false,
        };
        me.hidden = me.run(&[&probe])?.states[0].shape()[2];
        Ok(me)
    }

    /// Where each of `states` sits among [`BatchStates::states`], and where the last layer's state
    /// sits; an error names a state that was not requested at load time.
    pub fn positions(&self, states: &[usize]) -> Result<(Vec<usize>, usize), BackboneError> {
        let at = |s: usize| {
            self.states
                .iter()
                .position(|&b| b == s)
                .ok_or_else(|| BackboneError::Model {
                    path: self.path.clone(),
                    message: format!(
                        "hidden state {s} was not loaded with the model (loaded: {:?})",
                        self.states
                    ),
                })
        };
        let positions = states
            .iter()
            .map(|&s| at(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((positions, at(self.layers)?))
    }

    /// Runs one batch, padded to its longest member.
    pub fn run(&mut self, batch: &[&Tokenized]) -> Result<BatchStates, BackboneError> {
        let b = batch.len();
        let t = batch.iter().map(|x| x.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Array2::<i64>::from_elem((b, t), self.pad_id as i64);
        let mut mask = Array2::<i64>::zeros((b, t));
        let mut types = Array2::<i64>::zeros((b, t));
        for (r, x) in batch.iter().enumerate() {
            for (c, (&id, &ty)) in x.ids.iter().zip(&x.type_ids).enumerate() {
                ids[[r, c]] = id as i64;
                mask[[r, c]] = 1;
                types[[r, c]] = ty as i64;
            }
        }
        let rerr = |e: ort::Error| BackboneError::Run {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let ids_v = TensorRef::from_array_view(&ids).map_err(rerr)?;
        let mask_v = TensorRef::from_array_view(&mask).map_err(rerr)?;
        let types_v = TensorRef::from_array_view(&types).map_err(rerr)?;
        let path = self.path.clone();
        let rerr = |e: ort::Error| BackboneError::Run {
            path: path.clone(),
            message: e.to_string(),
        };
        let outputs = if self.has_token_types {
            self.session
                .run(ort::inputs!["input_ids" => ids_v, "attention_mask" => mask_v, "token_type_ids" => types_v])
                .map_err(rerr)?
        } else {
            self.session
                .run(ort::inputs!["input_ids" => ids_v, "attention_mask" => mask_v])
                .map_err(rerr)?
        };
        let mut states = Vec::with_capacity(self.output_names.len());
        for name in &self.output_names {
            let v: ArrayViewD<f32> = outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map_err(rerr)?;
            let v = v
                .into_dimensionality::<Ix3>()
                .map_err(|e| BackboneError::Run {
                    path: path.clone(),
                    message: format!("output `{name}` is not [batch, sequence, hidden]: {e}"),
                })?;
            states.push(v.to_owned());
        }
        Ok(BatchStates { states })
    }
}
