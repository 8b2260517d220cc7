//! AdamW with per-group learning rates and weight decay, and a state that can be checkpointed.
//!
//! candle-nn's `AdamW` keeps its moments private, so a killed run could not resume to the same result;
//! this one exposes them for [`crate::train::checkpoint`].

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor};

use crate::nn::{Group, ParamSet};

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
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
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
            let w = p.var.as_tensor();
            let (shape, dev) = (w.shape().clone(), w.device().clone());
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let (gv, mut wv) = (flat(g)?, flat(w)?);
            let (mut mv, mut vv) = match self.moments.remove(&p.name) {
                Some((m, v)) => (flat(&m)?, flat(&v)?),
                None => (vec![0f32; wv.len()], vec![0f32; wv.len()]),
            };
            // One pass over plain vectors: the same arithmetic as a chain of tensor ops, without
            // allocating eight temporaries per parameter and step.
            let lr = (s.lr * lr_scale) as f32;
            let decay = 1.0 - lr * s.weight_decay as f32;
            let (b1f, b2f, c1f, c2f, eps) =
                (b1 as f32, b2 as f32, c1 as f32, c2 as f32, self.eps as f32);
            for (((w, m), v), g) in wv.iter_mut().zip(&mut mv).zip(&mut vv).zip(&gv) {
                *m = b1f * *m + (1.0 - b1f) * g;
                *v = b2f * *v + (1.0 - b2f) * g * g;
                let upd = (*m / c1f) / ((*v / c2f).sqrt() + eps);
                *w = *w * decay - lr * upd;
            }
            p.var.set(&Tensor::from_vec(wv, &shape, &dev)?)?;
            let m = Tensor::from_vec(mv, &shape, &dev)?;
            let v = Tensor::from_vec(vv, &shape, &dev)?;
            self.moments.insert(p.name.clone(), (m, v));
        }
        Ok(())
    }
}
