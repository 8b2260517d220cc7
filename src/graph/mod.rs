//! The ONNX format: protobuf types, lossless reading and writing, building and walking graphs, and
//! exposing an encoder's hidden states. No ONNX Runtime here: everything is plain data.

pub mod builder;
pub mod error;
pub mod hidden;
pub mod io;
pub mod proto;
pub mod tensor;
pub mod walk;

pub use builder::{
    attr_float, attr_floats, attr_int, attr_ints, attr_string, attr_strings, attr_tensor, get_attr,
    value_info, value_info_shape, Dim, GraphBuilder, IR_VERSION, OPSET,
};
pub use error::OnnxError;
pub use hidden::{count_layers, expose_hidden_states, hidden_state_name};
pub use io::{
    decode_model, encode_model, load_model, load_model_header, metadata_value, model_metadata,
    save_model, set_metadata,
};
pub use tensor::{
    tensor, tensor_checked, tensor_numel, tensor_to_f32, tensor_to_i64, TensorElement,
};
pub use walk::{consumers, default_opset, input_ids_dims, producers, prune, topological_order};
