//! Per-label F1 as horizontal bars, sorted by F1, with support counts (for
//! token tasks such as slot tagging; works for any per-label scores).

use std::cmp::Ordering;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
use crate::report::scale::{tick_labels, Scale};
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// Score of one label (e.g. one slot type).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    /// Label name.
    pub label: String,
    /// F1 as a fraction in 0..=1 (NaN is drawn as "n/a").
    pub f1: f64,
    /// Number of gold occurrences.
    pub support: usize,
    /// Precision as a fraction, if known.
    pub precision: Option<f64>,
    /// Recall as a fraction, if known.
    pub recall: Option<f64>,
}

/// Input of [`render_label_f1`] / [`write_label_f1`].
#[derive(Clone, Debug, PartialEq)]
pub struct LabelF1Chart {
    /// Chart title; empty gives "F1 per label".
    pub title: String,
    /// One entry per label, in any order (drawn sorted by F1, best first).
    pub labels: Vec<LabelScore>,
    /// Labels with support below this are drawn in a lighter colour as
    /// unreliable (0 turns this off). Default 10.
    pub low_support: usize,
    /// Micro-averaged F1 (fraction), drawn as a dotted line when given.
    pub micro_f1: Option<f64>,
}

impl Default for LabelF1Chart {
    fn default() -> Self {
        LabelF1Chart {
            title: String::new(),
            labels: Vec::new(),
            low_support: 10,
            micro_f1: None,
        }
    }
}

/// One bar as drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelF1Row {
    /// Label name.
    pub label: String,
    /// F1 fraction, `None` when it was not finite.
    pub f1: Option<f64>,
    /// Gold support.
    pub support: usize,
    /// Precision fraction, if given and finite.
    pub precision: Option<f64>,
    /// Recall fraction, if given and finite.
    pub recall: Option<f64>,
    /// True when drawn as low-support.
    pub low_support: bool,
}

/// The data an F1 bar chart was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelF1Data {
    /// Title as drawn.
    pub title: String,
    /// Rows top to bottom (sorted by F1 descending, n/a last).
    pub rows: Vec<LabelF1Row>,
    /// Unweighted mean F1 over labels with support > 0 and a finite F1.
    pub macro_f1: Option<f64>,
    /// See [`LabelF1Chart::micro_f1`] (`None` if not finite).
    pub micro_f1: Option<f64>,
    /// Sum of supports.
    pub total_support: usize,
}

fn fin(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl LabelF1Chart {
    /// The data as it will be drawn (sorted, non-finite values removed).
    pub fn data(&self) -> LabelF1Data {
        let mut rows: Vec<LabelF1Row> = self
            .labels
            .iter()
            .map(|l| LabelF1Row {
                label: l.label.clone(),
                f1: fin(l.f1),
                support: l.support,
                precision: l.precision.and_then(fin),
                recall: l.recall.and_then(fin),
                low_support: l.support < self.low_support,
            })
            .collect();
        rows.sort_by(|a, b| {
            let f = match (a.f1, b.f1) {
                (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            f.then(b.support.cmp(&a.support))
                .then_with(|| a.label.cmp(&b.label))
        });
        let used: Vec<f64> = rows
            .iter()
            .filter(|r| r.support > 0)
            .filter_map(|r| r.f1)
            .collect();
        LabelF1Data {
            title: if self.title.trim().is_empty() {
                "F1 per label".into()
            } else {
                self.title.clone()
            },
            macro_f1: (!used.is_empty()).then(|| used.iter().sum::<f64>() / used.len() as f64),
            micro_f1: self.micro_f1.and_then(fin),
            total_support: rows.iter().fold(0usize, |a, r| a.saturating_add(r.support)),
            rows,
        }
    }
}

/// Draws the per-label F1 bars in memory.
pub fn render_label_f1(chart: &LabelF1Chart) -> Result<Rendered<LabelF1Data>> {
    text::ensure_fonts()?;
    let data = chart.data();
    let canvas = draw(&data, chart.low_support);
    Rendered::from_canvas(&canvas, data)
}

/// Draws the per-label F1 bars and writes `stem.svg`, `stem.png` and
/// `stem.json` (atomically).
pub fn write_label_f1(stem: &Path, chart: &LabelF1Chart) -> Result<ChartFiles<LabelF1Data>> {
    crate::report::chart::write_chart(stem, render_label_f1(chart)?)
}

/// Most rows drawn: with more labels the best and the worst `MAX_ROWS / 2`
/// are drawn with a gap row between them (all rows are in the data).
const MAX_ROWS: usize = 300;

pub(crate) fn draw(d: &LabelF1Data, low_support: usize) -> Canvas {
    let n_all = d.rows.len();
    let hidden = n_all.saturating_sub(MAX_ROWS);
    let entries: Vec<Option<&LabelF1Row>> = if hidden == 0 {
        d.rows.iter().map(Some).collect()
    } else {
        let half = MAX_ROWS / 2;
        let mut v: Vec<Option<&LabelF1Row>> = d.rows[..half].iter().map(Some).collect();
        v.push(None);
        v.extend(d.rows[n_all - half..].iter().map(Some));
        v
    };
    let n = entries.len();
    let row_h = if n <= 40 {
        22.0
    } else {
        (2600.0 / n as f64).clamp(12.0, 22.0)
    };
    let em = (row_h * 0.6).clamp(8.5, 12.5);
    let labels: Vec<String> = entries
        .iter()
        .map(|r| r.map(|r| text::clean(&r.label)).unwrap_or_default())
        .collect();
    let label_w = labels
        .iter()
        .map(|l| text::width(l, em, false))
        .fold(60.0, f64::max)
        .min(260.0);
    let has_p = d.rows.iter().any(|r| r.precision.is_some());
    let has_r = d.rows.iter().any(|r| r.recall.is_some());

    let x0 = 24.0 + label_w + 12.0;
    let bar_w = 440.0;
    let x1 = x0 + bar_w;
    // Numeric columns: right edges.
    let mut cols: Vec<(&str, f64)> = Vec::new();
    let mut cx = x1 + 16.0;
    for (name, w, on) in [
        ("F1 %", 52.0, true),
        ("support", 72.0, true),
        ("P %", 52.0, has_p),
        ("R %", 52.0, has_r),
    ] {
        if on {
            cx += w;
            cols.push((name, cx));
        }
    }
    let width = (cx + 24.0).max(760.0);
    let gy0 = 124.0;
    let gy1 = gy0 + n.max(1) as f64 * row_h;
    let height = gy1 + 60.0;
    let mut c = Canvas::new(width, height, &d.title);

    c.text(
        &text::fit(&d.title, width - 48.0, TITLE_EM, true),
        24.0,
        20.0,
        Font::new(TITLE_EM, INK)
            .bold()
            .align(HAlign::Left, VAlign::Top),
    );
    let mut sub = vec![
        format!("{} labels", n_all),
        format!("support {}", text::count(d.total_support)),
    ];
    if let Some(m) = d.macro_f1 {
        sub.push(format!("macro F1 {}%", text::pct(m)));
    }
    if let Some(m) = d.micro_f1 {
        sub.push(format!("micro F1 {}%", text::pct(m)));
    }
    c.text(
        &sub.join("  ·  "),
        24.0,
        48.0,
        Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
    );

    // Legend.
    let lf = Font::new(TICK_EM, TEXT).align(HAlign::Left, VAlign::Middle);
    let ly = 82.0;
    let mut lx = 24.0;
    let swatch = |c: &mut Canvas, lx: &mut f64, color: Rgba, label: &str| {
        c.rect(*lx, ly - 6.0, *lx + 18.0, ly + 6.0, color);
        *lx += 24.0 + c.text(label, *lx + 24.0, ly, lf) + 20.0;
    };
    if low_support > 0 {
        swatch(
            &mut c,
            &mut lx,
            BAR,
            &format!("F1 (support ≥ {low_support})"),
        );
        swatch(
            &mut c,
            &mut lx,
            BAR_LIGHT,
            &format!("support < {low_support}: unreliable"),
        );
    } else {
        swatch(&mut c, &mut lx, BAR, "F1");
    }
    if d.macro_f1.is_some() {
        c.dashed((lx, ly), (lx + 24.0, ly), INK, 1.5, 5.0, 3.0);
        lx += 30.0 + c.text("macro F1", lx + 30.0, ly, lf) + 20.0;
    }
    if d.micro_f1.is_some() {
        c.dashed(
            (lx, ly),
            (lx + 24.0, ly),
            Rgba::hex(0xd55e00),
            2.0,
            2.0,
            3.0,
        );
        c.text("micro F1", lx + 30.0, ly, lf);
    }

    let xs = Scale::linear(0.0, 100.0, x0, x1);
    // Column headers.
    let hf = Font::new(TICK_EM, MUTED).align(HAlign::Right, VAlign::Bottom);
    for (name, right) in &cols {
        c.text(name, *right, gy0 - 6.0, hf);
    }
    if n == 0 {
        c.text(
            "no labels",
            (x0 + x1) / 2.0,
            gy0 + row_h / 2.0,
            Font::new(LABEL_EM, FAINT).align(HAlign::Center, VAlign::Middle),
        );
    }
    // Zebra stripes, grid.
    for i in (1..n).step_by(2) {
        let y = gy0 + i as f64 * row_h;
        c.rect(24.0, y, cx + 4.0, y + row_h, Rgba::hex(0xf6f7f9));
    }
    let ticks = xs.ticks(5);
    let tl = tick_labels(&ticks);
    let tf = Font::new(TICK_EM, MUTED).align(HAlign::Center, VAlign::Top);
    let tft = Font::new(TICK_EM, MUTED).align(HAlign::Center, VAlign::Bottom);
    for (t, l) in ticks.iter().zip(&tl) {
        let x = xs.map(*t).round();
        c.line(vec![(x, gy0), (x, gy1)], GRID, 1.0);
        c.text(l, x, gy1 + 6.0, tf);
        if n > 25 {
            c.text(l, x, gy0 - 6.0, tft);
        }
    }
    c.text(
        "F1 (%)",
        (x0 + x1) / 2.0,
        gy1 + 26.0,
        Font::new(LABEL_EM, TEXT).align(HAlign::Center, VAlign::Top),
    );

    let bh = (row_h * 0.66).round();
    let rf = Font::new(em, TEXT).align(HAlign::Right, VAlign::Middle);
    let nf = Font::new(em, TEXT).align(HAlign::Right, VAlign::Middle);
    let mut gap_y = None;
    for (i, r) in entries.iter().enumerate() {
        let yc = gy0 + (i as f64 + 0.5) * row_h;
        let Some(r) = r else {
            gap_y = Some(yc);
            continue;
        };
        let color = if r.support == 0 || r.f1.is_none() {
            FAINT
        } else {
            TEXT
        };
        c.text(
            &text::fit(&labels[i], label_w, em, false),
            x0 - 8.0,
            yc,
            Font { color, ..rf },
        );
        match r.f1 {
            Some(f) => {
                let fill = if r.low_support { BAR_LIGHT } else { BAR };
                let xe = xs.map(f * 100.0);
                c.rect(x0, yc - bh / 2.0, xe.max(x0 + 1.0), yc + bh / 2.0, fill);
            }
            None => {
                c.text(
                    "n/a",
                    x0 + 6.0,
                    yc,
                    Font::new(em, FAINT).align(HAlign::Left, VAlign::Middle),
                );
            }
        }
        let vals = [
            r.f1.map(text::pct).unwrap_or_else(|| "n/a".into()),
            text::count(r.support),
            r.precision.map(text::pct).unwrap_or_else(|| "–".into()),
            r.recall.map(text::pct).unwrap_or_else(|| "–".into()),
        ];
        let shown = [true, true, has_p, has_r];
        let mut k = 0;
        for (v, on) in vals.iter().zip(shown) {
            if on {
                let f = if k == 0 {
                    Font { color: INK, ..nf }.bold()
                } else {
                    Font { color, ..nf }
                };
                c.text(v, cols[k].1, yc, f);
                k += 1;
            }
        }
        let tip = format!(
            "{}\nF1 {}% · support {}{}{}",
            r.label,
            r.f1.map(text::pct).unwrap_or_else(|| "n/a".into()),
            text::count(r.support),
            r.precision
                .map(|p| format!(" · precision {}%", text::pct(p)))
                .unwrap_or_default(),
            r.recall
                .map(|p| format!(" · recall {}%", text::pct(p)))
                .unwrap_or_default(),
        );
        c.tip(24.0, yc - row_h / 2.0, cx - 20.0, row_h, tip);
    }
    c.line(vec![(x0, gy0), (x0, gy1)], AXIS, 1.0);
    if let Some(m) = d.macro_f1 {
        let x = xs.map(m * 100.0);
        c.dashed((x, gy0 - 2.0), (x, gy1 + 2.0), INK, 1.5, 5.0, 3.0);
    }
    if let Some(m) = d.micro_f1 {
        let x = xs.map(m * 100.0);
        c.dashed(
            (x, gy0 - 2.0),
            (x, gy1 + 2.0),
            Rgba::hex(0xd55e00),
            2.0,
            2.0,
            3.0,
        );
    }
    if let Some(yc) = gap_y {
        c.rect(24.0, yc - row_h / 2.0, cx + 4.0, yc + row_h / 2.0, WHITE);
        let note = format!(
            "… {} labels between these not shown (all are in the JSON sidecar) …",
            text::count(hidden)
        );
        c.text(
            &note,
            24.0,
            yc,
            Font::new(em, MUTED)
                .bold()
                .align(HAlign::Left, VAlign::Middle),
        );
    }
    c
}
