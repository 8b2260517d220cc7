//! AdamW with per-group learning rates and weight decay, and a state that can be checkpointed.
//!
//! candle-nn's `AdamW` keeps its moments private, so a killed run could not resume to the same result;
//! this one exposes them for [`crate::train::checkpoint`].

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor};

use crate::heads::{Group, ParamSet};

/// Hyper-parameters of one parameter group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSettings {
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW over the trainable parameters of a [`ParamSet`].
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken.
    pub step: u64,
    /// First and second moments by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: HashMap::new(),
        }
    }
}

impl AdamW {
    /// One update of every parameter that `settings` returns `Some` for (the trainable ones), scaled
    /// by `lr_scale` (the schedule). Parameters without a gradient are left untouched.
    pub fn step(
        &mut self,
        params: &ParamSet,
        grads: &GradStore,
        settings: &dyn Fn(Group) -> Option<GroupSettings>,
        lr_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        for p in &params.params {
            let Some(s) = settings(p.group) else { continue };
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            let w = p.var.as_tensor().detach();
            let (m, v) = match self.moments.remove(&p.name) {
                Some(mv) => mv,
                None => (w.zeros_like()?, w.zeros_like()?),
            };
            let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let lr = s.lr * lr_scale;
            let upd = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let decayed = (&w * (1.0 - lr * s.weight_decay))?;
            p.var.set(&(decayed - (upd * lr)?)?)?;
            self.moments.insert(p.name.clone(), (m, v));
        }
        Ok(())
    }
}
