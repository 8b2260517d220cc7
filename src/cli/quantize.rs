//! `edgetune quantize`.

use std::path::PathBuf;

use edgetune::onnx::quantize::{
    quantize_dir, QuantizeDirOptions, QuantizeOptions, DEFAULT_WARN_COSINE,
};

/// Flags of `edgetune quantize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory written by `edgetune import`.
    #[arg(value_name = "MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Output file (default: MODEL_DIR/backbone.int8.onnx).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Keep MatMuls whose node, output or weight name matches PATTERN in fp32 (substring, `*`
    /// wildcard; repeatable), e.g. `encoder.layer.5.output.dense`.
    #[arg(long = "keep-fp32", value_name = "PATTERN")]
    pub keep_fp32: Vec<String>,
    /// Use the full 8-bit weight range (may saturate on AVX2 CPUs without VNNI).
    #[arg(long)]
    pub full_range: bool,
    /// One weight scale per tensor instead of per output column.
    #[arg(long)]
    pub per_tensor: bool,
    /// Sentences for the fidelity report, one per line (default: built-in samples).
    #[arg(long, value_name = "FILE")]
    pub sentences: Option<PathBuf>,
    /// Warn when the mean pooled cosine vs fp32 is below this.
    #[arg(long, value_name = "COS", default_value_t = DEFAULT_WARN_COSINE)]
    pub warn_below: f32,
    /// Also measure throughput of fp32 vs int8 (batch 32, length-sorted, --threads or 2 threads).
    #[arg(long)]
    pub bench: bool,
    /// Before quantizing, rank the weight MatMuls by the fidelity reached when only that one stays
    /// fp32 (one ONNX Runtime pass per MatMul over the sentences), to choose --keep-fp32 patterns.
    #[arg(long)]
    pub sensitivity: bool,
    /// Activation smoothing strength in (0, 1] (SmoothQuant-style per-channel rescaling of MatMul
    /// inputs into the weights, exact in fp32); 0 (the default) disables it. With the outlier
    /// split (--outlier-ratio) smoothing measured worse on MiniLM (pooled cosine 0.9960 at 0.5 vs
    /// 0.9968 without) and costs one Mul per activation.
    #[arg(long, value_name = "ALPHA", default_value_t = 0.0)]
    pub smooth: f32,
    /// Calibration sentences for smoothing, one per line (default: built-in samples). Use
    /// training data, not the sentences you evaluate on.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// Choose the smoothing strength per activation among {0, A/2, A, (1+A)/2} by simulating the
    /// int8 MatMuls on calibration rows.
    #[arg(long)]
    pub auto_smooth: bool,
    /// Outlier decomposition: input channels whose calibration max |x| exceeds RATIO times the
    /// median channel's are multiplied in fp32 beside the int8 MatMul (at most 1/64 of the
    /// channels); 0 disables it.
    #[arg(long, value_name = "RATIO", default_value_t = edgetune::onnx::quantize::DEFAULT_OUTLIER_RATIO)]
    pub outlier_ratio: f32,
    /// Embedding tables (word and position) in `int8` with per-row scales, dequantized by standard
    /// ONNX operators, or kept `fp32`.
    #[arg(long, value_name = "int8|fp32", default_value = "int8", value_parser = ["int8", "fp32"])]
    pub embeddings: String,
    /// Print the bytes of each part of the written model (embeddings, int8 weights, fp32 weights,
    /// small tensors, graph).
    #[arg(long)]
    pub report: bool,
    /// Also measure the fidelity of every hidden state (per-token cosine and max |diff| of the int8
    /// encoder against fp32 on the --sentences) and draw it into DIR as layer_fidelity.svg, .png
    /// and .json.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Replace an existing output file, and write into a --plots DIR that already holds files.
    #[arg(long)]
    pub force: bool,
    /// At most this many calibration sentences are used.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub calibration_limit: usize,
}

/// Runs `edgetune quantize`.
pub fn run(g: &super::common::Global, a: Args) -> anyhow::Result<()> {
    if let Some(dir) = &a.plots {
        let names = ["svg", "png", "json"].map(|e| format!("layer_fidelity.{e}"));
        super::common::check_output_dir(dir, a.force, "--plots", &names)?;
    }
    if let Some(p) = &g.ort_lib {
        edgetune::backbone::init_runtime(Some(p.as_path()))?;
    }
    let sentences = a.sentences.as_ref().map(read_lines).transpose()?;
    let calibration = a
        .calibration
        .as_ref()
        .map(read_lines)
        .transpose()?
        .map(|v| v.into_iter().take(a.calibration_limit).collect::<Vec<_>>());
    let quant = QuantizeOptions {
        reduce_range: !a.full_range,
        per_channel: !a.per_tensor,
        keep_fp32: a.keep_fp32.clone(),
        calibration: None,
        outlier_ratio: a.outlier_ratio,
        int8_embeddings: a.embeddings == "int8",
    };
    if a.sensitivity && g.json {
        anyhow::bail!("--sensitivity prints a table; run it without --json");
    }
    if a.sensitivity {
        print_sensitivity(g, &a, sentences.as_deref(), &quant)?;
    }
    let opts = QuantizeDirOptions {
        model_dir: a.model_dir.clone(),
        out: a.out.clone(),
        quant,
        sentences,
        warn_cosine: a.warn_below,
        threads: g.threads,
        measure_speed: a.bench,
        smooth_alpha: Some(a.smooth),
        calibration,
        auto_alpha: a.auto_smooth,
        force: a.force,
        progress: !g.quiet && !g.json,
        plots: a.plots.clone(),
    };
    let r = quantize_dir(&opts)?;
    if g.json {
        if let Some(w) = &r.warning {
            eprintln!("warning: {w}");
        }
        return super::common::print_json(&r);
    }
    print_report(&a, &r);
    Ok(())
}

/// The non-empty lines of a file, trimmed.
fn read_lines(p: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// `--sensitivity`: the pooled fidelity with each MatMul kept fp32 in turn.
fn print_sensitivity(
    g: &super::common::Global,
    a: &Args,
    sentences: Option<&[String]>,
    quant: &QuantizeOptions,
) -> anyhow::Result<()> {
    let tok = edgetune::backbone::raw::load_tokenizer(
        &a.model_dir.join(edgetune::onnx::import::TOKENIZER_FILE),
    )?;
    let texts: Vec<String> = match sentences {
        Some(s) => s.to_vec(),
        None => edgetune::onnx::import::VERIFY_SENTENCES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let fp32 = a.model_dir.join(edgetune::onnx::import::BACKBONE_FILE);
    let (all, rows) =
        edgetune::onnx::quantize::sensitivity(&fp32, &tok, &refs, quant, g.threads, true)?;
    println!(
        "sensitivity on {} sentences; all quantized: pooled cosine mean {:.5}, min {:.5}",
        all.sentences, all.mean_cosine, all.min_cosine
    );
    for r in &rows {
        println!(
            "  keep fp32 {:<60} mean {:.5} min {:.5}",
            r.node, r.fidelity.mean_cosine, r.fidelity.min_cosine
        );
    }
    Ok(())
}

/// What was written and measured.
fn print_report(a: &Args, r: &edgetune::onnx::quantize::QuantizeReport) {
    let s = &r.summary;
    println!(
        "wrote {}: {} MatMuls int8 ({} fp32 kept), {} DynamicQuantizeLinear, {} smoothed, {} outlier channels fp32; ORT fused {} (DynamicQuantizeMatMul/MatMulIntegerToFloat), {} unfused MatMulInteger",
        r.out.display(),
        s.quantized.len(),
        s.kept_fp32.len(),
        s.dynamic_quantize_nodes,
        s.smoothed_activations,
        s.outlier_channels,
        r.fused_nodes,
        r.unfused_nodes
    );
    if !s.int8_embeddings.is_empty() {
        let tables = s.int8_embeddings.join(", ");
        println!("embedding tables int8 with per-row scales: {tables}");
    }
    if a.report {
        println!("size {}", r.bytes);
    }
    println!(
        "fidelity vs fp32 on {} sentences: pooled cosine mean {:.5}, min {:.5}",
        r.fidelity.sentences, r.fidelity.mean_cosine, r.fidelity.min_cosine
    );
    if !r.layers.is_empty() {
        let worst = r
            .layers
            .iter()
            .min_by(|x, y| x.mean_cosine.total_cmp(&y.mean_cosine))
            .map(|l| {
                let (c, k) = (l.mean_cosine, l.state);
                format!("lowest mean cosine {c:.5} at hidden state {k}")
            })
            .unwrap_or_default();
        let dir = a.plots.as_deref().unwrap_or(std::path::Path::new("."));
        let n = r.layers.len();
        println!(
            "per-layer fidelity ({n} hidden states, {worst}) drawn in {}",
            dir.display()
        );
    }
    if let Some((f, q)) = r.speed {
        println!(
            "throughput: fp32 {f:.1} sent/s, int8 {q:.1} sent/s, speed-up {:.2}x",
            q / f
        );
    }
    if let Some(w) = &r.warning {
        eprintln!("warning: {w}");
    }
}
