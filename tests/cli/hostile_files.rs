//! Hostile files read by the library (issue 23): special files where a run, a tokenizer, an actions
//! file, a device or training data is expected, oversized lines, and a merged model crafted to
//! expand in memory. Each is refused at once with an error naming the file, without blocking and
//! without reading (or allocating) more than a bound.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo of a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on a thread and fails if it has not returned within 20 s (a blocked open or an
/// endless read), returning its result.
fn quickly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let t0 = Instant::now();
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: still running after {:?}", t0.elapsed()))
}

/// The special files tried in place of a regular one: a FIFO (no writer), /dev/zero (endless).
fn specials(dir: &Path) -> Vec<PathBuf> {
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let zero = dir.join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    vec![fifo, zero]
}

#[test]
fn a_run_config_that_is_a_fifo_or_dev_zero_is_refused_at_once() {
    for kind in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let special = specials(dir.path()).remove(kind);
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::rename(&special, run.join("config.json")).unwrap();
        let e = quickly("read_config", move || {
            edgetune::run::read_config(&run).unwrap_err().to_string()
        });
        assert!(
            e.contains("config.json") && e.contains("not a regular file"),
            "{e}"
        );
    }
}

#[test]
fn a_tokenizer_that_is_a_fifo_or_dev_zero_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for special in specials(dir.path()) {
        let e = quickly("tokenizer", move || {
            let e = edgetune::tokenize::WordTokenizer::from_file(&special, None)
                .err()
                .unwrap()
                .to_string();
            let h = edgetune::fsutil::sha256_file(&special)
                .unwrap_err()
                .to_string();
            format!("{e} / {h}")
        });
        assert!(e.matches("not a regular file").count() == 2, "{e}");
    }
}

#[test]
fn an_actions_file_or_device_path_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for special in specials(dir.path()) {
        let e = quickly("actions", move || {
            edgetune::device::Actions::load(&special)
                .unwrap_err()
                .to_string()
        });
        assert!(e.contains("not a regular file"), "{e}");
    }
    #[cfg(feature = "linux")]
    {
        use edgetune::device::{Hardware, Level, PinSpec};
        let fifo = dir.path().join("chip");
        mkfifo(&fifo);
        let pin: PinSpec = format!("{}:17", fifo.display()).parse().unwrap();
        let e = quickly("gpio chip", move || {
            edgetune::device::LinuxHardware::new()
                .output(&pin, Level::Low)
                .err()
                .unwrap()
                .to_string()
        });
        assert!(e.contains("not a character device"), "{e}");
    }
}

#[test]
fn a_training_line_over_64_kib_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.jsonl");
    let ok = r#"{"words": ["hi"], "intent": "greet"}"#;
    let long = format!(
        r#"{{"words": [{}], "intent": "greet"}}"#,
        vec![r#""w""#; 30_000].join(",")
    );
    std::fs::write(&path, format!("{ok}\n{ok}\n{long}\n{ok}\n")).unwrap();
    let e = edgetune::data::read_file_split(&path, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.jsonl:3:") && e.contains("longer than the limit of 65536"),
        "{e}"
    );
}

#[test]
fn a_merged_model_header_that_would_expand_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.onnx");
    // 5 million empty metadata_props entries: 10 MB on disk, over 250 MB once decoded.
    let bytes: Vec<u8> = std::iter::repeat_n([0x72u8, 0x00], 5_000_000)
        .flatten()
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let e = edgetune::graph::load_model_header(&path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused before decoding"), "{e}");
    let e = edgetune::MergedModel::open(&path, &edgetune::SessionOptions::with_threads(1))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("refused before decoding"), "{e}");
}
