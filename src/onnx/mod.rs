//! Making ONNX models: importing Hugging Face checkpoints ([`import`]), quantizing them
//! ([`quantize`]), exporting a run as one merged model ([`export`]) and running merged models
//! ([`merged`]). The format itself (protobuf types, graph building) is [`crate::graph`].

pub mod export;
pub mod import;
pub mod merged;
pub mod quantize;

impl From<crate::hf::HfError> for crate::graph::OnnxError {
    fn from(e: crate::hf::HfError) -> Self {
        match e {
            crate::hf::HfError::Io { path, source } => crate::graph::OnnxError::Io { path, source },
            crate::hf::HfError::Source { path, message } => {
                crate::graph::OnnxError::Source { path, message }
            }
        }
    }
}

impl From<crate::backbone::raw::RawError> for crate::graph::OnnxError {
    fn from(e: crate::backbone::raw::RawError) -> Self {
        crate::graph::OnnxError::Runtime {
            path: e.path,
            message: e.message,
        }
    }
}
