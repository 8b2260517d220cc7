//! The backbone choice as a picture (`edgetune choose`): validation score against batch-1
//! latency, one bubble per candidate whose area is its memory, the Pareto front (no other
//! candidate is both faster and better) as a line, candidates a limit ruled out hollow, and the
//! recommended one ringed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
use crate::report::scale::{nice_step, tick_labels, Scale};
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// One candidate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    /// Candidate name.
    pub name: String,
    /// Validation score in `[0, 1]`.
    pub score: f64,
    /// Batch-1 latency (ms).
    pub latency_ms: f64,
    /// Memory (bytes): the bubble's area.
    pub memory_bytes: f64,
    /// Why a limit ruled it out (drawn hollow), if one did.
    pub ruled_out: Option<String>,
    /// The recommended candidate (ringed).
    pub recommended: bool,
}

/// Input of [`render_pareto`] / [`write_pareto`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParetoChart {
    /// Chart title; empty gives "Backbone choice: score vs latency".
    pub title: String,
    /// A line under the title (device, data); may be empty.
    pub subtitle: String,
    /// The candidates.
    pub points: Vec<ParetoPoint>,
}

/// One candidate as drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoRow {
    /// The candidate.
    #[serde(flatten)]
    pub point: ParetoPoint,
    /// On the Pareto front (no other candidate at least as good in score and latency and
    /// better in one).
    pub front: bool,
}

/// The data a Pareto chart was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoData {
    /// Title as drawn.
    pub title: String,
    /// Candidates in input order; those with a non-finite score or latency are not drawn.
    pub points: Vec<ParetoRow>,
}

/// Whether `p` is on the Pareto front of `all` (higher score and lower latency are better).
pub fn on_front(p: &ParetoPoint, all: &[ParetoPoint]) -> bool {
    let ok = |q: &ParetoPoint| q.score.is_finite() && q.latency_ms.is_finite();
    ok(p)
        && !all.iter().filter(|q| ok(q)).any(|q| {
            q.score >= p.score
                && q.latency_ms <= p.latency_ms
                && (q.score > p.score || q.latency_ms < p.latency_ms)
        })
}

impl ParetoChart {
    /// The data as it will be drawn.
    pub fn data(&self) -> ParetoData {
        ParetoData {
            title: if self.title.trim().is_empty() {
                "Backbone choice: score vs latency".into()
            } else {
                self.title.clone()
            },
            points: self
                .points
                .iter()
                .map(|p| ParetoRow {
                    point: p.clone(),
                    front: on_front(p, &self.points),
                })
                .collect(),
        }
    }
}

/// Draws the chart in memory.
pub fn render_pareto(chart: &ParetoChart) -> Result<Rendered<ParetoData>> {
    text::ensure_fonts()?;
    let data = chart.data();
    let canvas = draw(&data, &chart.subtitle);
    Rendered::from_canvas(&canvas, data)
}

/// Draws the chart and writes `stem.svg`, `stem.png` and `stem.json` (atomically).
pub fn write_pareto(stem: &Path, chart: &ParetoChart) -> Result<ChartFiles<ParetoData>> {
    crate::report::chart::write_chart(stem, render_pareto(chart)?)
}

const W: f64 = 820.0;
const H: f64 = 560.0;
const MAX_R: f64 = 34.0;
const MIN_R: f64 = 5.0;

fn scales(rows: &[&ParetoRow], x0: f64, x1: f64, y0: f64, y1: f64) -> (Scale, Scale) {
    let lat: Vec<f64> = rows.iter().map(|r| r.point.latency_ms).collect();
    let (lmin, lmax) = lat
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let xs = if lmin > 0.0 && lmax / lmin > 8.0 {
        let lo = 10f64.powf(lmin.log10().floor());
        let hi = 10f64.powf(lmax.log10().ceil());
        Scale::log(lo, hi, x0, x1)
    } else {
        let step = nice_step((lmax * 1.15).max(1e-3) / 5.0);
        Scale::linear(0.0, (lmax * 1.15 / step).ceil() * step, x0, x1)
    };
    let scores: Vec<f64> = rows.iter().map(|r| r.point.score * 100.0).collect();
    let (smin, smax) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = (smax - smin).max(2.0);
    let step = nice_step(span * 1.4 / 5.0);
    let lo = ((smin - span * 0.2) / step).floor() * step;
    let hi = (((smax + span * 0.2) / step).ceil() * step).min(100.0 + step);
    (xs, Scale::linear(lo.max(0.0), hi, y1, y0))
}

fn draw(d: &ParetoData, subtitle: &str) -> Canvas {
    let mut c = Canvas::new(W, H, &d.title);
    c.text(
        &text::fit(&d.title, W - 48.0, TITLE_EM, true),
        24.0,
        20.0,
        Font::new(TITLE_EM, INK)
            .bold()
            .align(HAlign::Left, VAlign::Top),
    );
    let legend = "bubble area = peak memory answering  ·  hollow = ruled out by a limit  ·  \
                  ringed = recommended  ·  line = Pareto front";
    for (i, s) in [subtitle, legend]
        .iter()
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        c.text(
            &text::fit(s, W - 48.0, SUB_EM, false),
            24.0,
            48.0 + 18.0 * i as f64,
            Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
        );
    }
    let (gx0, gx1, gy0, gy1) = (86.0, W - 40.0, 104.0, H - 64.0);
    let rows: Vec<&ParetoRow> = d
        .points
        .iter()
        .filter(|r| r.point.score.is_finite() && r.point.latency_ms.is_finite())
        .collect();
    if rows.is_empty() {
        c.text(
            "no candidate was measured",
            W / 2.0,
            (gy0 + gy1) / 2.0,
            Font::new(LABEL_EM, FAINT).align(HAlign::Center, VAlign::Middle),
        );
        return c;
    }
    let (xs, ys) = scales(&rows, gx0, gx1, gy0, gy1);
    axes(&mut c, &xs, &ys, (gx0, gx1, gy0, gy1));
    // The front, left to right.
    let mut front: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.front)
        .map(|r| (xs.map(r.point.latency_ms), ys.map(r.point.score * 100.0)))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    c.line(front, BAR.alpha(0.5), 2.0);
    let max_mem = rows
        .iter()
        .map(|r| r.point.memory_bytes)
        .filter(|m| m.is_finite())
        .fold(0f64, f64::max);
    // Largest bubbles first, so small ones stay visible on top.
    let mut order: Vec<(usize, &ParetoRow)> = rows.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.point.memory_bytes.total_cmp(&a.1.point.memory_bytes));
    for (i, r) in order {
        bubble(&mut c, r, PALETTE[i % PALETTE.len()], &xs, &ys, max_mem);
    }
    c
}

fn axes(c: &mut Canvas, xs: &Scale, ys: &Scale, (gx0, gx1, gy0, gy1): (f64, f64, f64, f64)) {
    let tf = Font::new(TICK_EM, MUTED);
    let xt = if xs.is_log() {
        // 1-2-5 steps within each decade.
        let decades = xs.ticks(12);
        let mut t: Vec<f64> = decades
            .iter()
            .flat_map(|d| [*d, 2.0 * d, 5.0 * d])
            .filter(|v| xs.contains(*v))
            .collect();
        t.dedup();
        t
    } else {
        xs.ticks(6)
    };
    let xl: Vec<String> = if xs.is_log() {
        xt.iter().map(|v| text::num(*v)).collect()
    } else {
        tick_labels(&xt)
    };
    for (t, l) in xt.iter().zip(&xl) {
        let x = xs.map(*t).round();
        c.line(vec![(x, gy0), (x, gy1)], GRID, 1.0);
        c.text(l, x, gy1 + 6.0, tf.align(HAlign::Center, VAlign::Top));
    }
    let yt = ys.ticks(6);
    for (t, l) in yt.iter().zip(tick_labels(&yt)) {
        let y = ys.map(*t).round();
        c.line(vec![(gx0, y), (gx1, y)], GRID, 1.0);
        c.text(&l, gx0 - 8.0, y, tf.align(HAlign::Right, VAlign::Middle));
    }
    c.frame(gx0, gy0, gx1, gy1, AXIS, 1.0);
    let xlabel = if xs.is_log() {
        "batch-1 latency p50 (ms, log scale; lower is better)"
    } else {
        "batch-1 latency p50 (ms; lower is better)"
    };
    c.text(
        xlabel,
        (gx0 + gx1) / 2.0,
        gy1 + 28.0,
        Font::new(LABEL_EM, INK).align(HAlign::Center, VAlign::Top),
    );
    c.text(
        "validation score (%; higher is better)",
        24.0,
        (gy0 + gy1) / 2.0,
        Font::new(LABEL_EM, INK)
            .align(HAlign::Center, VAlign::Top)
            .vertical(),
    );
}

fn bubble(
    c: &mut Canvas,
    r: &ParetoRow,
    color: crate::report::canvas::Rgba,
    xs: &Scale,
    ys: &Scale,
    max_mem: f64,
) {
    let p = &r.point;
    let (x, y) = (xs.map(p.latency_ms), ys.map(p.score * 100.0));
    let rad = if max_mem > 0.0 && p.memory_bytes.is_finite() && p.memory_bytes > 0.0 {
        (MAX_R * (p.memory_bytes / max_mem).sqrt()).max(MIN_R)
    } else {
        MIN_R
    };
    match &p.ruled_out {
        None => {
            c.circle(x, y, rad, color.alpha(0.55), true, 1.0);
            c.circle(x, y, rad, color, false, 1.5);
        }
        Some(_) => {
            c.circle(x, y, rad, FAINT, false, 1.5);
            c.dashed(
                (x - rad * 0.7, y + rad * 0.7),
                (x + rad * 0.7, y - rad * 0.7),
                BAD,
                1.5,
                4.0,
                3.0,
            );
        }
    }
    if p.recommended {
        c.circle(x, y, rad + 5.0, INK, false, 2.5);
    }
    let label_color = if p.ruled_out.is_some() { FAINT } else { TEXT };
    let mut f = Font::new(LABEL_EM, label_color).align(HAlign::Left, VAlign::Middle);
    if p.recommended {
        f = f.bold();
    }
    c.text(&text::clean(&p.name), x + rad + 7.0, y, f);
    let mut tip = format!(
        "{}\nscore {}%\nlatency p50 {} ms\nmemory {} MiB",
        p.name,
        text::pct(p.score),
        text::num(p.latency_ms),
        text::num(p.memory_bytes / 1048576.0)
    );
    if let Some(why) = &p.ruled_out {
        tip.push_str(&format!("\nruled out: {why}"));
    }
    if r.front {
        tip.push_str("\non the Pareto front");
    }
    c.tip(x - rad, y - rad, 2.0 * rad, 2.0 * rad, tip);
}
