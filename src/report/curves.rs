//! Training curves: validation scores per task (top panel) and training
//! loss (bottom panel) per epoch, with the kept epoch and the early-stopping
//! point marked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
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
    /// Planned number of epochs; epochs after the last trained one are
    /// shaded as "not run".
    pub max_epochs: Option<usize>,
}

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
        let series = names
            .into_iter()
            .map(|name| {
                let percent: Vec<Option<f64>> = pts
                    .iter()
                    .map(|p| {
                        p.scores
                            .get(name)
                            .copied()
                            .filter(|v| v.is_finite())
                            .map(|v| v * 100.0)
                    })
                    .collect();
                let at_best = ref_idx.and_then(|i| percent.get(i).copied().flatten());
                SeriesData {
                    name: name.clone(),
                    percent,
                    at_best,
                }
            })
            .collect();
        CurvesData {
            title: if self.title.trim().is_empty() {
                "Training curves".into()
            } else {
                self.title.clone()
            },
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

pub(crate) fn draw(d: &CurvesData) -> Canvas {
    let plot_r = W - LEGEND_W - 36.0;
    let legend_x = plot_r + 26.0;
    let top0 = 96.0;
    let n_series = d.series.len();
    let legend_need = 30.0 + n_series as f64 * ROW;
    let top_h = legend_need.clamp(290.0, 760.0);
    let top1 = top0 + top_h;
    let loss0 = top1 + 30.0;
    let loss1 = loss0 + 170.0;
    let h = loss1 + 58.0;
    let mut c = Canvas::new(W, h, &d.title);

    // Title and subtitle.
    c.text(
        &text::fit(&d.title, W - 48.0, TITLE_EM, true),
        24.0,
        20.0,
        Font::new(TITLE_EM, INK)
            .bold()
            .align(HAlign::Left, VAlign::Top),
    );
    let mut sub = vec![format!(
        "{} epoch{}",
        d.epochs.len(),
        if d.epochs.len() == 1 { "" } else { "s" }
    )];
    if let Some(b) = d.best_epoch {
        sub.push(format!("kept epoch {b}"));
    }
    if let Some(s) = d.early_stop_epoch {
        sub.push(format!("early stop after epoch {s}"));
    }
    if let Some(m) = d.max_epochs {
        sub.push(format!("max {m} epochs"));
    }
    c.text(
        &sub.join("  ·  "),
        24.0,
        48.0,
        Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
    );

    // X range over everything that has to be visible.
    let mut xs: Vec<usize> = d.epochs.clone();
    xs.extend(d.best_epoch);
    xs.extend(d.early_stop_epoch);
    xs.extend(d.max_epochs);
    let (e_lo, e_hi) = match (xs.iter().min(), xs.iter().max()) {
        (Some(&a), Some(&b)) => (a as f64, b as f64),
        _ => (1.0, 1.0),
    };
    let xsc = Scale::linear(e_lo - 0.5, e_hi + 0.5, LEFT, plot_r);
    let step = match nice_step((e_hi - e_lo) / 8.0).max(1.0) {
        s if s.fract() != 0.0 => (s * 2.0).round(), // 2.5 -> 5, 25 -> 50
        s => s,
    };
    let mut xticks = Vec::new();
    if !xs.is_empty() {
        let mut t = (e_lo / step).ceil() * step;
        while t <= e_hi && xticks.len() < 100 {
            xticks.push(t);
            t += step;
        }
    }

    // Y ranges.
    let vals: Vec<f64> = d
        .series
        .iter()
        .flat_map(|s| s.percent.iter().flatten().copied())
        .collect();
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
    // Snap both ends to the tick grid so that the top and bottom are labelled.
    let step = nice_step((hi - lo) / 5.0);
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let ysc = Scale::linear(lo, hi, top1, top0);

    let losses: Vec<f64> = d.loss.iter().flatten().copied().collect();
    let (l_lo, l_hi) = if losses.is_empty() {
        (0.0, 1.0)
    } else {
        let mn = losses.iter().copied().fold(f64::INFINITY, f64::min);
        let mx = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lo = if mn >= 0.0 { 0.0 } else { mn };
        let hi = if mx > lo { mx } else { lo + 1.0 };
        let step = nice_step((hi - lo) / 4.0);
        (lo, (hi / step).ceil() * step)
    };
    let lsc = Scale::linear(l_lo, l_hi, loss1, loss0);

    // "Not run" area after the last trained epoch.
    let mut not_run = None;
    if let (Some(&last), Some(max)) = (d.epochs.last(), d.max_epochs) {
        if max > last {
            let (a, b) = (xsc.map(last as f64 + 0.5), xsc.map(max as f64 + 0.5));
            for (y0, y1) in [(top0, top1), (loss0, loss1)] {
                c.rect(a, y0, b, y1, SHADE);
            }
            not_run = Some((a, b));
        }
    }

    panel(
        &mut c,
        &xsc,
        &xticks,
        top0,
        top1,
        &ysc,
        "validation score (%)",
    );
    panel(&mut c, &xsc, &xticks, loss0, loss1, &lsc, "training loss");
    if let Some((a, b)) = not_run {
        let label = if d.early_stop_epoch.is_some() {
            "not run (early stop)"
        } else {
            "not run"
        };
        let f = Font::new(TICK_EM, FAINT).align(HAlign::Center, VAlign::Bottom);
        let w = f.width(label);
        if w + 8.0 < b - a {
            c.rect(
                (a + b - w) / 2.0 - 3.0,
                top1 - 24.0,
                (a + b + w) / 2.0 + 3.0,
                top1 - 4.0,
                SHADE,
            );
            c.text(label, (a + b) / 2.0, top1 - 8.0, f);
        }
    }

    // X tick labels and axis title (shared, under the loss panel).
    let tf = Font::new(TICK_EM, MUTED).align(HAlign::Center, VAlign::Top);
    let labels = tick_labels(&xticks);
    for (t, l) in xticks.iter().zip(&labels) {
        c.text(l, xsc.map(*t), loss1 + 6.0, tf);
    }
    c.text(
        "epoch",
        (LEFT + plot_r) / 2.0,
        loss1 + 28.0,
        Font::new(LABEL_EM, TEXT).align(HAlign::Center, VAlign::Top),
    );

    if d.epochs.is_empty() {
        let f = Font::new(LABEL_EM + 1.0, FAINT).align(HAlign::Center, VAlign::Middle);
        c.text(
            "no epochs recorded",
            (LEFT + plot_r) / 2.0,
            (top0 + top1) / 2.0,
            f,
        );
        c.text(
            "no epochs recorded",
            (LEFT + plot_r) / 2.0,
            (loss0 + loss1) / 2.0,
            f,
        );
    }

    let show_markers = d.epochs.len() <= 40;
    let best_idx = d
        .best_epoch
        .and_then(|b| d.epochs.iter().position(|&e| e == b));

    // Early-stop line (under the data).
    if let Some(s) = d.early_stop_epoch {
        let x = xsc.map(s as f64);
        c.dashed((x, top0), (x, loss1), MUTED, 1.5, 6.0, 4.0);
        marker_label(
            &mut c,
            &format!("early stop · epoch {s}"),
            x,
            top1 + 4.0,
            LEFT,
            plot_r,
            MUTED,
            false,
        );
    }
    // Best-epoch line.
    if let Some(b) = d.best_epoch {
        let x = xsc.map(b as f64);
        c.line(vec![(x, top0), (x, loss1)], INK.alpha(0.55), 1.5);
        marker_label(
            &mut c,
            &format!("★ kept epoch {b}"),
            x,
            top0 - 22.0,
            LEFT,
            plot_r,
            INK,
            true,
        );
    }

    // Score series.
    for (i, s) in d.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let shape = MARKERS[i % MARKERS.len()];
        let segs = segments(&d.epochs, &s.percent, &xsc, &ysc);
        for seg in &segs {
            c.line(seg.clone(), color, 2.0);
            if show_markers || seg.len() == 1 {
                for (x, y) in seg {
                    c.marker(shape, *x, *y, 3.6, color);
                }
            }
        }
        if let Some(v) = best_idx.and_then(|bi| s.percent.get(bi).copied().flatten()) {
            let x = xsc.map(d.best_epoch.unwrap_or_default() as f64);
            c.circle(x, ysc.map(v), 7.5, color, false, 2.0);
        }
    }

    // Loss line.
    let loss_color = Rgba::hex(0x444444);
    for seg in segments(&d.epochs, &d.loss, &xsc, &lsc) {
        c.line(seg.clone(), loss_color, 2.0);
        if show_markers || seg.len() == 1 {
            for (x, y) in &seg {
                c.circle(*x, *y, 2.8, loss_color, true, 1.0);
            }
        }
    }
    if let Some(bi) = best_idx {
        if let Some(v) = d.loss.get(bi).copied().flatten() {
            c.circle(
                xsc.map(d.epochs[bi] as f64),
                lsc.map(v),
                6.5,
                loss_color,
                false,
                2.0,
            );
        }
    }
    for e in &d.nonfinite_loss_epochs {
        let (x, y) = (xsc.map(*e as f64), loss0 + 12.0);
        c.line(vec![(x - 5.0, y - 5.0), (x + 5.0, y + 5.0)], BAD, 2.0);
        c.line(vec![(x - 5.0, y + 5.0), (x + 5.0, y - 5.0)], BAD, 2.0);
    }

    // Legends.
    let ref_label = match (d.best_epoch, d.epochs.last()) {
        (Some(b), _) => format!("at kept epoch {b}"),
        (None, Some(l)) => format!("at last epoch {l}"),
        (None, None) => String::new(),
    };
    let hf = Font::new(TICK_EM, FAINT).align(HAlign::Right, VAlign::Middle);
    c.text(&ref_label, legend_x + LEGEND_W - 4.0, top0 + 8.0, hf);
    let max_rows = ((top_h - 30.0) / ROW).floor().max(1.0) as usize;
    let nf = Font::new(LABEL_EM, TEXT).align(HAlign::Left, VAlign::Middle);
    let vf = Font::new(LABEL_EM, INK)
        .bold()
        .align(HAlign::Right, VAlign::Middle);
    for (i, s) in d.series.iter().enumerate() {
        let y = top0 + 30.0 + i as f64 * ROW;
        if i + 1 == max_rows && n_series > max_rows {
            let more = format!("+ {} more series (see JSON)", n_series - i);
            c.text(
                &more,
                legend_x,
                y,
                Font::new(TICK_EM, MUTED).align(HAlign::Left, VAlign::Middle),
            );
            break;
        }
        let color = PALETTE[i % PALETTE.len()];
        c.line(vec![(legend_x, y), (legend_x + 24.0, y)], color, 2.0);
        c.marker(MARKERS[i % MARKERS.len()], legend_x + 12.0, y, 3.6, color);
        let value = s
            .at_best
            .map(|v| format!("{v:.1}%"))
            .unwrap_or_else(|| "–".into());
        let vw = vf.width(&value);
        let name = text::fit(
            &text::clean(&s.name),
            LEGEND_W - 34.0 - vw - 10.0,
            LABEL_EM,
            false,
        );
        c.text(&name, legend_x + 32.0, y, nf);
        c.text(&value, legend_x + LEGEND_W - 4.0, y, vf);
        c.tip(legend_x, y - ROW / 2.0, LEGEND_W, ROW, s.name.clone());
    }
    if n_series == 0 && !d.epochs.is_empty() {
        c.text(
            "no validation scores",
            legend_x,
            top0 + 30.0,
            Font::new(LABEL_EM, FAINT).align(HAlign::Left, VAlign::Middle),
        );
    }
    if d.epochs.is_empty() {
        return c;
    }
    let y = loss0 + 30.0;
    c.line(vec![(legend_x, y), (legend_x + 24.0, y)], loss_color, 2.0);
    c.circle(legend_x + 12.0, y, 2.8, loss_color, true, 1.0);
    let lv = best_idx
        .or(d.epochs.len().checked_sub(1))
        .and_then(|i| d.loss.get(i).copied().flatten())
        .map(text::num)
        .unwrap_or_else(|| "–".into());
    c.text("training loss", legend_x + 32.0, y, nf);
    c.text(&lv, legend_x + LEGEND_W - 4.0, y, vf);
    if !d.nonfinite_loss_epochs.is_empty() {
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
        let (x0, yy) = (legend_x + 12.0, y);
        c.line(vec![(x0 - 5.0, yy - 5.0), (x0 + 5.0, yy + 5.0)], BAD, 2.0);
        c.line(vec![(x0 - 5.0, yy + 5.0), (x0 + 5.0, yy - 5.0)], BAD, 2.0);
        let msg = format!("NaN/∞ loss: epoch {}", list.join(", "));
        let msg = text::fit(&msg, LEGEND_W - 34.0, TICK_EM, false);
        c.text(
            &msg,
            legend_x + 32.0,
            y,
            Font::new(TICK_EM, BAD).align(HAlign::Left, VAlign::Middle),
        );
    }
    c
}

/// Pixel poly-lines of a series, split where values are missing.
fn segments(
    epochs: &[usize],
    vals: &[Option<f64>],
    xs: &Scale,
    ys: &Scale,
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for (e, v) in epochs.iter().zip(vals) {
        match v {
            Some(v) => cur.push((xs.map(*e as f64), ys.map(*v))),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Grid, axes and y tick labels of one panel.
fn panel(c: &mut Canvas, xsc: &Scale, xticks: &[f64], y0: f64, y1: f64, ysc: &Scale, title: &str) {
    let (x0, x1) = (LEFT, W - LEGEND_W - 36.0);
    let yt = ysc.ticks(5);
    let labels = tick_labels(&yt);
    let tf = Font::new(TICK_EM, MUTED).align(HAlign::Right, VAlign::Middle);
    for (v, l) in yt.iter().zip(&labels) {
        let y = ysc.map(*v).round();
        c.line(vec![(x0, y), (x1, y)], GRID, 1.0);
        c.text(l, x0 - 8.0, y, tf);
    }
    for t in xticks {
        let x = xsc.map(*t).round();
        c.line(vec![(x, y0), (x, y1)], GRID, 1.0);
    }
    c.line(vec![(x0, y0), (x0, y1), (x1, y1)], AXIS, 1.0);
    let f = Font::new(LABEL_EM, TEXT)
        .align(HAlign::Center, VAlign::Top)
        .vertical();
    let t = text::fit(title, y1 - y0, LABEL_EM, false);
    c.text(&t, 18.0, (y0 + y1) / 2.0, f);
}

/// A label next to a vertical marker line, on the side with more room, on a
/// white backing so grid lines do not run through it.
/// With `center`, the label is centred on the line when that fits.
#[allow(clippy::too_many_arguments)]
fn marker_label(
    c: &mut Canvas,
    label: &str,
    x: f64,
    y: f64,
    left: f64,
    right: f64,
    color: Rgba,
    center: bool,
) {
    let f = Font::new(TICK_EM, color).bold();
    let w = f.width(label);
    let (tx, h) = if center && x - w / 2.0 >= left - 40.0 && x + w / 2.0 <= right + 40.0 {
        (x, HAlign::Center)
    } else if x + 6.0 + w <= right || x - left < right - x {
        (x + 6.0, HAlign::Left)
    } else {
        (x - 6.0, HAlign::Right)
    };
    let bx = match h {
        HAlign::Left => tx - 2.0,
        HAlign::Center => tx - w / 2.0 - 2.0,
        HAlign::Right => tx - w - 2.0,
    };
    c.rect(bx, y, bx + w + 4.0, y + TICK_EM + 6.0, WHITE.alpha(0.85));
    c.text(label, tx, y + 3.0, f.align(h, VAlign::Top));
}
