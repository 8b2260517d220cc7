//! Making ONNX models: importing Hugging Face checkpoints ([`import`]), quantizing them
//! ([`quantize`]), exporting a run as one merged model ([`export`]) and running merged models
//! ([`merged`], the only part without the feature `train`). The format itself (protobuf types,
//! graph building) is [`crate::graph`].

#[cfg(feature = "train")]
pub mod export;
#[cfg(feature = "train")]
pub mod import;
pub mod merged;
#[cfg(feature = "train")]
#[allow(missing_docs)] // Items of its own still undocumented; the lint is on everywhere else.
pub mod quantize;

#[cfg(feature = "train")]
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
