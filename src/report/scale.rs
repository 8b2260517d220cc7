//! Value-to-pixel scales and "nice" tick positions.

/// Maps a data interval onto a pixel interval, linearly or in log10.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
    log: bool,
}

impl Scale {
    /// Linear scale from data `[d0, d1]` to pixels `[r0, r1]`.
    pub(crate) fn linear(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let (d0, d1) = sane(d0, d1);
        Scale {
            d0,
            d1,
            r0,
            r1,
            log: false,
        }
    }

    /// Log10 scale; the data bounds must be positive (otherwise falls back
    /// to `[1e-6, 1]`).
    pub(crate) fn log(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let (d0, d1) = if ok(d0) && ok(d1) {
            (d0.log10(), d1.log10())
        } else {
            (-6.0, 0.0)
        };
        let (d0, d1) = sane(d0, d1);
        Scale {
            d0,
            d1,
            r0,
            r1,
            log: true,
        }
    }

    pub(crate) fn is_log(&self) -> bool {
        self.log
    }

    /// Pixel position of `v` (clamped to the pixel range; NaN maps to r0).
    pub(crate) fn map(&self, v: f64) -> f64 {
        let v = if self.log {
            if v > 0.0 {
                v.log10()
            } else {
                f64::NEG_INFINITY
            }
        } else {
            v
        };
        let t = (v - self.d0) / (self.d1 - self.d0);
        let t = if t.is_nan() {
            0.0
        } else {
            t.clamp(-0.02, 1.02)
        };
        self.r0 + t * (self.r1 - self.r0)
    }

    /// True when `v` lies within the data range.
    pub(crate) fn contains(&self, v: f64) -> bool {
        let v = if self.log {
            if v > 0.0 {
                v.log10()
            } else {
                return false;
            }
        } else {
            v
        };
        v >= self.d0.min(self.d1) - 1e-12 && v <= self.d0.max(self.d1) + 1e-12
    }

    /// Tick values (roughly `target` of them) inside the data range.
    pub(crate) fn ticks(&self, target: usize) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.d0.min(self.d1).ceil() as i32,
                self.d0.max(self.d1).floor() as i32,
            );
            let span = (b - a).max(0) as usize + 1;
            let every = span.div_ceil(target.max(1)).max(1);
            (a..=b).step_by(every).map(|e| 10f64.powi(e)).collect()
        } else {
            nice_ticks(self.d0.min(self.d1), self.d0.max(self.d1), target)
        }
    }
}

fn sane(d0: f64, d1: f64) -> (f64, f64) {
    let (d0, d1) = (
        if d0.is_finite() { d0 } else { 0.0 },
        if d1.is_finite() { d1 } else { 1.0 },
    );
    if (d1 - d0).abs() < 1e-300 {
        (d0 - 0.5, d1 + 0.5)
    } else {
        (d0, d1)
    }
}

/// A "nice" step (1, 2, 2.5 or 5 times a power of ten) near `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p - 1e-9;
    let n = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 2.5 {
        2.5
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

/// Nice tick values within `[lo, hi]`.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return Vec::new();
    }
    let step = nice_step((hi - lo) / target.max(1) as f64);
    let first = (lo / step - 1e-9).ceil();
    let mut out = Vec::new();
    let mut k = first;
    while out.len() < 200 {
        let v = k * step;
        if v > hi + step * 1e-9 {
            break;
        }
        // Avoid "-0" and float noise like 0.30000000000000004.
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// Number of decimals needed to print ticks spaced `step` apart.
pub(crate) fn decimals_for(step: f64) -> usize {
    if !step.is_finite() || step <= 0.0 {
        return 0;
    }
    let mut d = 0usize;
    while d < 8
        && ((step * 10f64.powi(d as i32)).round() - step * 10f64.powi(d as i32)).abs() > 1e-6
    {
        d += 1;
    }
    d
}

/// Formats tick values with a shared number of decimals.
pub(crate) fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let step = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    let d = if step.is_finite() {
        decimals_for(step)
    } else {
        0
    };
    ticks.iter().map(|v| format!("{v:.d$}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            tick_labels(&nice_ticks(0.98, 1.0, 4)),
            vec!["0.980", "0.985", "0.990", "0.995", "1.000"]
        );
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
        let s = Scale::linear(3.0, 3.0, 0.0, 100.0);
        assert!(s.map(3.0).is_finite());
        assert_eq!(s.map(f64::NAN), 0.0);
        let l = Scale::log(1e-4, 1.0, 0.0, 400.0);
        assert_eq!(l.ticks(10), vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert!((l.map(1e-2) - 200.0).abs() < 1e-9);
    }
}
