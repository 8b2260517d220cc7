//! Locating and loading ONNX Runtime's shared library (`ort` with `load-dynamic`).
//!
//! Search order: an explicit path (the `--ort-lib` flag), then `$EDGETUNE_ORT_LIB`, then the places
//! set-up fills: `libonnxruntime.so` beside the executable (a deployed bundle), and
//! `.runtime/<arch>/libonnxruntime.so` in the executable's directory or any parent (a source checkout).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming the ONNX Runtime library.
pub const ORT_LIB_ENV: &str = "EDGETUNE_ORT_LIB";

/// File name of the library that set-up installs.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so";

/// Errors while finding or loading ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked in: {searched}); run the set-up (./setup.sh), \
         pass --ort-lib PATH or set {ORT_LIB_ENV}"
    )]
    NotFound { searched: String },
    #[error("ONNX Runtime library {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("ONNX Runtime was already initialised from {0}")]
    AlreadyFrom(PathBuf),
}

static LOADED: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The architecture folder name set-up uses under `.runtime/`.
pub fn arch_dir() -> &'static str {
    std::env::consts::ARCH
}

/// Finds the library: `explicit`, then the environment variable, then set-up's locations.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ORT_LIB_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut searched = Vec::new();
    let mut roots = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            roots.push(dir.to_path_buf());
            let bundled = dir.join(ORT_LIB_NAME);
            if bundled.is_file() {
                return Ok(bundled);
            }
            searched.push(bundled.display().to_string());
            let lib = dir.join("lib").join(ORT_LIB_NAME);
            if lib.is_file() {
                return Ok(lib);
            }
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    for root in roots {
        for dir in root.ancestors() {
            let candidate = dir.join(".runtime").join(arch_dir()).join(ORT_LIB_NAME);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        searched.push(format!(
            "{}/**/.runtime/{}/{ORT_LIB_NAME}",
            root.display(),
            arch_dir()
        ));
    }
    Err(RuntimeError::NotFound {
        searched: searched.join(", "),
    })
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
