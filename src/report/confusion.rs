//! Confusion matrix of a sentence-level task (gold rows x predicted
//! columns), shaded by the share of the gold row, with counts in the cells.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::{ReportError, Result};
use crate::report::layout;
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// Input of [`render_confusion_matrix`] / [`write_confusion_matrix`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfusionMatrix {
    /// Chart title; empty gives "Confusion matrix".
    pub title: String,
    /// Label names, in row/column order.
    pub labels: Vec<String>,
    /// `counts[gold][predicted]`: one row per label (missing rows count as
    /// all-zero), each with `labels.len()` columns plus one more when
    /// [`extra_column`](Self::extra_column) is set (shorter rows are padded
    /// with zeros).
    pub counts: Vec<Vec<usize>>,
    /// Name of an extra last column, e.g. `(unseen in training)`.
    pub extra_column: Option<String>,
}

/// The data a confusion matrix was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionData {
    /// Title as drawn.
    pub title: String,
    /// Gold labels (rows).
    pub row_labels: Vec<String>,
    /// Predicted labels (columns), including the extra column if any.
    pub column_labels: Vec<String>,
    /// Rectangular counts, `row_labels.len()` x `column_labels.len()`.
    pub counts: Vec<Vec<usize>>,
    /// Sum of each row (gold support).
    pub row_totals: Vec<usize>,
    /// Sum of each column (how often each label was predicted).
    pub column_totals: Vec<usize>,
    /// Sum of all counts (the number of evaluated examples).
    pub total: usize,
    /// Sum of the diagonal.
    pub correct: usize,
    /// `correct / total`, `None` when `total` is 0.
    pub accuracy: Option<f64>,
}

impl ConfusionMatrix {
    /// Checks the shape and returns the data as it will be drawn.
    pub fn data(&self) -> Result<ConfusionData> {
        let n = self.labels.len();
        let m = n + usize::from(self.extra_column.is_some());
        if self.counts.len() > n {
            return Err(ReportError::InvalidInput(format!(
                "confusion matrix has {} rows but only {n} labels",
                self.counts.len()
            )));
        }
        let mut counts = vec![vec![0usize; m]; n];
        for (i, row) in self.counts.iter().enumerate() {
            if row.len() > m {
                return Err(ReportError::InvalidInput(format!(
                    "confusion matrix row {i} ({}) has {} columns, expected at most {m}",
                    text::clean(&self.labels[i]),
                    row.len()
                )));
            }
            counts[i][..row.len()].copy_from_slice(row);
        }
        let sum = |it: &mut dyn Iterator<Item = usize>| it.fold(0usize, |a, b| a.saturating_add(b));
        let row_totals: Vec<usize> = counts.iter().map(|r| sum(&mut r.iter().copied())).collect();
        let column_totals: Vec<usize> = (0..m)
            .map(|j| sum(&mut counts.iter().map(|r| r[j])))
            .collect();
        let total = sum(&mut row_totals.iter().copied());
        let correct = sum(&mut (0..n).map(|i| counts[i][i]));
        let mut column_labels = self.labels.clone();
        column_labels.extend(self.extra_column.clone());
        Ok(ConfusionData {
            title: layout::title_or(&self.title, "Confusion matrix"),
            row_labels: self.labels.clone(),
            column_labels,
            counts,
            row_totals,
            column_totals,
            total,
            correct,
            accuracy: (total > 0).then(|| correct as f64 / total as f64),
        })
    }
}

/// Draws the confusion matrix in memory.
pub fn render_confusion_matrix(cm: &ConfusionMatrix) -> Result<Rendered<ConfusionData>> {
    text::ensure_fonts()?;
    let data = cm.data()?;
    let canvas = draw(&data, cm.extra_column.is_some());
    Rendered::from_canvas(&canvas, data)
}

/// Draws the confusion matrix and writes `stem.svg`, `stem.png` and
/// `stem.json` (atomically).
pub fn write_confusion_matrix(
    stem: &Path,
    cm: &ConfusionMatrix,
) -> Result<ChartFiles<ConfusionData>> {
    crate::report::chart::write_chart(stem, render_confusion_matrix(cm)?)
}

const DIAG: Rgba = Rgba::hex(0x1f5fa8);
const OFF: Rgba = Rgba::hex(0xc0392b);
const MAX_LABEL_W: f64 = 250.0;

/// Cell colour for a count that is `frac` of its gold row.
fn shade(base: Rgba, count: usize, frac: f64) -> Rgba {
    if count == 0 {
        return WHITE;
    }
    WHITE.mix(base, 0.16 + 0.84 * frac)
}

/// Width of the support and recall columns right of the grid.
const SIDE_W: f64 = 130.0;
const LINES: Rgba = Rgba::hex(0xe2e2e2);

/// The grid's cells and where everything around them goes.
struct Frame {
    /// Rows (gold labels) and columns (predicted labels, with the extra column).
    n: usize,
    m: usize,
    cell: f64,
    /// Font size of the labels, and every how many rows and columns one is labelled.
    lab_em: f64,
    every: usize,
    rows: Vec<String>,
    cols: Vec<String>,
    row_w: f64,
    col_w: f64,
    /// Font size of the counts in the cells (`None`: too small to show them).
    count_em: Option<f64>,
    /// The grid's corners.
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    width: f64,
}

impl Frame {
    fn new(d: &ConfusionData) -> Self {
        let (n, m) = (d.row_labels.len(), d.column_labels.len());
        let k = n.max(m).max(1) as f64;
        let cell = if k * 15.0 <= 3400.0 {
            (1800.0 / k).floor().clamp(15.0, 44.0)
        } else {
            3400.0 / k
        };
        let lab_em = (cell * 0.62).clamp(8.5, 13.0);
        // Label every `every`-th row/column when cells are too small for text.
        let every = if cell >= 10.0 {
            1
        } else {
            (10.0 / cell).ceil() as usize
        };
        let clean = |v: &[String]| -> Vec<String> { v.iter().map(|l| text::clean(l)).collect() };
        let (rows, cols) = (clean(&d.row_labels), clean(&d.column_labels));
        let widest = |v: &[String], max| {
            layout::label_width(v.iter().map(|s| (s.as_str(), false)), lab_em, 0.0, max)
        };
        let (row_w, col_w) = (
            widest(&rows, MAX_LABEL_W),
            widest(&cols, MAX_LABEL_W - 30.0),
        );
        let max_count = d.counts.iter().flatten().copied().max().unwrap_or(0);
        let w1 = text::width(&max_count.to_string(), 1.0, false).max(0.1);
        let count_em = (cell * 0.40).min(12.5).min((cell - 5.0) / w1);
        let x0 = (layout::MARGIN + 26.0 + row_w + 10.0).round();
        let (x1, y1) = (x0 + m as f64 * cell, 104.0 + n as f64 * cell);
        Frame {
            n,
            m,
            cell,
            lab_em,
            every,
            rows,
            cols,
            row_w,
            col_w,
            count_em: (count_em >= 7.0).then_some(count_em),
            x0,
            y0: 104.0,
            x1,
            y1,
            width: (x1 + 14.0 + SIDE_W + 20.0).max(720.0),
        }
    }

    fn height(&self) -> f64 {
        self.y1 + 10.0 + self.col_w + 34.0 + 74.0
    }

    /// The top-left corner of cell (`i`, `j`).
    fn at(&self, i: usize, j: usize) -> (f64, f64) {
        (
            self.x0 + j as f64 * self.cell,
            self.y0 + i as f64 * self.cell,
        )
    }
}

pub(crate) fn draw(d: &ConfusionData, has_extra: bool) -> Canvas {
    let f = Frame::new(d);
    let mut c = Canvas::new(f.width, f.height(), &d.title);
    let acc = d
        .accuracy
        .map(|a| format!("accuracy {}%", text::pct(a)))
        .unwrap_or_else(|| "accuracy n/a".into());
    let sub = [
        format!(
            "{} examples  ·  {acc}  ·  {} labels",
            text::count(d.total),
            f.n
        ),
        "rows: gold label  ·  columns: predicted label  ·  colour: share of the gold row".into(),
    ];
    layout::header(&mut c, &d.title, f.width, &sub);
    if f.n == 0 {
        layout::empty_note(
            &mut c,
            "no labels",
            f.width / 2.0,
            f.y0 + 40.0,
            LABEL_EM + 1.0,
        );
        return c;
    }
    cells(&mut c, d, &f);
    grid(&mut c, d, &f, has_extra);
    row_labels(&mut c, d, &f);
    column_labels(&mut c, d, &f, has_extra);
    let title = Font::new(LABEL_EM, INK).bold();
    layout::y_title(&mut c, "gold label", 22.0, (f.y0, f.y1), title);
    let ay = f.y1 + 8.0 + f.col_w + 14.0;
    let af = title.align(HAlign::Center, VAlign::Top);
    c.text("predicted label", (f.x0 + f.x1) / 2.0, ay, af);
    colour_legend(&mut c, ay + 34.0);
    c
}

/// Every non-zero cell shaded by its share of the gold row, with its count and a tooltip; rows
/// without gold examples greyed.
fn cells(c: &mut Canvas, d: &ConfusionData, f: &Frame) {
    for (i, row) in d.counts.iter().enumerate() {
        let tot = d.row_totals[i];
        let (_, y) = f.at(i, 0);
        if tot == 0 {
            c.rect(f.x0, y, f.x1, y + f.cell, Rgba::hex(0xf7f7f7));
        }
        for (j, &v) in row.iter().enumerate().filter(|(_, &v)| v > 0) {
            let (x, y) = f.at(i, j);
            let frac = v as f64 / tot.max(1) as f64;
            let fill = shade(if i == j { DIAG } else { OFF }, v, frac);
            c.rect(x, y, x + f.cell, y + f.cell, fill);
            if let Some(em) = f.count_em {
                let ink = if fill.luminance() < 0.36 { WHITE } else { INK };
                let cf = Font::at(em, ink, HAlign::Center, VAlign::Middle);
                c.text(&v.to_string(), x + f.cell / 2.0, y + f.cell / 2.0, cf);
            }
            let tip = format!(
                "gold: {}\npredicted: {}\n{} ({}% of the gold row)",
                d.row_labels[i],
                d.column_labels[j],
                text::count(v),
                text::pct(frac)
            );
            c.tip(x, y, f.cell, f.cell, tip);
        }
    }
}

/// Grid lines (when cells are large enough), a guide around empty diagonal cells, the line before
/// the extra column, and the frame.
fn grid(c: &mut Canvas, d: &ConfusionData, f: &Frame, has_extra: bool) {
    if f.cell >= 8.0 {
        for i in 0..=f.n {
            let y = f.at(i, 0).1;
            c.line(vec![(f.x0, y), (f.x1, y)], LINES, 1.0);
        }
        for j in 0..=f.m {
            let x = f.at(0, j).0;
            c.line(vec![(x, f.y0), (x, f.y1)], LINES, 1.0);
        }
        for i in (0..f.n.min(f.m)).filter(|&i| d.counts[i][i] == 0) {
            let (x, y) = f.at(i, i);
            let (a, b) = (f.cell - 1.0, DIAG.alpha(0.35));
            c.frame(x + 1.0, y + 1.0, x + a, y + a, b, 1.0);
        }
    }
    if has_extra {
        let x = f.at(0, f.m - 1).0;
        c.line(vec![(x, f.y0 - 4.0), (x, f.y1 + 4.0)], MUTED, 2.0);
    }
    c.frame(f.x0, f.y0, f.x1, f.y1, Rgba::hex(0xb0b0b0), 1.0);
}

/// The gold labels left of the grid (faint without gold examples), their support and recall on
/// the right, with tooltips.
fn row_labels(c: &mut Canvas, d: &ConfusionData, f: &Frame) {
    let side_em = f.lab_em.min(12.0);
    let (support_x, recall_x) = (f.x1 + 14.0 + 62.0, f.x1 + 14.0 + SIDE_W - 8.0);
    let sf = Font::at(side_em, MUTED, HAlign::Right, VAlign::Middle);
    let hf = Font::new(side_em.max(10.0), MUTED).align(HAlign::Right, VAlign::Bottom);
    c.text("support", support_x, f.y0 - 6.0, hf);
    c.text("recall", recall_x, f.y0 - 6.0, hf);
    for (i, label) in f.rows.iter().enumerate() {
        let y = f.at(i, 0).1 + f.cell / 2.0;
        let tot = d.row_totals[i];
        let recall = (tot > 0 && i < f.m).then(|| d.counts[i][i] as f64 / tot as f64);
        if i % f.every == 0 {
            let color = if tot == 0 { FAINT } else { TEXT };
            let rf = Font::at(f.lab_em, color, HAlign::Right, VAlign::Middle);
            let shown = text::fit(label, f.row_w, f.lab_em, false);
            c.text(&shown, f.x0 - 8.0, y, rf);
            c.text(&text::count(tot), support_x, y, sf);
            let r = recall.map(|r| format!("{}%", text::pct(r)));
            c.text(&r.unwrap_or_else(|| "–".into()), recall_x, y, sf);
        }
        let tip = match recall {
            Some(r) => format!(
                "gold: {}\nsupport {} · recall {}%",
                d.row_labels[i],
                text::count(tot),
                text::pct(r)
            ),
            None => format!("gold: {}\nno gold examples", d.row_labels[i]),
        };
        let x = f.x0 - 8.0 - f.row_w;
        c.tip(x, y - f.cell / 2.0, f.row_w + 8.0, f.cell, tip);
    }
}

/// The predicted labels under the grid, reading bottom-to-top, with tooltips.
fn column_labels(c: &mut Canvas, d: &ConfusionData, f: &Frame, has_extra: bool) {
    for (j, label) in f.cols.iter().enumerate() {
        let x = f.at(0, j).0 + f.cell / 2.0;
        let extra = has_extra && j + 1 == f.m;
        if j % f.every == 0 || extra {
            let color = if extra { MUTED } else { TEXT };
            let cf = Font::at(f.lab_em, color, HAlign::Right, VAlign::Middle).vertical();
            let shown = text::fit(label, f.col_w, f.lab_em, false);
            c.text(&shown, x, f.y1 + 8.0, cf);
        }
        let tip = format!(
            "predicted: {}\n{} predictions",
            d.column_labels[j],
            text::count(d.column_totals[j])
        );
        c.tip(x - f.cell / 2.0, f.y1 + 8.0, f.cell, f.col_w, tip);
    }
}

/// The two colour ramps: correct (diagonal) and confused (off-diagonal), 0 to 100% of the row.
fn colour_legend(c: &mut Canvas, ly: f64) {
    let mut lx = layout::MARGIN;
    for (name, base) in [
        ("correct (diagonal)", DIAG),
        ("confused (off-diagonal)", OFF),
    ] {
        let bw = 150.0;
        let nf = Font::at(TICK_EM, TEXT, HAlign::Left, VAlign::Bottom);
        c.text(name, lx, ly - 4.0, nf);
        let steps = 30;
        for s in 0..steps {
            let t0 = s as f64 / steps as f64;
            let t1 = (s + 1) as f64 / steps as f64;
            let fill = shade(base, 1, (t0 + t1) / 2.0);
            c.rect(lx + t0 * bw, ly, lx + t1 * bw + 0.5, ly + 10.0, fill);
        }
        c.frame(lx, ly, lx + bw, ly + 10.0, Rgba::hex(0xc8c8c8), 1.0);
        let tf = Font::at(TICK_EM - 1.0, MUTED, HAlign::Center, VAlign::Top);
        for (t, l) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
            c.text(l, lx + t * bw, ly + 13.0, tf);
        }
        lx += bw + 48.0;
    }
}
