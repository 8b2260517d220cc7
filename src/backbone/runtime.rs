//! Locating and loading ONNX Runtime's shared library (`ort` with `load-dynamic`).
//!
//! Search order: an explicit path (the `--ort-lib` flag), then `$EDGETUNE_ORT_LIB`, then beside the
//! executable (a deployed bundle), then set-up's `.runtime/<arch>/` in the checkout the executable
//! was built from ([`candidates`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;

/// Environment variable naming the ONNX Runtime library.
pub const ORT_LIB_ENV: &str = "EDGETUNE_ORT_LIB";

/// File name of the library that set-up installs.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so";

/// Errors while finding or loading ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No library at any of the places searched.
    #[error(
        "ONNX Runtime library not found (looked in: {searched}); run the set-up (./setup.sh), \
         pass --ort-lib PATH or set {ORT_LIB_ENV}"
    )]
    NotFound {
        /// The places searched.
        searched: String,
    },
    /// The library could not be loaded.
    #[error("ONNX Runtime library {path}: {message}")]
    Load {
        /// The library.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A different library was asked for after one was loaded.
    #[error("ONNX Runtime was already initialised from {0}")]
    AlreadyFrom(PathBuf),
}

static LOADED: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The architecture folder name set-up uses under `.runtime/`.
pub fn arch_dir() -> &'static str {
    std::env::consts::ARCH
}

/// The places the library may be, in order, after an explicit path and `$EDGETUNE_ORT_LIB`:
/// beside the executable (`libonnxruntime.so`, `lib/`, and `../lib/` of a bundle's `bin/`), then
/// set-up's own folder in the checkout the executable was built from
/// (`.runtime/<arch>/libonnxruntime.so`). Never the working directory or its ancestors: a library
/// planted in a world-writable folder above it would run its code in this process.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(ORT_LIB_NAME));
        out.push(dir.join("lib").join(ORT_LIB_NAME));
        if let Some(up) = dir.parent() {
            out.push(up.join("lib").join(ORT_LIB_NAME));
        }
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".runtime")
            .join(arch_dir())
            .join(ORT_LIB_NAME),
    );
    out
}

/// Finds the library: `explicit`, then the environment variable, then [`candidates`].
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ORT_LIB_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let all = candidates();
    match all.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(RuntimeError::NotFound {
            searched: all
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Loads ONNX Runtime once per process and returns the library path in use. Later calls return the
/// same path; asking for a different explicit library after the first load is an error.
pub fn init(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    Ok(loaded(explicit)?.0.clone())
}

/// The process's ONNX Runtime environment (sessions are built on it), loading the library first if
/// needed (from the default locations).
pub fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    Ok(&loaded(None)?.1)
}

/// A session builder on the process's environment.
pub fn session_builder() -> Result<ort::session::builder::SessionBuilder, RuntimeError> {
    let env = environment()?;
    ort::session::Session::builder(env).map_err(|e| RuntimeError::Load {
        path: LOADED.get().map(|l| l.0.clone()).unwrap_or_default(),
        message: e.to_string(),
    })
}

fn loaded(
    explicit: Option<&Path>,
) -> Result<&'static (PathBuf, ort::environment::Environment), RuntimeError> {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = LOADED.get() {
        if let Some(p) = explicit {
            if p != done.0 {
                return Err(RuntimeError::AlreadyFrom(done.0.clone()));
            }
        }
        return Ok(done);
    }
    let path = locate(explicit)?;
    if !path.is_file() {
        return Err(RuntimeError::Load {
            path,
            message: "no such file".into(),
        });
    }
    let builder = ort::init_from(&path).map_err(|e| RuntimeError::Load {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("edgetune")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Load {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let _ = LOADED.set((path, env));
    Ok(LOADED.get().expect("set above"))
}

/// ONNX Runtime session settings: one type for every session edgetune opens (the backbone, a
/// merged model, the import and quantization checks). The defaults are those of inference on a
/// device.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Intra-op threads (ONNX Runtime's own pool; inter-op is 1); `None` leaves ONNX Runtime's
    /// default (every core).
    pub threads: Option<usize>,
    /// Memory-pattern planning (reuses buffers across runs of the same shapes; costs memory on
    /// small boards).
    pub memory_pattern: bool,
    /// When idle intra-op threads spin. Off by default (one-shot commands, shared machines);
    /// `serve` chooses its own (docs/serve.md).
    pub spinning: Spinning,
    /// ONNX Runtime's CPU arena allocator (keeps freed buffers for reuse).
    pub arena: bool,
    /// Weight prepacking (faster MatMuls at the cost of a second, packed copy of the weights).
    pub prepacking: bool,
    /// Graph optimization level: [`GraphOptimizationLevel::Level3`] for inference;
    /// the import and quantization checks use [`GraphOptimizationLevel::All`].
    pub optimization: GraphOptimizationLevel,
    /// Write the optimized graph here (to inspect ONNX Runtime's fusions).
    pub optimized_model_path: Option<PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            threads: Some(default_threads()),
            memory_pattern: true,
            spinning: Spinning::default(),
            arena: true,
            prepacking: true,
            optimization: GraphOptimizationLevel::Level3,
            optimized_model_path: None,
        }
    }
}

impl SessionOptions {
    /// Inference settings with `threads` intra-op threads.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: Some(threads.max(1)),
            ..Self::default()
        }
    }

    /// The settings of the import and quantization checks: every graph optimization, ONNX
    /// Runtime's own thread default unless `threads` is given, spinning as ONNX Runtime has it.
    pub fn tooling(threads: Option<usize>) -> Self {
        Self {
            threads,
            spinning: Spinning::On,
            optimization: GraphOptimizationLevel::All,
            ..Self::default()
        }
    }
}

/// When ONNX Runtime's idle intra-op threads wait busily for work instead of sleeping.
///
/// Spinning saves the wake-up of a sleeping thread at each parallel section of a run (a batch-1
/// answer has dozens), at the price of the core it spins on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spinning {
    /// Never: idle threads sleep (the default of one-shot commands).
    #[default]
    Off,
    /// Within a run only: threads spin between the parallel sections of a run and stop at its end
    /// (ONNX Runtime's `session.force_spinning_stop`), so a core is free between two answers.
    InRun,
    /// As ONNX Runtime has it: threads also spin for a while after a run ends.
    On,
}

impl std::str::FromStr for Spinning {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "false" | "off" => Ok(Self::Off),
            "in-run" => Ok(Self::InRun),
            "true" | "on" => Ok(Self::On),
            _ => Err(format!("`{s}`: expected false, in-run or true")),
        }
    }
}

impl std::fmt::Display for Spinning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "false",
            Self::InRun => "in-run",
            Self::On => "true",
        })
    }
}

/// All available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Where [`open_session`] reads a model from.
#[derive(Debug, Clone, Copy)]
pub enum SessionSource<'a> {
    /// Serialized model bytes (named by the path they came from, for messages).
    Bytes(&'a [u8], &'a Path),
    /// A model file.
    File(&'a Path),
}

/// Opens an ONNX Runtime session (loading the library first if needed).
pub fn open_session(
    model: SessionSource,
    opts: &SessionOptions,
) -> Result<ort::session::Session, SessionError> {
    let path = match model {
        SessionSource::Bytes(_, p) | SessionSource::File(p) => p,
    };
    let err = |e: ort::Error| SessionError::Model {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut b = session_builder()?
        .with_optimization_level(opts.optimization)
        .map_err(|e| err(e.into()))?
        .with_memory_pattern(opts.memory_pattern)
        .map_err(|e| err(e.into()))?
        .with_intra_op_spinning(opts.spinning != Spinning::Off)
        .map_err(|e| err(e.into()))?
        .with_prepacking(opts.prepacking)
        .map_err(|e| err(e.into()))?;
    if opts.spinning == Spinning::InRun {
        b = b
            .with_config_entry("session.force_spinning_stop", "1")
            .map_err(|e| err(e.into()))?;
    }
    if let Some(t) = opts.threads {
        b = b
            .with_intra_threads(t.max(1))
            .map_err(|e| err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.into()))?;
    }
    if !opts.arena {
        b = b
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| err(e.into()))?;
    }
    if let Some(o) = &opts.optimized_model_path {
        b = b.with_optimized_model_path(o).map_err(|e| err(e.into()))?;
    }
    match model {
        SessionSource::Bytes(bytes, _) => b.commit_from_memory(bytes).map_err(err),
        SessionSource::File(p) => b.commit_from_file(p).map_err(err),
    }
}

/// A session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The library could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// ONNX Runtime refused the model or a setting.
    #[error("ONNX Runtime, {path}: {message}")]
    Model {
        /// The model file (or where its bytes came from).
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::Spinning;

    #[test]
    fn spinning_reads_what_it_writes_and_the_boolean_spellings() {
        for s in [Spinning::Off, Spinning::InRun, Spinning::On] {
            assert_eq!(s.to_string().parse::<Spinning>(), Ok(s), "{s}");
        }
        assert_eq!("off".parse::<Spinning>(), Ok(Spinning::Off));
        assert_eq!("on".parse::<Spinning>(), Ok(Spinning::On));
        let e = "sometimes".parse::<Spinning>().unwrap_err();
        assert!(e.contains("in-run"), "{e}");
    }
}
