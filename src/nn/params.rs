//! Trainable parameters: a named registry ([`ParamSet`]) and a prefix builder ([`ParamBuilder`]) in
//! the manner of candle's `VarBuilder::pp`, so that a layer's `new`/`load` composes its parameter
//! names from its place in the model (`intent.mix.weights`, `encoder.layer.4.output.dense.bias`).

use std::collections::BTreeMap;

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which part of the model a parameter belongs to: the unit of freezing and of learning rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Group {
    /// The head of task `i` (the index into the model's task list).
    Head(usize),
    /// Transformer layer `i` of the backbone (0-based), when unfrozen.
    Layer(usize),
}

/// A named trainable tensor.
#[derive(Debug, Clone)]
pub struct Param {
    /// The full name (its key in a weights file).
    pub name: String,
    /// What it belongs to.
    pub group: Group,
    /// The tensor.
    pub var: Var,
}

/// All parameters of a model, in creation order (which fixes names and initialisation).
#[derive(Debug, Default, Clone)]
pub struct ParamSet {
    /// The parameters.
    pub params: Vec<Param>,
}

/// How a new parameter is initialised.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Uniform in `[-a, a]`.
    Uniform(f32),
    /// Xavier/Glorot uniform for a `[fan_out, fan_in]` matrix.
    Xavier,
}

impl Init {
    /// `n` values for a tensor of `shape`, drawn from `rng` (nothing is drawn for constants).
    fn values(self, shape: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let n: usize = shape.iter().product();
        match self {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Uniform(a) => (0..n).map(|_| rng.random_range(-a..=a)).collect(),
            Init::Xavier => {
                let fan_out = shape.first().copied().unwrap_or(1) as f32;
                let fan_in = shape.iter().skip(1).product::<usize>() as f32;
                let a = (6.0 / (fan_in + fan_out)).sqrt();
                (0..n).map(|_| rng.random_range(-a..=a)).collect()
            }
        }
    }
}

impl ParamSet {
    /// Registers `tensor` as a trainable parameter and returns the tensor that tracks it.
    pub fn push(&mut self, name: String, group: Group, tensor: &Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(tensor)?;
        let t = var.as_tensor().clone();
        self.params.push(Param { name, group, var });
        Ok(t)
    }

    /// Parameters by name.
    pub fn by_name(&self) -> BTreeMap<&str, &Param> {
        self.params.iter().map(|p| (p.name.as_str(), p)).collect()
    }

    /// Number of scalar parameters in the groups `groups` selects.
    pub fn count(&self, groups: &dyn Fn(Group) -> bool) -> usize {
        self.params
            .iter()
            .filter(|p| groups(p.group))
            .map(|p| p.var.as_tensor().elem_count())
            .sum()
    }

    /// The parameters of the groups `keep` selects (sharing the same variables).
    pub fn filtered(&self, keep: &dyn Fn(Group) -> bool) -> ParamSet {
        ParamSet {
            params: self
                .params
                .iter()
                .filter(|p| keep(p.group))
                .cloned()
                .collect(),
        }
    }
}

/// Where pre-trained weights come from (a Hugging Face checkpoint, a run's weights file).
pub trait WeightSource {
    /// The values of tensor `name`, which must have `shape`; the error says what is wrong.
    fn get(&self, name: &str, shape: &[usize]) -> std::result::Result<&[f32], String>;
}

/// Creates parameters under a name prefix: fresh ones from a seeded generator, or pre-trained ones
/// from a [`WeightSource`]. [`ParamBuilder::pp`] descends one name level.
pub struct ParamBuilder<'a> {
    params: &'a mut ParamSet,
    rng: &'a mut ChaCha8Rng,
    source: Option<&'a dyn WeightSource>,
    prefix: String,
    group: Group,
    dev: Device,
}

impl<'a> ParamBuilder<'a> {
    /// A builder at the root of the names, creating parameters of `group`.
    pub fn new(
        params: &'a mut ParamSet,
        rng: &'a mut ChaCha8Rng,
        group: Group,
        dev: &Device,
    ) -> Self {
        Self {
            params,
            rng,
            source: None,
            prefix: String::new(),
            group,
            dev: dev.clone(),
        }
    }

    /// The same builder reading pre-trained weights from `source` in [`ParamBuilder::load`].
    pub fn with_source(mut self, source: &'a dyn WeightSource) -> Self {
        self.source = Some(source);
        self
    }

    /// A builder one name level down (`prefix.name`), for the same registry and generator.
    pub fn pp(&mut self, name: impl std::fmt::Display) -> ParamBuilder<'_> {
        ParamBuilder {
            prefix: self.path(&name.to_string()),
            params: self.params,
            rng: self.rng,
            source: self.source,
            group: self.group,
            dev: self.dev.clone(),
        }
    }

    /// The same prefix, creating parameters of another group.
    pub fn in_group(&mut self, group: Group) -> ParamBuilder<'_> {
        ParamBuilder {
            prefix: self.prefix.clone(),
            params: self.params,
            rng: self.rng,
            source: self.source,
            group,
            dev: self.dev.clone(),
        }
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// A fresh parameter `prefix.name`; `init` draws from the builder's generator in creation
    /// order, so the same seed gives the same weights.
    pub fn var(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let data = init.values(shape, self.rng);
        let t = Tensor::from_vec(data, shape, &self.dev)?;
        self.params.push(self.path(name), self.group, &t)
    }

    /// A pre-trained parameter `prefix.name`, read from the source with its full name.
    pub fn load(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.path(name);
        let source = self
            .source
            .ok_or_else(|| candle_core::Error::Msg(format!("no weights to load `{full}` from")))?;
        let data = source.get(&full, shape).map_err(candle_core::Error::Msg)?;
        let t = Tensor::from_slice(data, shape, &self.dev)?;
        self.params.push(full, self.group, &t)
    }
}
