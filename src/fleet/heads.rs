//! The head tensors as they travel: every parameter of a run's heads, sorted by name (the order of
//! `heads.safetensors` and of the spec's `tensors`), as f32 arrays.

use candle_core::{Device, Tensor};

use super::records::Tensor32;
use crate::model::TaskModel;

/// The model's tensors in travel order.
pub fn tensors_of(model: &TaskModel) -> candle_core::Result<Vec<Tensor32>> {
    let mut params: Vec<_> = model.params.params.iter().collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    params
        .into_iter()
        .map(|p| {
            let t = p.var.as_tensor();
            Ok(Tensor32 {
                shape: t.dims().to_vec(),
                values: t.flatten_all()?.to_vec1()?,
            })
        })
        .collect()
}

/// Sets the model's parameters to `tensors` (travel order). Refuses a count or shape that differs
/// from the model's and any NaN or infinity, naming the tensor; the model is unchanged then.
pub fn load_tensors(model: &TaskModel, tensors: &[Tensor32]) -> Result<(), String> {
    let mut params: Vec<_> = model.params.params.iter().collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    if params.len() != tensors.len() {
        return Err(format!(
            "{} tensors where the heads have {}",
            tensors.len(),
            params.len()
        ));
    }
    for (p, t) in params.iter().zip(tensors) {
        let want = p.var.as_tensor().dims();
        if want != t.shape.as_slice() {
            return Err(format!(
                "tensor `{}` has shape {:?}, the heads' is {want:?}",
                p.name, t.shape
            ));
        }
        if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "tensor `{}` holds {} at index {i}",
                p.name, t.values[i]
            ));
        }
    }
    for (p, t) in params.iter().zip(tensors) {
        let v = Tensor::from_vec(t.values.clone(), t.shape.as_slice(), &Device::Cpu)
            .map_err(|e| e.to_string())?;
        p.var
            .set(&v)
            .map_err(|e| format!("tensor `{}`: {e}", p.name))?;
    }
    Ok(())
}

/// The L2 norm of the difference `a - b` over all tensors (the size of an update).
pub fn distance(a: &[Tensor32], b: &[Tensor32]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.values.iter().zip(&y.values))
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// Bytes of the tensors' values (f32).
pub fn value_bytes(tensors: &[Tensor32]) -> usize {
    tensors.iter().map(|t| 4 * t.values.len()).sum()
}
