//! Inference with a merged ONNX model (`edgetune export`'s output).

use std::path::Path;

pub fn infer(_g: &super::Global, _threads: usize, merged: &Path, _input: Option<&Path>, _logits: bool) -> anyhow::Result<()> {
    anyhow::bail!("{}: merged-model inference is not available in this build yet", merged.display())
}
