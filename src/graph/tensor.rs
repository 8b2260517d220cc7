//! Tensors as ONNX stores them: writing `raw_data` and reading float / int64 tensors back.

use super::error::OnnxError;
use super::proto::{self, tensor_proto::DataType, TensorProto};

/// Element types that can be stored in a [`TensorProto`] as little-endian `raw_data`.
pub trait TensorElement: Copy {
    /// The ONNX data type.
    const DATA_TYPE: DataType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! tensor_element {
    ($t:ty, $dt:expr) => {
        impl TensorElement for $t {
            const DATA_TYPE: DataType = $dt;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
tensor_element!(f32, DataType::Float);
tensor_element!(i64, DataType::Int64);
tensor_element!(i32, DataType::Int32);
tensor_element!(i8, DataType::Int8);
tensor_element!(u8, DataType::Uint8);

/// A tensor with `raw_data` (little-endian). Shape/data length mismatches are the caller's bug and
/// are reported by [`tensor_checked`].
pub fn tensor<T: TensorElement>(name: &str, dims: &[i64], data: &[T]) -> TensorProto {
    let mut raw = Vec::with_capacity(std::mem::size_of_val(data));
    for &v in data {
        v.put(&mut raw);
    }
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(T::DATA_TYPE as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// Like [`tensor`], but checks that `dims` multiply to `data.len()`.
pub fn tensor_checked<T: TensorElement>(
    name: &str,
    dims: &[i64],
    data: &[T],
) -> Result<TensorProto, OnnxError> {
    let n: i64 = dims.iter().product();
    if n < 0 || n as usize != data.len() {
        return Err(OnnxError::graph(format!(
            "tensor {name}: dims {dims:?} do not match {} values",
            data.len()
        )));
    }
    Ok(tensor(name, dims, data))
}

/// Number of elements of a tensor from its dims (a negative dim counts as 0). The dims come from a
/// file: a product past `usize` saturates at `usize::MAX`, which no stored data matches.
pub fn tensor_numel(t: &TensorProto) -> usize {
    if t.dims.iter().any(|&d| d <= 0) {
        return usize::from(t.dims.is_empty());
    }
    t.dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
        .unwrap_or(usize::MAX)
}

fn tensor_name(t: &TensorProto) -> &str {
    t.name.as_deref().unwrap_or("<unnamed>")
}

/// Reads a float tensor (`raw_data` or `float_data`) as `f32` values.
pub fn tensor_to_f32(t: &TensorProto) -> Result<Vec<f32>, OnnxError> {
    if t.data_type != Some(DataType::Float as i32) {
        return Err(OnnxError::graph(format!(
            "tensor {}: data type {:?} is not float",
            tensor_name(t),
            t.data_type
        )));
    }
    if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32) {
        return Err(OnnxError::graph(format!(
            "tensor {}: external data is not supported",
            tensor_name(t)
        )));
    }
    let n = tensor_numel(t);
    let v: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => t.float_data.clone(),
    };
    if v.len() != n {
        return Err(OnnxError::graph(format!(
            "tensor {}: {} values for dims {:?}",
            tensor_name(t),
            v.len(),
            t.dims
        )));
    }
    Ok(v)
}

/// Reads an int64 tensor (`raw_data` or `int64_data`).
pub fn tensor_to_i64(t: &TensorProto) -> Result<Vec<i64>, OnnxError> {
    if t.data_type != Some(DataType::Int64 as i32) {
        return Err(OnnxError::graph(format!(
            "tensor {}: data type {:?} is not int64",
            tensor_name(t),
            t.data_type
        )));
    }
    let v: Vec<i64> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.int64_data.is_empty() => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        _ => t.int64_data.clone(),
    };
    if v.len() != tensor_numel(t) {
        return Err(OnnxError::graph(format!(
            "tensor {}: {} values for dims {:?}",
            tensor_name(t),
            v.len(),
            t.dims
        )));
    }
    Ok(v)
}
