//! Running an `edgetune` child process for one step of `choose`: its stdout collected, its stderr
//! streamed (prefixed) and its last lines kept for the error message, its peak RSS and wall time
//! measured.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::ChooseError;

/// What a child left behind.
#[derive(Debug, Clone)]
pub struct ChildRun {
    /// Its standard output.
    pub stdout: String,
    /// Peak resident memory (bytes), from the kernel's accounting of the child (`wait4`).
    pub peak_rss: u64,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// When each stdout line arrived, since spawn (the measuring child announces its first
    /// answer with a line).
    pub line_times: Vec<Duration>,
}

/// Lines of stderr kept for an error message.
const TAIL: usize = 12;

/// Runs `cmd` to completion. Its stderr lines are printed to ours prefixed `prefix` when `echo`;
/// a non-zero exit is an error carrying the last lines of its stderr.
pub fn run_child(mut cmd: Command, prefix: &str, echo: bool) -> Result<ChildRun, ChooseError> {
    let what = format!("{cmd:?}");
    let fail = |m: String| ChooseError::Measure(m);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {what}: {e}")))?;
    let pid = child.id() as libc::pid_t;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let prefix = prefix.to_string();
    let err_thread = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        if let Some(s) = stderr {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{prefix}{line}");
                }
                tail.push(line);
                if tail.len() > TAIL {
                    tail.remove(0);
                }
            }
        }
        tail
    });
    let mut out = String::new();
    let mut line_times = Vec::new();
    if let Some(s) = stdout {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            line_times.push(start.elapsed());
            out.push_str(&line);
            line.clear();
        }
        let _ = r.read_to_string(&mut out);
    }
    let (status, peak_rss) = wait(pid).map_err(|e| fail(format!("waiting for {what}: {e}")))?;
    let wall = start.elapsed();
    // The child was reaped by `wait`; `child` only closes its handles when dropped.
    drop(child);
    let tail = err_thread.join().unwrap_or_default();
    if status != 0 {
        return Err(fail(format!(
            "{what} failed ({}):\n{}",
            describe_status(status),
            tail.join("\n")
        )));
    }
    Ok(ChildRun {
        stdout: out,
        peak_rss,
        wall,
        line_times,
    })
}

/// Waits for `pid`; returns its raw wait status and its peak RSS in bytes.
fn wait(pid: libc::pid_t) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: `rusage` is plain data the kernel fills; `pid` is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // Linux reports ru_maxrss in KiB.
    Ok((status, (usage.ru_maxrss.max(0) as u64) * 1024))
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}
