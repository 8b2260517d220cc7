//! Helpers of the `serve` tests: a demo run trained once and copied per test, a service process
//! with its sockets, and JSON-line clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use super::root;

/// The feature cache every serve test shares (extraction of the demo data happens once).
pub fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-feature-cache")
}

/// `edgetune` with the shared cache, from the repository root.
pub fn edgetune() -> Command {
    super::edgetune(&cache())
}

static TRAIN: Mutex<()> = Mutex::new(());

/// A run trained on data/demo (seed 13), trained once for all the serve tests (kept in the
/// target directory's temp folder) and reused.
pub fn demo_run() -> PathBuf {
    let _one_at_a_time = TRAIN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-demo-run");
    if dir.join("config.json").is_file() && trained_on_current_backbone(&dir) {
        return dir;
    }
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = edgetune()
        .args(["--threads", "2", "train", "-q", "--seed", "13", "--data"])
        .arg(root().join("data/demo"))
        .arg("--out")
        .arg(&tmp)
        .output()
        .expect("edgetune starts");
    assert!(
        out.status.success(),
        "training the demo run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).unwrap();
    dir
}

/// Whether the run in `dir` records the backbone file it names with its present hash (set-up may
/// have replaced the models since the run was trained).
fn trained_on_current_backbone(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return false;
    };
    let Ok(config) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    let backbone = &config["backbone"];
    match (backbone["onnx"].as_str(), backbone["onnx_sha256"].as_str()) {
        (Some(path), Some(sha)) => {
            edgetune::fsutil::sha256_file(Path::new(path)).is_ok_and(|h| h == sha)
        }
        _ => false,
    }
}

/// A fresh copy of the demo run (its config and weights, no serve folder) in `parent`.
pub fn fresh_run(parent: &Path) -> PathBuf {
    let src = demo_run();
    let dst = parent.join("run");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "heads.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

/// A running `edgetune serve` with its Unix socket.
pub struct Server {
    pub child: Child,
    pub socket: PathBuf,
    pub stderr: PathBuf,
}

impl Server {
    /// Starts `edgetune --threads 2 serve --run RUN --socket DIR/s.sock ARGS...` (standard input
    /// stays open and unused) and waits until it answers a ping.
    pub fn start(run: &Path, dir: &Path, args: &[&str]) -> Server {
        let socket = dir.join("s.sock");
        let stderr = dir.join(format!(
            "stderr-{}.txt",
            Instant::now().elapsed().as_nanos()
        ));
        let child = edgetune()
            .args(["--threads", "2", "serve", "--run"])
            .arg(run)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("edgetune starts");
        let mut s = Server {
            child,
            socket,
            stderr,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = Client::try_connect(&self.socket) {
                if c.request(r#"{"cmd": "ping"}"#)["ok"] == true {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "serve exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "serve not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the service printed on standard error.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A new client on the socket.
    pub fn connect(&self) -> Client {
        Client::try_connect(&self.socket).expect("connect to the service")
    }

    /// SIGKILL, and waits for the process.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits for the process to exit.
    pub fn term(self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM)
    }

    /// Sends `sig`, and waits for the process to exit.
    pub fn signal(mut self, sig: i32) -> (ExitStatus, String) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let status = self.child.wait().unwrap();
        let log = self.log();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON-line client on a stream.
pub struct Client {
    pub writer: UnixStream,
    pub reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn try_connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(Client {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one reply line as JSON.
    pub fn reply(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the service closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line:?}"))
    }

    /// Sends one line and reads its reply.
    pub fn request(&mut self, line: &str) -> Value {
        self.send(format!("{line}\n").as_bytes());
        self.reply()
    }

    /// Reads until the end of the stream.
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_to_string(&mut s).unwrap();
        s
    }
}

/// Polls `{"cmd": "stats"}` on `c` until `done(stats)` holds (at most 300 s), and returns them.
pub fn wait_stats(c: &mut Client, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = c.request(r#"{"cmd": "stats"}"#);
        if done(&s) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "gave up waiting; last stats: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The intent label of an answer.
pub fn intent(v: &Value) -> &str {
    v["intent"]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("no intent in {v}"))
}
