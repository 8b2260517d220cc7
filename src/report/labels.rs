//! Per-label F1 as horizontal bars, sorted by F1, with support counts (for
//! token tasks such as slot tagging; works for any per-label scores).

use std::cmp::Ordering;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
use crate::report::layout::{self, Key, Rows};
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
            title: layout::title_or(&self.title, "F1 per label"),
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

const MICRO: Rgba = Rgba::hex(0xd55e00);

/// The rows drawn (`None`: the gap row between the best and the worst of a long list), the bar
/// area and the numeric columns.
struct Frame<'a> {
    entries: Vec<Option<&'a LabelF1Row>>,
    hidden: usize,
    rows: Rows,
    labels: Vec<String>,
    label_w: f64,
    bars: Scale,
    /// Column name, right edge and which of a row's numbers (F1, support, P, R) it shows: F1 %,
    /// support, and P % / R % when any row has them.
    cols: Vec<(&'static str, f64, usize)>,
    /// The right end of the table.
    right: f64,
}

impl<'a> Frame<'a> {
    fn new(d: &'a LabelF1Data) -> Self {
        let n_all = d.rows.len();
        let hidden = n_all.saturating_sub(MAX_ROWS);
        let entries: Vec<Option<&LabelF1Row>> = if hidden == 0 {
            d.rows.iter().map(Some).collect()
        } else {
            let half = MAX_ROWS / 2;
            let tail = d.rows[n_all - half..].iter().map(Some);
            d.rows[..half]
                .iter()
                .map(Some)
                .chain([None])
                .chain(tail)
                .collect()
        };
        let rows = Rows::new(entries.len(), 124.0, (12.0, 22.0), (8.5, 12.5));
        let labels: Vec<String> = entries
            .iter()
            .map(|r| r.map(|r| text::clean(&r.label)).unwrap_or_default())
            .collect();
        let label_w = layout::label_width(
            labels.iter().map(|l| (l.as_str(), false)),
            rows.em,
            60.0,
            260.0,
        );
        let x0 = layout::MARGIN + label_w + 12.0;
        let x1 = x0 + 440.0;
        let has_p = d.rows.iter().any(|r| r.precision.is_some());
        let has_r = d.rows.iter().any(|r| r.recall.is_some());
        let mut cols = Vec::new();
        let mut cx = x1 + 16.0;
        for (k, (name, w, on)) in [
            ("F1 %", 52.0, true),
            ("support", 72.0, true),
            ("P %", 52.0, has_p),
            ("R %", 52.0, has_r),
        ]
        .into_iter()
        .enumerate()
        {
            if on {
                cx += w;
                cols.push((name, cx, k));
            }
        }
        Frame {
            entries,
            hidden,
            rows,
            labels,
            label_w,
            bars: Scale::linear(0.0, 100.0, x0, x1),
            cols,
            right: cx,
        }
    }

    fn x0(&self) -> f64 {
        self.bars.map(0.0)
    }
}

pub(crate) fn draw(d: &LabelF1Data, low_support: usize) -> Canvas {
    let f = Frame::new(d);
    let width = (f.right + 24.0).max(760.0);
    let mut c = Canvas::new(width, f.rows.y1() + 60.0, &d.title);
    layout::header(&mut c, &d.title, width, &[subtitle(d)]);
    legend(&mut c, d, low_support);
    axes(&mut c, &f);
    for (i, r) in f.entries.iter().enumerate() {
        match r {
            Some(r) => row(&mut c, &f, i, r),
            None => gap(&mut c, &f, i),
        }
    }
    let (x0, (y0, y1)) = (f.x0(), (f.rows.y0, f.rows.y1()));
    c.line(vec![(x0, y0), (x0, y1)], AXIS, 1.0);
    for (m, key) in [(d.macro_f1, macro_key()), (d.micro_f1, micro_key())] {
        if let (Some(m), Key::Dash(color, w, dash, gap)) = (m, key) {
            let x = f.bars.map(m * 100.0);
            c.dashed((x, y0 - 2.0), (x, y1 + 2.0), color, w, dash, gap);
        }
    }
    c
}

fn macro_key() -> Key {
    Key::Dash(INK, 1.5, 5.0, 3.0)
}

fn micro_key() -> Key {
    Key::Dash(MICRO, 2.0, 2.0, 3.0)
}

/// `30 labels · support 5,445 · macro F1 72.3% · micro F1 87.4%`.
fn subtitle(d: &LabelF1Data) -> String {
    let mut sub = vec![
        format!("{} labels", d.rows.len()),
        format!("support {}", text::count(d.total_support)),
    ];
    sub.extend(d.macro_f1.map(|m| format!("macro F1 {}%", text::pct(m))));
    sub.extend(d.micro_f1.map(|m| format!("micro F1 {}%", text::pct(m))));
    sub.join("  ·  ")
}

fn legend(c: &mut Canvas, d: &LabelF1Data, low_support: usize) {
    let mut keys = if low_support > 0 {
        vec![
            (Key::Swatch(BAR), format!("F1 (support ≥ {low_support})")),
            (
                Key::Swatch(BAR_LIGHT),
                format!("support < {low_support}: unreliable"),
            ),
        ]
    } else {
        vec![(Key::Swatch(BAR), "F1".to_string())]
    };
    if d.macro_f1.is_some() {
        keys.push((macro_key(), "macro F1".into()));
    }
    if d.micro_f1.is_some() {
        keys.push((micro_key(), "micro F1".into()));
    }
    layout::legend_row(c, layout::MARGIN, 82.0, &keys);
}

/// Column headers, zebra stripes, the F1 grid (labelled below, and above for long lists) and
/// its title.
fn axes(c: &mut Canvas, f: &Frame) {
    let (y0, y1) = (f.rows.y0, f.rows.y1());
    let hf = Font::at(TICK_EM, MUTED, HAlign::Right, VAlign::Bottom);
    for (name, right, _) in &f.cols {
        c.text(name, *right, y0 - 6.0, hf);
    }
    let (x0, x1) = (f.x0(), f.bars.map(100.0));
    if f.entries.is_empty() {
        layout::empty_note(c, "no labels", (x0 + x1) / 2.0, f.rows.center(0), LABEL_EM);
    }
    f.rows.zebra(c, layout::MARGIN, f.right + 4.0);
    let ticks = f.bars.ticks(5);
    let both = f.entries.len() > 25;
    layout::x_grid(
        c,
        &f.bars,
        &ticks,
        &tick_labels(&ticks),
        (y0, y1),
        (both, true),
    );
    let tf = Font::at(LABEL_EM, TEXT, HAlign::Center, VAlign::Top);
    c.text("F1 (%)", (x0 + x1) / 2.0, y1 + 26.0, tf);
}

/// One label: its name, its bar (lighter for low support, `n/a` without an F1), its numbers and
/// a tooltip with all of them.
fn row(c: &mut Canvas, f: &Frame, i: usize, r: &LabelF1Row) {
    let (yc, em) = (f.rows.center(i), f.rows.em);
    let color = if r.support == 0 || r.f1.is_none() {
        FAINT
    } else {
        TEXT
    };
    let rf = Font::at(em, color, HAlign::Right, VAlign::Middle);
    let x0 = f.x0();
    c.text(
        &text::fit(&f.labels[i], f.label_w, em, false),
        x0 - 8.0,
        yc,
        rf,
    );
    let bh = (f.rows.h * 0.66).round();
    match r.f1 {
        Some(v) => {
            let fill = if r.low_support { BAR_LIGHT } else { BAR };
            let xe = f.bars.map(v * 100.0).max(x0 + 1.0);
            c.rect(x0, yc - bh / 2.0, xe, yc + bh / 2.0, fill);
        }
        None => {
            let nf = Font::at(em, FAINT, HAlign::Left, VAlign::Middle);
            c.text("n/a", x0 + 6.0, yc, nf);
        }
    }
    let pct_or = |v: Option<f64>, none: &str| v.map(text::pct).unwrap_or_else(|| none.into());
    let vals = [
        pct_or(r.f1, "n/a"),
        text::count(r.support),
        pct_or(r.precision, "–"),
        pct_or(r.recall, "–"),
    ];
    for &(_, right, k) in &f.cols {
        let font = match k {
            0 => Font { color: INK, ..rf }.bold(),
            _ => rf,
        };
        c.text(&vals[k], right, yc, font);
    }
    let mut tip = format!(
        "{}\nF1 {}% · support {}",
        r.label,
        pct_or(r.f1, "n/a"),
        text::count(r.support)
    );
    for (name, v) in [("precision", r.precision), ("recall", r.recall)] {
        if let Some(v) = v {
            tip.push_str(&format!(" · {name} {}%", text::pct(v)));
        }
    }
    f.rows.tip(c, i, layout::MARGIN, f.right - 20.0, tip);
}

/// The row between the best and the worst labels of a long list: how many are not shown.
fn gap(c: &mut Canvas, f: &Frame, i: usize) {
    let (yc, h) = (f.rows.center(i), f.rows.h);
    c.rect(
        layout::MARGIN,
        yc - h / 2.0,
        f.right + 4.0,
        yc + h / 2.0,
        WHITE,
    );
    let note = format!(
        "… {} labels between these not shown (all are in the JSON sidecar) …",
        text::count(f.hidden)
    );
    let nf = Font::new(f.rows.em, MUTED)
        .bold()
        .align(HAlign::Left, VAlign::Middle);
    c.text(&note, layout::MARGIN, yc, nf);
}
