//! Per-layer quantization fidelity: cosine similarity and/or max |diff| of
//! each layer's (or tensor's) output against the float reference, in model
//! order, with thresholds.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
use crate::report::layout::{self, Rows};
use crate::report::scale::{nice_step, tick_labels, Scale};
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// Fidelity of one layer or tensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerFidelity {
    /// Layer or tensor name.
    pub name: String,
    /// Cosine similarity to the reference (1 = identical).
    pub cosine: Option<f64>,
    /// Largest absolute element difference to the reference.
    pub max_abs_diff: Option<f64>,
}

/// Input of [`render_layer_fidelity`] / [`write_layer_fidelity`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FidelityChart {
    /// Chart title; empty gives "Quantization fidelity per layer".
    pub title: String,
    /// Layers in model order (drawn top to bottom in this order).
    pub layers: Vec<LayerFidelity>,
    /// Cosine values below this fail (drawn red).
    pub cosine_threshold: Option<f64>,
    /// Max |diff| values above this fail (drawn red).
    pub max_abs_diff_threshold: Option<f64>,
}

/// One layer as drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerFidelityRow {
    /// Layer name.
    pub name: String,
    /// Cosine similarity, `None` when absent or not finite.
    pub cosine: Option<f64>,
    /// Max |diff|, `None` when absent or not finite.
    pub max_abs_diff: Option<f64>,
    /// `Some(false)` when the cosine fails its threshold or is NaN/∞,
    /// `Some(true)` when it passes, `None` when not judged.
    pub cosine_ok: Option<bool>,
    /// Same for max |diff|.
    pub max_abs_diff_ok: Option<bool>,
}

/// The data a fidelity chart was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelityData {
    /// Title as drawn.
    pub title: String,
    /// Layers in model order.
    pub layers: Vec<LayerFidelityRow>,
    /// See [`FidelityChart::cosine_threshold`] (`None` if not finite).
    pub cosine_threshold: Option<f64>,
    /// See [`FidelityChart::max_abs_diff_threshold`] (`None` if not finite).
    pub max_abs_diff_threshold: Option<f64>,
    /// Names of layers whose cosine failed.
    pub cosine_failures: Vec<String>,
    /// Names of layers whose max |diff| failed.
    pub max_abs_diff_failures: Vec<String>,
}

impl FidelityChart {
    /// The data as it will be drawn.
    pub fn data(&self) -> FidelityData {
        let ct = self.cosine_threshold.filter(|v| v.is_finite());
        let dt = self.max_abs_diff_threshold.filter(|v| v.is_finite());
        let judge = |v: Option<f64>, t: Option<f64>, ok: fn(f64, f64) -> bool| match v {
            None => None,
            Some(v) if !v.is_finite() => Some(false),
            Some(v) => t.map(|t| ok(v, t)),
        };
        let layers: Vec<LayerFidelityRow> = self
            .layers
            .iter()
            .map(|l| LayerFidelityRow {
                name: l.name.clone(),
                cosine: l.cosine.filter(|v| v.is_finite()),
                max_abs_diff: l.max_abs_diff.filter(|v| v.is_finite()),
                cosine_ok: judge(l.cosine, ct, |v, t| v >= t),
                max_abs_diff_ok: judge(l.max_abs_diff, dt, |v, t| v <= t),
            })
            .collect();
        FidelityData {
            title: layout::title_or(&self.title, "Quantization fidelity per layer"),
            cosine_failures: layers
                .iter()
                .filter(|l| l.cosine_ok == Some(false))
                .map(|l| l.name.clone())
                .collect(),
            max_abs_diff_failures: layers
                .iter()
                .filter(|l| l.max_abs_diff_ok == Some(false))
                .map(|l| l.name.clone())
                .collect(),
            layers,
            cosine_threshold: ct,
            max_abs_diff_threshold: dt,
        }
    }
}

/// Draws the fidelity chart in memory.
pub fn render_layer_fidelity(chart: &FidelityChart) -> Result<Rendered<FidelityData>> {
    text::ensure_fonts()?;
    let data = chart.data();
    let canvas = draw(&data, chart);
    Rendered::from_canvas(&canvas, data)
}

/// Draws the fidelity chart and writes `stem.svg`, `stem.png` and
/// `stem.json` (atomically).
pub fn write_layer_fidelity(
    stem: &Path,
    chart: &FidelityChart,
) -> Result<ChartFiles<FidelityData>> {
    crate::report::chart::write_chart(stem, render_layer_fidelity(chart)?)
}

const PANEL_W: f64 = 360.0;
const OK: Rgba = Rgba::hex(0x2b6cb0);

fn cosine_scale(d: &FidelityData, x0: f64, x1: f64) -> Scale {
    let mut vals: Vec<f64> = d.layers.iter().filter_map(|l| l.cosine).collect();
    vals.extend(d.cosine_threshold);
    let mn = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let mx = vals
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(1.0);
    if !mn.is_finite() {
        return Scale::linear(0.99, 1.0, x0, x1);
    }
    let span = (mx - mn).max(1e-4);
    let step = nice_step(span * 1.1 / 4.0);
    let lo = ((mn - span * 0.08) / step).floor() * step;
    Scale::linear(lo, mx, x0, x1)
}

fn diff_scale(d: &FidelityData, x0: f64, x1: f64) -> Scale {
    let mut vals: Vec<f64> = d
        .layers
        .iter()
        .filter_map(|l| l.max_abs_diff)
        .map(f64::abs)
        .collect();
    vals.extend(d.max_abs_diff_threshold.map(f64::abs));
    let mx = vals.iter().copied().fold(0.0, f64::max);
    let mn_pos = vals
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    if mx <= 0.0 {
        return Scale::linear(0.0, 1e-6, x0, x1);
    }
    if mn_pos.is_finite() && mx / mn_pos > 30.0 {
        let lo = 10f64.powf(mn_pos.log10().floor());
        let hi = 10f64.powf(mx.log10().ceil());
        return Scale::log(lo, hi, x0, x1);
    }
    let step = nice_step(mx * 1.1 / 4.0);
    Scale::linear(0.0, (mx * 1.05 / step).ceil() * step, x0, x1)
}

/// Most rows drawn; the rest are summarised in a note (all are in the data).
const MAX_ROWS: usize = 300;

fn failing(l: &LayerFidelityRow) -> bool {
    l.cosine_ok == Some(false) || l.max_abs_diff_ok == Some(false)
}

/// One value panel: cosine or max |diff|, on its scale.
struct Panel {
    cosine: bool,
    scale: Scale,
    x0: f64,
    x1: f64,
}

impl Panel {
    fn title(&self) -> &'static str {
        match (self.cosine, self.scale.is_log()) {
            (true, _) => "cosine similarity  (higher is better)",
            (false, true) => "max |diff|  (lower is better, log scale)",
            (false, false) => "max |diff|  (lower is better)",
        }
    }

    /// A layer's value in this panel and whether it passed.
    fn value(&self, l: &LayerFidelityRow) -> (Option<f64>, Option<bool>) {
        match self.cosine {
            true => (l.cosine, l.cosine_ok),
            false => (l.max_abs_diff, l.max_abs_diff_ok),
        }
    }

    fn threshold(&self, d: &FidelityData) -> Option<f64> {
        match self.cosine {
            true => d.cosine_threshold,
            false => d.max_abs_diff_threshold,
        }
    }
}

/// The rows (layers in model order, at most [`MAX_ROWS`]), their names, and the panels to the
/// right of the names.
struct Frame {
    n: usize,
    rows: Rows,
    names: Vec<String>,
    label_w: f64,
    panels: Vec<Panel>,
    /// The right end of the last panel (plus its gap).
    right: f64,
}

impl Frame {
    fn new(d: &FidelityData, input: &FidelityChart) -> Self {
        let n = d.layers.len().min(MAX_ROWS);
        let rows = Rows::new(n, 140.0, (11.0, 21.0), (8.0, 12.0));
        let names: Vec<String> = d.layers[..n].iter().map(|l| text::clean(&l.name)).collect();
        let named = names
            .iter()
            .zip(&d.layers)
            .map(|(s, l)| (s.as_str(), failing(l)));
        let label_w = layout::label_width(named, rows.em, 60.0, 320.0);
        let mut x = layout::MARGIN + label_w + 14.0;
        let mut panels = Vec::new();
        for (cosine, on) in [
            (true, input.layers.iter().any(|l| l.cosine.is_some())),
            (false, input.layers.iter().any(|l| l.max_abs_diff.is_some())),
        ] {
            if on {
                let (x0, x1) = (x, x + PANEL_W);
                let scale = match cosine {
                    true => cosine_scale(d, x0, x1),
                    false => diff_scale(d, x0, x1),
                };
                panels.push(Panel {
                    cosine,
                    scale,
                    x0,
                    x1,
                });
                x += PANEL_W + 46.0;
            }
        }
        Frame {
            n,
            rows,
            names,
            label_w,
            panels,
            right: x,
        }
    }
}

pub(crate) fn draw(d: &FidelityData, input: &FidelityChart) -> Canvas {
    let f = Frame::new(d, input);
    let n_all = d.layers.len();
    let width = (f.right + 10.0).max(760.0);
    let height = f.rows.y1() + 40.0 + if n_all > f.n { 24.0 } else { 0.0 };
    let mut c = Canvas::new(width, height, &d.title);
    layout::header(&mut c, &d.title, width, &[subtitle(d, &f)]);
    if f.n == 0 || f.panels.is_empty() {
        let msg = if f.n == 0 {
            "no layers"
        } else {
            "no fidelity values"
        };
        layout::empty_note(&mut c, msg, width / 2.0, f.rows.center(0), LABEL_EM);
        return c;
    }
    f.rows.zebra(&mut c, layout::MARGIN, f.right - 30.0);
    if n_all > f.n {
        let note = format!(
            "+ {} more layers not shown ({} of them failing; all are in the JSON sidecar)",
            n_all - f.n,
            d.layers[f.n..].iter().filter(|l| failing(l)).count()
        );
        let nf = Font::at(TICK_EM, MUTED, HAlign::Left, VAlign::Top);
        c.text(&note, layout::MARGIN, f.rows.y1() + 34.0, nf);
    }
    layer_names(&mut c, d, &f);
    for p in &f.panels {
        panel(&mut c, d, &f, p);
    }
    c
}

/// `32 layers · lowest cosine 0.9862 (name) · 2 below cosine 0.99 · 2 above max |diff| 0.1`.
fn subtitle(d: &FidelityData, f: &Frame) -> String {
    let mut sub = vec![format!("{} layers", d.layers.len())];
    let lowest = d.layers[..f.n]
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.cosine.map(|v| (i, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((i, v)) = lowest {
        let name = text::fit_middle(&f.names[i], 340.0, SUB_EM, false);
        sub.push(format!("lowest cosine {} ({name})", text::num(v)));
    }
    if let Some(t) = d.cosine_threshold {
        let n = d.cosine_failures.len();
        sub.push(format!("{n} below cosine {}", text::num(t)));
    }
    if let Some(t) = d.max_abs_diff_threshold {
        let n = d.max_abs_diff_failures.len();
        sub.push(format!("{n} above max |diff| {}", text::num(t)));
    }
    sub.join("  ·  ")
}

/// The layer names in model order (bold red when a check fails), each row's tooltip with its
/// values.
fn layer_names(c: &mut Canvas, d: &FidelityData, f: &Frame) {
    let x0 = layout::MARGIN + f.label_w + 14.0;
    for (i, l) in d.layers[..f.n].iter().enumerate() {
        let rf = Font::at(f.rows.em, TEXT, HAlign::Right, VAlign::Middle);
        let font = match failing(l) {
            true => Font { color: BAD, ..rf }.bold(),
            false => rf,
        };
        let shown = text::fit_middle(&f.names[i], f.label_w, f.rows.em, font.bold);
        c.text(&shown, x0 - 10.0, f.rows.center(i), font);
        let mut tip = l.name.clone();
        match (l.cosine, l.cosine_ok) {
            (Some(v), _) => tip.push_str(&format!("\ncosine {v:.6}")),
            (None, Some(false)) => tip.push_str("\ncosine not finite"),
            _ => {}
        }
        match (l.max_abs_diff, l.max_abs_diff_ok) {
            (Some(v), _) => tip.push_str(&format!("\nmax |diff| {}", text::num(v))),
            (None, Some(false)) => tip.push_str("\nmax |diff| not finite"),
            _ => {}
        }
        f.rows.tip(c, i, layout::MARGIN, f.right - 54.0, tip);
    }
}

/// One panel: its title, grid (labelled above, and below for long lists), frame, threshold and a
/// lollipop per layer from the good end (red when it fails; `NaN` where the value is not finite).
fn panel(c: &mut Canvas, d: &FidelityData, f: &Frame, p: &Panel) {
    let (sc, (y0, y1)) = (&p.scale, (f.rows.y0, f.rows.y1()));
    let tf = Font::new(LABEL_EM, INK)
        .bold()
        .align(HAlign::Left, VAlign::Middle);
    c.text(p.title(), p.x0, 82.0, tf);
    let ticks = sc.ticks(if sc.is_log() { 6 } else { 4 });
    let labels: Vec<String> = match sc.is_log() {
        true => ticks.iter().map(|t| pow10_label(*t)).collect(),
        false => tick_labels(&ticks),
    };
    layout::x_grid(c, sc, &ticks, &labels, (y0, y1), (true, f.n > 25));
    c.frame(p.x0, y0, p.x1, y1, Rgba::hex(0xc8c8c8), 1.0);
    if let Some(t) = p.threshold(d).filter(|t| sc.contains(*t)) {
        let x = sc.map(t);
        c.dashed((x, y0), (x, y1), BAD, 1.5, 6.0, 4.0);
        let label = format!("threshold {}", text::num(t));
        layout::flag(c, &label, x, y0 - 40.0, (p.x0, p.x1 + 40.0), BAD, false);
    }
    let base = if p.cosine { p.x1 } else { p.x0 };
    for (i, l) in d.layers[..f.n].iter().enumerate() {
        let yc = f.rows.center(i);
        let (v, ok) = p.value(l);
        let color = if ok == Some(false) { BAD } else { OK };
        match v {
            Some(v) => {
                let x = match !p.cosine && sc.is_log() && v <= 0.0 {
                    true => p.x0,
                    false => sc.map(v),
                };
                c.line(vec![(base, yc), (x, yc)], color.alpha(0.45), 2.0);
                c.circle(x, yc, (f.rows.h * 0.2).clamp(2.5, 4.0), color, true, 1.0);
            }
            None if ok == Some(false) => {
                let nf = Font::new(f.rows.em, BAD)
                    .bold()
                    .align(HAlign::Left, VAlign::Middle);
                c.text("NaN", p.x0 + 4.0, yc, nf);
            }
            None => {}
        }
    }
}

/// `1e-4` -> `10⁻⁴`, `1` -> `1`, `10` -> `10`.
fn pow10_label(v: f64) -> String {
    let e = v.log10().round() as i32;
    match e {
        0 => "1".into(),
        1 => "10".into(),
        _ => {
            let sup: String = e
                .to_string()
                .chars()
                .map(|c| match c {
                    '-' => '⁻',
                    '0' => '⁰',
                    '1' => '¹',
                    '2' => '²',
                    '3' => '³',
                    '4' => '⁴',
                    '5' => '⁵',
                    '6' => '⁶',
                    '7' => '⁷',
                    '8' => '⁸',
                    _ => '⁹',
                })
                .collect();
            format!("10{sup}")
        }
    }
}
