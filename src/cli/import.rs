//! `edgetune import`.

use std::path::PathBuf;

use edgetune::onnx::import::{import, parse_hidden_states, ImportOptions};

/// Flags of `edgetune import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(value_name = "HF_DIR")]
    pub hf_dir: PathBuf,
    /// Output model directory (backbone.onnx, tokenizer.json, manifest.json).
    #[arg(long, value_name = "MODEL_DIR")]
    pub out: PathBuf,
    /// Hidden states exposed as outputs hidden_state_K: `all` (default), `none`, or a list `0,3,6`.
    #[arg(long, value_name = "LIST", default_value = "all")]
    pub hidden_states: String,
    /// Keep only the first K transformer layers (a shallower, faster variant of the checkpoint);
    /// default: all.
    #[arg(long, value_name = "K")]
    pub layers: Option<usize>,
    /// Skip the self-verification against candle (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    /// Replace an existing, non-empty output directory (rebuilt as a whole).
    #[arg(long)]
    pub force: bool,
}

/// Runs `edgetune import`.
pub fn run(g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    if let Some(p) = &g.ort_lib {
        edgetune::backbone::init_runtime(Some(p.as_path()))?;
    }
    let mut opts = ImportOptions::new(&a.hf_dir, &a.out);
    opts.hidden_states = parse_hidden_states(&a.hidden_states)?;
    opts.layers = a.layers;
    opts.verify = !a.no_verify;
    opts.threads = g.threads;
    opts.force = a.force;
    let r = import(&opts)?;
    if g.json {
        return super::common::print_json(&serde_json::json!({
            "source": a.hf_dir,
            "backbone": r.backbone,
            "manifest": r.manifest,
            "model_type": r.config.model_type.as_deref().unwrap_or("bert"),
            "layers": r.config.num_hidden_layers,
            "source_layers": r.source_layers,
            "hidden_size": r.config.hidden_size,
            "attention_heads": r.config.num_attention_heads,
            "outputs": r.hidden_outputs,
            "verification": r.verification,
        }));
    }
    println!(
        "imported {} ({}, {} layers{}, hidden {}, {} heads) -> {}",
        a.hf_dir.display(),
        r.config.model_type.as_deref().unwrap_or("bert"),
        r.config.num_hidden_layers,
        match r.source_layers {
            Some(n) => format!(" of {n}"),
            None => String::new(),
        },
        r.config.hidden_size,
        r.config.num_attention_heads,
        r.backbone.display()
    );
    println!("outputs: last_hidden_state {}", r.hidden_outputs.join(" "));
    match r.verification {
        Some(v) => println!(
            "verified vs {} on {} sentences: max |diff| last_hidden_state {:.3e}, mean-pooled {:.3e} (tolerance {:.0e})",
            edgetune::onnx::import::reference_name(&r.config),
            v.sentences,
            v.max_abs_diff_hidden,
            v.max_abs_diff_pooled,
            edgetune::onnx::import::VERIFY_TOLERANCE
        ),
        None => println!("verification skipped (--no-verify)"),
    }
    println!("manifest: {}", r.manifest.display());
    Ok(())
}
