//! The content of Flower messages as edgetune reads and writes it: NumPy `.npy` arrays (how
//! Flower's legacy `Parameters` carry tensors: `flwr.common.ndarray_to_bytes`), `ArrayRecord`s of
//! them, and typed access to `ConfigRecord` / `MetricRecord` values.
//!
//! Flower 1.18's strategies (`FedAvg`, `FedTrimmedAvg`, `Krum`, the DP wrappers) exchange
//! `Parameters` inside a `RecordDict` as `fitins.parameters` / `fitres.parameters`: an
//! `ArrayRecord` with keys `"0"`, `"1"`, ... whose `Array`s hold `.npy` bytes, `stype`
//! `"numpy.ndarray"`, empty `dtype` and `shape`.

use super::proto::{
    config_record_value, metric_record_value, Array, ArrayRecord, ConfigRecord, ConfigRecordValue,
    MetricRecord, MetricRecordValue,
};

/// The `stype` of arrays in Flower's legacy parameters.
pub const NDARRAY_STYPE: &str = "numpy.ndarray";

/// A dense f32 tensor as it travels: shape and values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor32 {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Encodes `t` as a `.npy` file (format 1.0, little-endian f32, C order), as `numpy.save` writes it.
pub fn npy_encode(t: &Tensor32) -> Vec<u8> {
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => {
            let s: Vec<String> = t.shape.iter().map(usize::to_string).collect();
            format!("({})", s.join(", "))
        }
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces so that the data starts on a 64-byte boundary.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * t.values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &t.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a `.npy` array of little-endian f32 or f64 (converted to f32) in C order. Errors name
/// what is unsupported; the data length must match the shape exactly.
pub fn npy_decode(bytes: &[u8]) -> Result<Tensor32, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is cut short or not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!(".npy header has no '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(format!(
            "dtype {} is not supported (little-endian float32 or float64)",
            descr.split(',').next().unwrap_or("")
        ));
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let close = shape_text.find(')').ok_or(".npy shape is not a tuple")?;
    let shape: Vec<usize> = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the shape overflows")?;
    let data = &bytes[start + hlen..];
    if Some(data.len()) != count.checked_mul(width) {
        return Err(format!(
            "{} data bytes for shape {shape:?} of {width}-byte values",
            data.len()
        ));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok(Tensor32 { shape, values })
}

/// The tensors of a legacy-parameters `ArrayRecord`, in key order `"0"`, `"1"`, ...
pub fn tensors_from_record(record: &ArrayRecord) -> Result<Vec<Tensor32>, String> {
    if record.data_keys.len() != record.data_values.len() {
        return Err(format!(
            "{} keys for {} arrays",
            record.data_keys.len(),
            record.data_values.len()
        ));
    }
    record
        .data_keys
        .iter()
        .zip(&record.data_values)
        .filter(|(k, _)| k.as_str() != "_empty")
        .enumerate()
        .map(|(i, (k, a))| {
            if k != &i.to_string() {
                return Err(format!("array key {k:?} where \"{i}\" was expected"));
            }
            npy_decode(&a.data).map_err(|e| format!("array {k}: {e}"))
        })
        .collect()
}

/// A legacy-parameters `ArrayRecord` of `tensors` (keys `"0"`, `"1"`, ...).
pub fn record_from_tensors(tensors: &[Tensor32]) -> ArrayRecord {
    ArrayRecord {
        data_keys: (0..tensors.len()).map(|i| i.to_string()).collect(),
        data_values: tensors
            .iter()
            .map(|t| Array {
                dtype: String::new(),
                shape: Vec::new(),
                stype: NDARRAY_STYPE.into(),
                data: npy_encode(t),
            })
            .collect(),
    }
}

/// A config value: integers, floats, booleans and strings, as Flower's `Scalar`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

impl Value {
    fn config(&self) -> ConfigRecordValue {
        use config_record_value::Value as V;
        ConfigRecordValue {
            value: Some(match self {
                Value::Int(i) => V::Sint64(*i),
                Value::Float(f) => V::Double(*f),
                Value::Bool(b) => V::Bool(*b),
                Value::Str(s) => V::String(s.clone()),
            }),
        }
    }
}

/// A `ConfigRecord` of `(key, value)` pairs.
pub fn config_record(pairs: &[(&str, Value)]) -> ConfigRecord {
    ConfigRecord {
        data: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.config()))
            .collect(),
    }
}

/// A `MetricRecord` of one integer.
pub fn metric_int(key: &str, v: i64) -> MetricRecord {
    MetricRecord {
        data: [(
            key.to_string(),
            MetricRecordValue {
                value: Some(metric_record_value::Value::Sint64(v)),
            },
        )]
        .into(),
    }
}

/// A `MetricRecord` of one float.
pub fn metric_float(key: &str, v: f64) -> MetricRecord {
    MetricRecord {
        data: [(
            key.to_string(),
            MetricRecordValue {
                value: Some(metric_record_value::Value::Double(v)),
            },
        )]
        .into(),
    }
}

/// The value under `key` of a config record, if it is a single scalar.
pub fn config_get(record: &ConfigRecord, key: &str) -> Option<Value> {
    use config_record_value::Value as V;
    Some(match record.data.get(key)?.value.as_ref()? {
        V::Sint64(i) => Value::Int(*i),
        V::Uint64(u) => Value::Int(i64::try_from(*u).ok()?),
        V::Double(f) => Value::Float(*f),
        V::Bool(b) => Value::Bool(*b),
        V::String(s) => Value::Str(s.clone()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trips_and_matches_numpy_layout() {
        let t = Tensor32 {
            shape: vec![2, 3],
            values: vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0],
        };
        let b = npy_encode(&t);
        // numpy.save(np.zeros((2,3), 'f4')): 128-byte header block (64-byte aligned).
        assert_eq!(b.len(), 128 + 24);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        assert!(std::str::from_utf8(&b[10..128])
            .unwrap()
            .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(npy_decode(&b).unwrap(), t);
        let v = Tensor32 {
            shape: vec![4],
            values: vec![1.0; 4],
        };
        assert_eq!(npy_decode(&npy_encode(&v)).unwrap(), v);
    }

    #[test]
    fn npy_rejects_what_it_cannot_read() {
        assert!(npy_decode(b"hello").is_err());
        let mut b = npy_encode(&Tensor32 {
            shape: vec![3],
            values: vec![1.0; 3],
        });
        b.pop();
        assert!(npy_decode(&b).unwrap_err().contains("data bytes"));
        let at = b.windows(3).position(|w| w == b"<f4").unwrap();
        b[at..at + 3].copy_from_slice(b">i2");
        let e = npy_decode(&b).unwrap_err();
        assert!(e.contains("dtype '>i2' is not supported"), "{e}");
    }

    #[test]
    fn records_keep_order() {
        let ts = vec![
            Tensor32 {
                shape: vec![1],
                values: vec![2.0],
            },
            Tensor32 {
                shape: vec![2, 1],
                values: vec![3.0, 4.0],
            },
        ];
        let r = record_from_tensors(&ts);
        assert_eq!(tensors_from_record(&r).unwrap(), ts);
        let c = config_record(&[("a", Value::Int(3)), ("b", Value::Str("x".into()))]);
        assert_eq!(config_get(&c, "a"), Some(Value::Int(3)));
        assert_eq!(config_get(&c, "c"), None);
    }
}
