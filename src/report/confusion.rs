//! Confusion matrix of a sentence-level task (gold rows x predicted
//! columns), shaded by the share of the gold row, with counts in the cells.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::{ReportError, Result};
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
            title: if self.title.trim().is_empty() {
                "Confusion matrix".into()
            } else {
                self.title.clone()
            },
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

pub(crate) fn draw(d: &ConfusionData, has_extra: bool) -> Canvas {
    let n = d.row_labels.len();
    let m = d.column_labels.len();
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
    let rows: Vec<String> = d.row_labels.iter().map(|l| text::clean(l)).collect();
    let cols: Vec<String> = d.column_labels.iter().map(|l| text::clean(l)).collect();
    let widest = |v: &[String]| {
        v.iter()
            .map(|s| text::width(s, lab_em, false))
            .fold(0.0, f64::max)
    };
    let row_w = widest(&rows).min(MAX_LABEL_W);
    let col_w = widest(&cols).min(MAX_LABEL_W - 30.0);

    let max_count = d.counts.iter().flatten().copied().max().unwrap_or(0);
    let cnt_w1 = text::width(&max_count.to_string(), 1.0, false).max(0.1);
    let cnt_em = (cell * 0.40).min(12.5).min((cell - 5.0) / cnt_w1);
    let show_counts = cnt_em >= 7.0;

    let gx0 = (24.0 + 26.0 + row_w + 10.0).round();
    let gy0 = 104.0;
    let gx1 = gx0 + m as f64 * cell;
    let gy1 = gy0 + n as f64 * cell;
    let side_em = lab_em.min(12.0);
    let side_w = 130.0;
    let width = (gx1 + 14.0 + side_w + 20.0).max(720.0);
    let height = gy1 + 10.0 + col_w + 34.0 + 74.0;
    let mut c = Canvas::new(width, height, &d.title);

    c.text(
        &text::fit(&d.title, width - 48.0, TITLE_EM, true),
        24.0,
        20.0,
        Font::new(TITLE_EM, INK)
            .bold()
            .align(HAlign::Left, VAlign::Top),
    );
    let acc = d
        .accuracy
        .map(|a| format!("accuracy {}%", text::pct(a)))
        .unwrap_or_else(|| "accuracy n/a".into());
    let sub = format!(
        "{} examples  ·  {acc}  ·  {} labels",
        text::count(d.total),
        n
    );
    c.text(
        &sub,
        24.0,
        48.0,
        Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
    );
    c.text(
        "rows: gold label  ·  columns: predicted label  ·  colour: share of the gold row",
        24.0,
        68.0,
        Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
    );

    if n == 0 {
        c.text(
            "no labels",
            width / 2.0,
            gy0 + 40.0,
            Font::new(LABEL_EM + 1.0, FAINT).align(HAlign::Center, VAlign::Middle),
        );
        return c;
    }

    // Cells.
    for (i, row) in d.counts.iter().enumerate() {
        let y = gy0 + i as f64 * cell;
        let tot = d.row_totals[i];
        if tot == 0 {
            c.rect(gx0, y, gx1, y + cell, Rgba::hex(0xf7f7f7));
        }
        for (j, &v) in row.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let x = gx0 + j as f64 * cell;
            let frac = v as f64 / tot.max(1) as f64;
            let fill = shade(if i == j { DIAG } else { OFF }, v, frac);
            c.rect(x, y, x + cell, y + cell, fill);
            if show_counts {
                let ink = if fill.luminance() < 0.36 { WHITE } else { INK };
                c.text(
                    &v.to_string(),
                    x + cell / 2.0,
                    y + cell / 2.0,
                    Font::new(cnt_em, ink).align(HAlign::Center, VAlign::Middle),
                );
            }
            c.tip(
                x,
                y,
                cell,
                cell,
                format!(
                    "gold: {}\npredicted: {}\n{} ({}% of the gold row)",
                    d.row_labels[i],
                    d.column_labels[j],
                    text::count(v),
                    text::pct(frac)
                ),
            );
        }
    }
    // Grid lines.
    if cell >= 8.0 {
        for i in 0..=n {
            let y = gy0 + i as f64 * cell;
            c.line(vec![(gx0, y), (gx1, y)], Rgba::hex(0xe2e2e2), 1.0);
        }
        for j in 0..=m {
            let x = gx0 + j as f64 * cell;
            c.line(vec![(x, gy0), (x, gy1)], Rgba::hex(0xe2e2e2), 1.0);
        }
    }
    // Diagonal guide for empty diagonal cells, and the frame.
    for i in 0..n.min(m) {
        if d.counts[i][i] == 0 && cell >= 8.0 {
            let (x, y) = (gx0 + i as f64 * cell, gy0 + i as f64 * cell);
            c.frame(
                x + 1.0,
                y + 1.0,
                x + cell - 1.0,
                y + cell - 1.0,
                DIAG.alpha(0.35),
                1.0,
            );
        }
    }
    if has_extra {
        let x = gx0 + (m - 1) as f64 * cell;
        c.line(vec![(x, gy0 - 4.0), (x, gy1 + 4.0)], MUTED, 2.0);
    }
    c.frame(gx0, gy0, gx1, gy1, Rgba::hex(0xb0b0b0), 1.0);

    // Row labels (gold) and the right-hand support / recall columns.
    let rf = Font::new(lab_em, TEXT).align(HAlign::Right, VAlign::Middle);
    let sf = Font::new(side_em, MUTED).align(HAlign::Right, VAlign::Middle);
    let hf = Font::new(side_em.max(10.0), MUTED).align(HAlign::Right, VAlign::Bottom);
    c.text("support", gx1 + 14.0 + 62.0, gy0 - 6.0, hf);
    c.text("recall", gx1 + 14.0 + side_w - 8.0, gy0 - 6.0, hf);
    for (i, label) in rows.iter().enumerate() {
        let y = gy0 + (i as f64 + 0.5) * cell;
        let tot = d.row_totals[i];
        let recall = (tot > 0 && i < m).then(|| d.counts[i][i] as f64 / tot as f64);
        if i % every == 0 {
            let color = if tot == 0 { FAINT } else { TEXT };
            c.text(
                &text::fit(label, row_w, lab_em, false),
                gx0 - 8.0,
                y,
                Font { color, ..rf },
            );
            c.text(&text::count(tot), gx1 + 14.0 + 62.0, y, sf);
            let r = recall
                .map(|r| format!("{}%", text::pct(r)))
                .unwrap_or_else(|| "–".into());
            c.text(&r, gx1 + 14.0 + side_w - 8.0, y, sf);
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
        c.tip(gx0 - 8.0 - row_w, y - cell / 2.0, row_w + 8.0, cell, tip);
    }
    // Column labels (predicted), reading bottom-to-top under the grid.
    let cf = Font::new(lab_em, TEXT)
        .align(HAlign::Right, VAlign::Middle)
        .vertical();
    for (j, label) in cols.iter().enumerate() {
        let x = gx0 + (j as f64 + 0.5) * cell;
        let color = if has_extra && j + 1 == m { MUTED } else { TEXT };
        if j % every == 0 || (has_extra && j + 1 == m) {
            c.text(
                &text::fit(label, col_w, lab_em, false),
                x,
                gy1 + 8.0,
                Font { color, ..cf },
            );
        }
        c.tip(
            x - cell / 2.0,
            gy1 + 8.0,
            cell,
            col_w,
            format!(
                "predicted: {}\n{} predictions",
                d.column_labels[j],
                text::count(d.column_totals[j])
            ),
        );
    }
    // Axis titles.
    c.text(
        "gold label",
        22.0,
        (gy0 + gy1) / 2.0,
        Font::new(LABEL_EM, INK)
            .bold()
            .align(HAlign::Center, VAlign::Top)
            .vertical(),
    );
    let ay = gy1 + 8.0 + col_w + 14.0;
    c.text(
        "predicted label",
        (gx0 + gx1) / 2.0,
        ay,
        Font::new(LABEL_EM, INK)
            .bold()
            .align(HAlign::Center, VAlign::Top),
    );

    // Colour legend.
    let ly = ay + 34.0;
    let mut lx = 24.0;
    for (name, base) in [
        ("correct (diagonal)", DIAG),
        ("confused (off-diagonal)", OFF),
    ] {
        let bw = 150.0;
        let nf = Font::new(TICK_EM, TEXT).align(HAlign::Left, VAlign::Bottom);
        c.text(name, lx, ly - 4.0, nf);
        let steps = 30;
        for s in 0..steps {
            let t0 = s as f64 / steps as f64;
            let t1 = (s + 1) as f64 / steps as f64;
            c.rect(
                lx + t0 * bw,
                ly,
                lx + t1 * bw + 0.5,
                ly + 10.0,
                shade(base, 1, (t0 + t1) / 2.0),
            );
        }
        c.frame(lx, ly, lx + bw, ly + 10.0, Rgba::hex(0xc8c8c8), 1.0);
        let tf = Font::new(TICK_EM - 1.0, MUTED).align(HAlign::Center, VAlign::Top);
        for (t, l) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
            c.text(l, lx + t * bw, ly + 13.0, tf);
        }
        lx += bw + 48.0;
    }
    c
}
