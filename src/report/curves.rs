//! Training curves: validation scores per task and the score that picks the
//! kept epoch (top panel) and training loss (bottom panel) per epoch run,
//! with the kept epoch and the early-stopping point marked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
use crate::report::layout::{self, Key};
use crate::report::scale::{nice_step, tick_labels, Scale};
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// One epoch of a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Epoch number as the run counts it (usually from 1).
    pub epoch: usize,
    /// Mean training loss of the epoch (NaN/∞ are drawn as a marked gap).
    pub loss: f64,
    /// Validation scores as fractions in 0..=1, keyed by a display name such
    /// as `intent accuracy` or `tags span F1`.
    pub scores: BTreeMap<String, f64>,
    /// The validation score that picks the kept epoch (a fraction; drawn as its own dashed
    /// series, first in the legend), when the run has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_score: Option<f64>,
}

/// Input of [`render_training_curves`] / [`write_training_curves`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingCurves {
    /// Chart title; empty gives "Training curves".
    pub title: String,
    /// The epochs, in any order (drawn sorted by epoch).
    pub points: Vec<EpochPoint>,
    /// The epoch whose weights were kept (marked with a line and rings).
    pub best_epoch: Option<usize>,
    /// The epoch after which early stopping ended training (None when the
    /// run used all its epochs).
    pub early_stop_epoch: Option<usize>,
    /// Planned number of epochs (named in the subtitle; the x axis spans the
    /// epochs that ran).
    pub max_epochs: Option<usize>,
}

/// Name of the series of [`EpochPoint::selection_score`].
pub const SELECTION: &str = "selection score";
/// Its tooltip in the legend.
const SELECTION_TIP: &str = "selection score: the validation score that picks the kept epoch \
    (the mean of the tasks' headline scores and, with two or more tasks, the all-tasks accuracy)";

/// One validation-score series as drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesData {
    /// Series name (the key in [`EpochPoint::scores`]).
    pub name: String,
    /// Score in percent per entry of [`CurvesData::epochs`]; `None` where the
    /// epoch has no (finite) value.
    pub percent: Vec<Option<f64>>,
    /// Score in percent at the best epoch (or the last epoch if no best
    /// epoch is given).
    pub at_best: Option<f64>,
}

/// The data a training-curves chart was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvesData {
    /// Title as drawn.
    pub title: String,
    /// Epoch numbers, sorted.
    pub epochs: Vec<usize>,
    /// Training loss per epoch; `None` where it was NaN or infinite.
    pub loss: Vec<Option<f64>>,
    /// Epochs whose loss was NaN or infinite.
    pub nonfinite_loss_epochs: Vec<usize>,
    /// Validation-score series, sorted by name.
    pub series: Vec<SeriesData>,
    /// The score that picks the kept epoch ([`EpochPoint::selection_score`]), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SeriesData>,
    /// See [`TrainingCurves::best_epoch`].
    pub best_epoch: Option<usize>,
    /// See [`TrainingCurves::early_stop_epoch`].
    pub early_stop_epoch: Option<usize>,
    /// See [`TrainingCurves::max_epochs`].
    pub max_epochs: Option<usize>,
}

impl TrainingCurves {
    /// The data as it will be drawn (sorted, non-finite values removed).
    pub fn data(&self) -> CurvesData {
        let mut pts: Vec<&EpochPoint> = self.points.iter().collect();
        pts.sort_by_key(|p| p.epoch);
        let names: BTreeSet<&String> = pts.iter().flat_map(|p| p.scores.keys()).collect();
        let epochs: Vec<usize> = pts.iter().map(|p| p.epoch).collect();
        let ref_idx = match self.best_epoch {
            Some(b) => pts.iter().position(|p| p.epoch == b),
            None => pts.len().checked_sub(1),
        };
        let series_of = |name: &str, value: &dyn Fn(&EpochPoint) -> Option<f64>| {
            let percent: Vec<Option<f64>> = pts
                .iter()
                .map(|p| value(p).filter(|v| v.is_finite()).map(|v| v * 100.0))
                .collect();
            let at_best = ref_idx.and_then(|i| percent.get(i).copied().flatten());
            SeriesData {
                name: name.to_string(),
                percent,
                at_best,
            }
        };
        let series = names
            .into_iter()
            .map(|name| series_of(name, &|p| p.scores.get(name).copied()))
            .collect();
        let selection = pts
            .iter()
            .any(|p| p.selection_score.is_some())
            .then(|| series_of(SELECTION, &|p| p.selection_score));
        CurvesData {
            title: layout::title_or(&self.title, "Training curves"),
            loss: pts
                .iter()
                .map(|p| Some(p.loss).filter(|v| v.is_finite()))
                .collect(),
            nonfinite_loss_epochs: pts
                .iter()
                .filter(|p| !p.loss.is_finite())
                .map(|p| p.epoch)
                .collect(),
            epochs,
            series,
            selection,
            best_epoch: self.best_epoch,
            early_stop_epoch: self.early_stop_epoch,
            max_epochs: self.max_epochs,
        }
    }
}

/// Draws the training curves in memory.
pub fn render_training_curves(curves: &TrainingCurves) -> Result<Rendered<CurvesData>> {
    text::ensure_fonts()?;
    let data = curves.data();
    let canvas = draw(&data);
    Rendered::from_canvas(&canvas, data)
}

/// Draws the training curves and writes `stem.svg`, `stem.png` and
/// `stem.json` (atomically).
pub fn write_training_curves(
    stem: &Path,
    curves: &TrainingCurves,
) -> Result<ChartFiles<CurvesData>> {
    crate::report::chart::write_chart(stem, render_training_curves(curves)?)
}

const W: f64 = 980.0;
const LEFT: f64 = 84.0;
const LEGEND_W: f64 = 250.0;
const ROW: f64 = 21.0;
const PLOT_R: f64 = W - LEGEND_W - 36.0;
const LEGEND_X: f64 = PLOT_R + 26.0;
const LOSS: Rgba = Rgba::hex(0x444444);
/// The selection score's dashes.
const SELECTION_KEY: Key = Key::Dash(INK, 2.0, 6.0, 3.0);

/// Where things go: the score panel on top, the loss panel under it, the legends on the right.
struct Frame {
    x: Scale,
    xticks: Vec<f64>,
    score: Scale,
    loss: Scale,
    /// Top and bottom of the score panel and of the loss panel.
    top: (f64, f64),
    bottom: (f64, f64),
    /// Rows of the score legend.
    rows: usize,
}

impl Frame {
    fn new(d: &CurvesData) -> Self {
        let rows = d.series.len() + usize::from(d.selection.is_some());
        let top0 = 96.0;
        let top1 = top0 + (30.0 + rows as f64 * ROW).clamp(290.0, 760.0);
        let loss0 = top1 + 30.0;
        let (x, xticks) = epoch_axis(&d.epochs);
        let scores: Vec<f64> = d
            .series
            .iter()
            .chain(&d.selection)
            .flat_map(|s| s.percent.iter().flatten().copied())
            .collect();
        let losses: Vec<f64> = d.loss.iter().flatten().copied().collect();
        let ((s0, s1), (l0, l1)) = (score_range(&scores), loss_range(&losses));
        Frame {
            x,
            xticks,
            score: Scale::linear(s0, s1, top1, top0),
            loss: Scale::linear(l0, l1, loss0 + 170.0, loss0),
            top: (top0, top1),
            bottom: (loss0, loss0 + 170.0),
            rows,
        }
    }

    fn height(&self) -> f64 {
        self.bottom.1 + 58.0
    }

    /// Pixel poly-lines of a series on `y`, split where values are missing.
    fn segments(&self, epochs: &[usize], vals: &[Option<f64>], y: &Scale) -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut cur = Vec::new();
        for (e, v) in epochs.iter().zip(vals) {
            match v {
                Some(v) => cur.push((self.x.map(*e as f64), y.map(*v))),
                None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
                None => {}
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}

/// The x axis over the epochs that ran, with at most about eight whole-number ticks.
fn epoch_axis(epochs: &[usize]) -> (Scale, Vec<f64>) {
    let (lo, hi) = match (epochs.first(), epochs.last()) {
        (Some(&a), Some(&b)) => (a as f64, b as f64),
        _ => (1.0, 1.0),
    };
    let step = match nice_step((hi - lo) / 8.0).max(1.0) {
        s if s.fract() != 0.0 => (s * 2.0).round(), // 2.5 -> 5, 25 -> 50
        s => s,
    };
    let mut ticks = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while !epochs.is_empty() && t <= hi && ticks.len() < 100 {
        ticks.push(t);
        t += step;
    }
    (Scale::linear(lo - 0.5, hi + 0.5, LEFT, PLOT_R), ticks)
}

/// Percent range of the scores: 2 points of air, whole fives, at least 10 wide, snapped to the
/// tick grid so that the top and bottom are labelled.
fn score_range(vals: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = if vals.is_empty() {
        (0.0, 100.0)
    } else {
        let mn = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let mx = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lo = ((mn - 2.0) / 5.0).floor() * 5.0;
        let hi = ((mx + 2.0) / 5.0).ceil() * 5.0;
        (
            if mn >= 0.0 { lo.max(0.0) } else { lo },
            if mx <= 100.0 { hi.min(100.0) } else { hi },
        )
    };
    if hi - lo < 10.0 {
        if hi >= 100.0 {
            lo = hi - 10.0;
        } else {
            hi = lo + 10.0;
        }
    }
    let step = nice_step((hi - lo) / 5.0);
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

/// Loss range: from 0 (or the lowest negative loss) to a tick above the highest.
fn loss_range(losses: &[f64]) -> (f64, f64) {
    if losses.is_empty() {
        return (0.0, 1.0);
    }
    let mn = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let mx = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = if mn >= 0.0 { 0.0 } else { mn };
    let hi = if mx > lo { mx } else { lo + 1.0 };
    let step = nice_step((hi - lo) / 4.0);
    (lo, (hi / step).ceil() * step)
}

pub(crate) fn draw(d: &CurvesData) -> Canvas {
    let f = Frame::new(d);
    let mut c = Canvas::new(W, f.height(), &d.title);
    layout::header(&mut c, &d.title, W, &[subtitle(d)]);
    panels(&mut c, &f);
    if d.epochs.is_empty() {
        let x = (LEFT + PLOT_R) / 2.0;
        for (y0, y1) in [f.top, f.bottom] {
            layout::empty_note(
                &mut c,
                "no epochs recorded",
                x,
                (y0 + y1) / 2.0,
                LABEL_EM + 1.0,
            );
        }
        return c;
    }
    markers(&mut c, d, &f);
    series(&mut c, d, &f);
    loss(&mut c, d, &f);
    score_legend(&mut c, d, &f);
    loss_legend(&mut c, d, &f);
    c
}

/// `14 epochs · kept epoch 9 · early stop after epoch 14 · max 30 epochs`.
fn subtitle(d: &CurvesData) -> String {
    let n = d.epochs.len();
    let mut sub = vec![format!("{n} epoch{}", if n == 1 { "" } else { "s" })];
    sub.extend(d.best_epoch.map(|b| format!("kept epoch {b}")));
    sub.extend(
        d.early_stop_epoch
            .map(|s| format!("early stop after epoch {s}")),
    );
    sub.extend(d.max_epochs.map(|m| format!("max {m} epochs")));
    sub.join("  ·  ")
}

/// Both panels' grids and axes, their titles, and the shared epoch axis under the loss panel.
fn panels(c: &mut Canvas, f: &Frame) {
    let title = Font::new(LABEL_EM, TEXT);
    for ((y0, y1), scale, name) in [
        (f.top, &f.score, "validation score (%)"),
        (f.bottom, &f.loss, "training loss"),
    ] {
        layout::y_grid(c, scale, LEFT, PLOT_R);
        let labels = vec![String::new(); f.xticks.len()];
        layout::x_grid(c, &f.x, &f.xticks, &labels, (y0, y1), (false, false));
        c.line(vec![(LEFT, y0), (LEFT, y1), (PLOT_R, y1)], AXIS, 1.0);
        layout::y_title(c, name, 18.0, (y0, y1), title);
    }
    let loss1 = f.bottom.1;
    let tf = Font::at(TICK_EM, MUTED, HAlign::Center, VAlign::Top);
    for (t, l) in f.xticks.iter().zip(tick_labels(&f.xticks)) {
        c.text(&l, f.x.map(*t), loss1 + 6.0, tf);
    }
    let af = title.align(HAlign::Center, VAlign::Top);
    c.text("epoch", (LEFT + PLOT_R) / 2.0, loss1 + 28.0, af);
}

/// The early-stop line (dashed) and the kept epoch's line through both panels, labelled.
fn markers(c: &mut Canvas, d: &CurvesData, f: &Frame) {
    let (span, top0, loss1) = ((LEFT, PLOT_R), f.top.0, f.bottom.1);
    if let Some(s) = d.early_stop_epoch {
        let x = f.x.map(s as f64);
        c.dashed((x, top0), (x, loss1), MUTED, 1.5, 6.0, 4.0);
        let label = format!("early stop · epoch {s}");
        layout::flag(c, &label, x, f.top.1 + 4.0, span, MUTED, false);
    }
    if let Some(b) = d.best_epoch {
        let x = f.x.map(b as f64);
        c.line(vec![(x, top0), (x, loss1)], INK.alpha(0.55), 1.5);
        layout::flag(
            c,
            &format!("★ kept epoch {b}"),
            x,
            top0 - 22.0,
            span,
            INK,
            true,
        );
    }
}

/// The index of the kept epoch among the epochs drawn.
fn best_index(d: &CurvesData) -> Option<usize> {
    d.best_epoch
        .and_then(|b| d.epochs.iter().position(|&e| e == b))
}

/// Every task's score line with its markers (all of them up to 40 epochs), the selection score
/// dashed over them, and a ring on each at the kept epoch.
fn series(c: &mut Canvas, d: &CurvesData, f: &Frame) {
    let show_markers = d.epochs.len() <= 40;
    let ring = |c: &mut Canvas, s: &SeriesData, color| {
        if let Some(v) = best_index(d).and_then(|bi| s.percent.get(bi).copied().flatten()) {
            let x = f.x.map(d.best_epoch.unwrap_or_default() as f64);
            c.circle(x, f.score.map(v), 7.5, color, false, 2.0);
        }
    };
    for (i, s) in d.series.iter().enumerate() {
        let (color, shape) = (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()]);
        for seg in f.segments(&d.epochs, &s.percent, &f.score) {
            c.line(seg.clone(), color, 2.0);
            if show_markers || seg.len() == 1 {
                for (x, y) in seg {
                    c.marker(shape, x, y, 3.6, color);
                }
            }
        }
        ring(c, s, color);
    }
    if let Some(s) = &d.selection {
        for seg in f.segments(&d.epochs, &s.percent, &f.score) {
            for w in seg.windows(2) {
                c.dashed(w[0], w[1], INK, 2.0, 6.0, 3.0);
            }
            for (x, y) in seg {
                c.circle(x, y, 2.8, INK, true, 1.0);
            }
        }
        ring(c, s, INK);
    }
}

/// The loss line, its ring at the kept epoch, and a red cross at each NaN/∞ loss.
fn loss(c: &mut Canvas, d: &CurvesData, f: &Frame) {
    let show_markers = d.epochs.len() <= 40;
    for seg in f.segments(&d.epochs, &d.loss, &f.loss) {
        c.line(seg.clone(), LOSS, 2.0);
        if show_markers || seg.len() == 1 {
            for (x, y) in &seg {
                c.circle(*x, *y, 2.8, LOSS, true, 1.0);
            }
        }
    }
    if let Some(bi) = best_index(d) {
        if let Some(v) = d.loss.get(bi).copied().flatten() {
            let x = f.x.map(d.epochs[bi] as f64);
            c.circle(x, f.loss.map(v), 6.5, LOSS, false, 2.0);
        }
    }
    for e in &d.nonfinite_loss_epochs {
        cross(c, f.x.map(*e as f64), f.bottom.0 + 12.0);
    }
}

/// A red cross (a NaN/∞ loss).
fn cross(c: &mut Canvas, x: f64, y: f64) {
    c.line(vec![(x - 5.0, y - 5.0), (x + 5.0, y + 5.0)], BAD, 2.0);
    c.line(vec![(x - 5.0, y + 5.0), (x + 5.0, y - 5.0)], BAD, 2.0);
}

/// One legend row: key, name (fitted) and value at the kept epoch, with the full name as tooltip.
fn legend_entry(c: &mut Canvas, key: Key, (name, tip): (&str, &str), value: String, y: f64) {
    let nf = Font::at(LABEL_EM, TEXT, HAlign::Left, VAlign::Middle);
    let vf = Font::new(LABEL_EM, INK)
        .bold()
        .align(HAlign::Right, VAlign::Middle);
    key.draw(c, LEGEND_X, y);
    let room = LEGEND_W - 34.0 - vf.width(&value) - 10.0;
    c.text(
        &text::fit(&text::clean(name), room, LABEL_EM, false),
        LEGEND_X + 32.0,
        y,
        nf,
    );
    c.text(&value, LEGEND_X + LEGEND_W - 4.0, y, vf);
    c.tip(LEGEND_X, y - ROW / 2.0, LEGEND_W, ROW, tip.to_string());
}

/// The score legend: the selection score, then every series, with its value at the kept (or
/// last) epoch; rows that do not fit are summed up in a last row.
fn score_legend(c: &mut Canvas, d: &CurvesData, f: &Frame) {
    let top0 = f.top.0;
    let reference = match (d.best_epoch, d.epochs.last()) {
        (Some(b), _) => format!("at kept epoch {b}"),
        (None, Some(l)) => format!("at last epoch {l}"),
        (None, None) => String::new(),
    };
    let hf = Font::at(TICK_EM, FAINT, HAlign::Right, VAlign::Middle);
    c.text(&reference, LEGEND_X + LEGEND_W - 4.0, top0 + 8.0, hf);
    let keyed =
        d.selection
            .iter()
            .map(|s| (SELECTION_KEY, s))
            .chain(d.series.iter().enumerate().map(|(i, s)| {
                (
                    Key::Series(PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()]),
                    s,
                )
            }));
    let max_rows = ((f.top.1 - top0 - 30.0) / ROW).floor().max(1.0) as usize;
    for (i, (key, s)) in keyed.enumerate() {
        let y = top0 + 30.0 + i as f64 * ROW;
        if i + 1 == max_rows && f.rows > max_rows {
            let more = format!("+ {} more series (see JSON)", f.rows - i);
            let mf = Font::at(TICK_EM, MUTED, HAlign::Left, VAlign::Middle);
            c.text(&more, LEGEND_X, y, mf);
            break;
        }
        let value = s.at_best.map(|v| format!("{v:.1}%"));
        let tip = if i == 0 && d.selection.is_some() {
            SELECTION_TIP
        } else {
            &s.name
        };
        legend_entry(
            c,
            key,
            (&s.name, tip),
            value.unwrap_or_else(|| "–".into()),
            y,
        );
    }
    if f.rows == 0 {
        let nf = Font::at(LABEL_EM, FAINT, HAlign::Left, VAlign::Middle);
        c.text("no validation scores", LEGEND_X, top0 + 30.0, nf);
    }
}

/// The loss legend with its value at the kept (or last) epoch, and the epochs of NaN/∞ losses.
fn loss_legend(c: &mut Canvas, d: &CurvesData, f: &Frame) {
    let y = f.bottom.0 + 30.0;
    let value = best_index(d)
        .or(d.epochs.len().checked_sub(1))
        .and_then(|i| d.loss.get(i).copied().flatten())
        .map(text::num)
        .unwrap_or_else(|| "–".into());
    let name = "training loss";
    legend_entry(c, Key::Dot(LOSS), (name, name), value, y);
    if d.nonfinite_loss_epochs.is_empty() {
        return;
    }
    let mut list: Vec<String> = d
        .nonfinite_loss_epochs
        .iter()
        .take(6)
        .map(|e| e.to_string())
        .collect();
    if d.nonfinite_loss_epochs.len() > 6 {
        list.push("…".into());
    }
    let y = y + ROW + 4.0;
    cross(c, LEGEND_X + 12.0, y);
    let msg = format!("NaN/∞ loss: epoch {}", list.join(", "));
    let msg = text::fit(&msg, LEGEND_W - 34.0, TICK_EM, false);
    let bf = Font::at(TICK_EM, BAD, HAlign::Left, VAlign::Middle);
    c.text(&msg, LEGEND_X + 32.0, y, bf);
}
