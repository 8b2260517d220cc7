//! Progress of long steps on stderr: a bar on a terminal, one plain line every few seconds
//! elsewhere (a log file, systemd's journal, CI, a piped ssh session), always with done/total, the
//! rate and the time left.
//!
//! The choice is made once per [`Progress`] by [`std::io::IsTerminal`] on stderr. In line mode a
//! line is printed when [`interval`] has passed since the previous one, and a closing line when
//! the step finishes; `EDGETUNE_PROGRESS_SECS` sets the interval (seconds, fractions allowed; 0
//! prints a line at every update).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Environment variable overriding [`DEFAULT_INTERVAL`] (seconds).
pub const INTERVAL_ENV: &str = "EDGETUNE_PROGRESS_SECS";

/// Seconds between two progress lines when stderr is not a terminal.
pub const DEFAULT_INTERVAL: f64 = 5.0;

/// The line interval: `$EDGETUNE_PROGRESS_SECS` when it is a number >= 0, else [`DEFAULT_INTERVAL`].
pub fn interval() -> Duration {
    let secs = std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(DEFAULT_INTERVAL);
    Duration::from_secs_f64(secs.min(86_400.0))
}

enum Mode {
    Hidden,
    Bar(indicatif::ProgressBar),
    Lines { every: Duration, last: Instant },
}

/// The progress of one step that does `total` units of work (sentences, steps, batches).
pub struct Progress {
    label: String,
    unit: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    mode: Mode,
}

impl Progress {
    /// A progress display for `label` (e.g. `extracting train`) over `total` `unit`s; nothing is
    /// shown when `enabled` is false or there is nothing to do.
    pub fn new(label: impl Into<String>, total: u64, unit: &'static str, enabled: bool) -> Self {
        let label = label.into();
        let mode = if !enabled || total == 0 {
            Mode::Hidden
        } else if std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(total);
            let template = format!(
                "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
                b.set_style(style);
            }
            b.set_prefix(label.clone());
            Mode::Bar(b)
        } else {
            Mode::Lines {
                every: interval(),
                last: Instant::now(),
            }
        };
        Self {
            label,
            unit,
            total,
            done: 0,
            start: Instant::now(),
            mode,
        }
    }

    /// A progress that shows nothing.
    pub fn hidden() -> Self {
        Self::new("", 0, "", false)
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Records `n` more units done.
    pub fn inc(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        match &mut self.mode {
            Mode::Hidden => {}
            Mode::Bar(b) => b.inc(n),
            Mode::Lines { every, last } => {
                if last.elapsed() >= *every && self.done < self.total {
                    *last = Instant::now();
                    let line = self.line();
                    emit(&line);
                }
            }
        }
    }

    /// Ends the display: the bar is cleared; in line mode a closing line gives the count, the time
    /// taken and the rate.
    pub fn finish(mut self) {
        match std::mem::replace(&mut self.mode, Mode::Hidden) {
            Mode::Hidden => {}
            Mode::Bar(b) => b.finish_and_clear(),
            Mode::Lines { .. } => {
                let secs = self.start.elapsed().as_secs_f64();
                emit(&format!(
                    "{}: {}/{} {} in {}, {}",
                    self.label,
                    self.done,
                    self.total,
                    self.unit,
                    fmt_duration(secs),
                    fmt_rate(self.done, secs, self.unit)
                ));
            }
        }
    }

    /// Ends the display without a closing line (for a step whose caller reports its end itself).
    pub fn clear(mut self) {
        if let Mode::Bar(b) = std::mem::replace(&mut self.mode, Mode::Hidden) {
            b.finish_and_clear();
        }
    }

    /// The status line: done/total, percent, rate and time left.
    pub fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        let eta = if self.done == 0 || secs <= 0.0 {
            "unknown".to_string()
        } else {
            let left = (self.total - self.done) as f64 * secs / self.done as f64;
            fmt_duration(left)
        };
        format!(
            "{}: {}/{} {} ({pct:.0}%), {}, eta {eta}",
            self.label,
            self.done,
            self.total,
            self.unit,
            fmt_rate(self.done, secs, self.unit)
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A step abandoned on an error leaves no half-drawn bar behind.
        if let Mode::Bar(b) = &self.mode {
            b.finish_and_clear();
        }
    }
}

fn emit(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
    let _ = e.flush();
}

/// `units/s` with a precision that suits the magnitude.
fn fmt_rate(done: u64, secs: f64, unit: &str) -> String {
    if secs <= 0.0 {
        return format!("- {unit}/s");
    }
    let r = done as f64 / secs;
    if r >= 100.0 {
        format!("{r:.0} {unit}/s")
    } else if r >= 1.0 {
        format!("{r:.1} {unit}/s")
    } else {
        format!("{r:.3} {unit}/s")
    }
}

/// `42 s`, `3 min 05 s`, `2 h 01 min`.
pub fn fmt_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "unknown".into();
    }
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_lines_read_well() {
        assert_eq!(fmt_duration(4.4), "4 s");
        assert_eq!(fmt_duration(185.0), "3 min 05 s");
        assert_eq!(fmt_duration(7290.0), "2 h 01 min");
        assert_eq!(fmt_duration(f64::NAN), "unknown");
        let mut p = Progress::new("extracting train", 10, "sentences", false);
        let first = p.line();
        assert!(
            first.starts_with("extracting train: 0/10 sentences (0%), "),
            "{first}"
        );
        assert!(first.ends_with("eta unknown"), "{first}");
        p.inc(4);
        p.inc(100);
        assert_eq!(p.done(), 10, "done never passes the total");
        assert!(
            p.line()
                .starts_with("extracting train: 10/10 sentences (100%), "),
            "{}",
            p.line()
        );
        assert!(p.line().ends_with("eta 0 s"), "{}", p.line());
    }
}
