//! Per-layer quantization fidelity: cosine similarity and/or max |diff| of
//! each layer's (or tensor's) output against the float reference, in model
//! order, with thresholds.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::canvas::{Canvas, Font, HAlign, Rgba};
use crate::report::chart::{ChartFiles, Rendered};
use crate::report::error::Result;
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
            title: if self.title.trim().is_empty() {
                "Quantization fidelity per layer".into()
            } else {
                self.title.clone()
            },
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

pub(crate) fn draw(d: &FidelityData, input: &FidelityChart) -> Canvas {
    let n_all = d.layers.len();
    let n = n_all.min(MAX_ROWS);
    let row_h = if n <= 40 {
        21.0
    } else {
        (2600.0 / n as f64).clamp(11.0, 21.0)
    };
    let em = (row_h * 0.6).clamp(8.0, 12.0);
    let names: Vec<String> = d
        .layers
        .iter()
        .take(n)
        .map(|l| text::clean(&l.name))
        .collect();
    let failing =
        |l: &LayerFidelityRow| l.cosine_ok == Some(false) || l.max_abs_diff_ok == Some(false);
    let label_w = names
        .iter()
        .zip(&d.layers)
        .map(|(name, l)| text::width(name, em, failing(l)))
        .fold(60.0, f64::max)
        .min(320.0);
    let has_cos = input.layers.iter().any(|l| l.cosine.is_some());
    let has_diff = input.layers.iter().any(|l| l.max_abs_diff.is_some());

    let px0 = 24.0 + label_w + 14.0;
    let mut panels: Vec<(bool, f64)> = Vec::new(); // (is_cosine, left x)
    let mut x = px0;
    if has_cos {
        panels.push((true, x));
        x += PANEL_W + 46.0;
    }
    if has_diff {
        panels.push((false, x));
        x += PANEL_W + 46.0;
    }
    let width = (x + 10.0).max(760.0);
    let gy0 = 140.0;
    let gy1 = gy0 + n.max(1) as f64 * row_h;
    let height = gy1 + 40.0 + if n_all > n { 24.0 } else { 0.0 };
    let mut c = Canvas::new(width, height, &d.title);

    c.text(
        &text::fit(&d.title, width - 48.0, TITLE_EM, true),
        24.0,
        20.0,
        Font::new(TITLE_EM, INK)
            .bold()
            .align(HAlign::Left, VAlign::Top),
    );
    let mut sub = vec![format!("{n_all} layers")];
    if let Some((i, v)) = d
        .layers
        .iter()
        .take(n)
        .enumerate()
        .filter_map(|(i, l)| l.cosine.map(|v| (i, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
    {
        sub.push(format!(
            "lowest cosine {} ({})",
            text::num(v),
            text::fit_middle(&names[i], 340.0, SUB_EM, false)
        ));
    }
    if let Some(t) = d.cosine_threshold {
        sub.push(format!(
            "{} below cosine {}",
            d.cosine_failures.len(),
            text::num(t)
        ));
    }
    if let Some(t) = d.max_abs_diff_threshold {
        sub.push(format!(
            "{} above max |diff| {}",
            d.max_abs_diff_failures.len(),
            text::num(t)
        ));
    }
    let sub = text::fit(&sub.join("  ·  "), width - 48.0, SUB_EM, false);
    c.text(
        &sub,
        24.0,
        48.0,
        Font::new(SUB_EM, MUTED).align(HAlign::Left, VAlign::Top),
    );

    if n == 0 || panels.is_empty() {
        let msg = if n == 0 {
            "no layers"
        } else {
            "no fidelity values"
        };
        c.text(
            msg,
            width / 2.0,
            gy0 + row_h / 2.0,
            Font::new(LABEL_EM, FAINT).align(HAlign::Center, VAlign::Middle),
        );
        return c;
    }

    for i in (1..n).step_by(2) {
        let y = gy0 + i as f64 * row_h;
        c.rect(24.0, y, x - 30.0, y + row_h, Rgba::hex(0xf6f7f9));
    }
    // Layer names (model order), red when any check fails.
    let rf = Font::new(em, TEXT).align(HAlign::Right, VAlign::Middle);
    if n_all > n {
        let note = format!(
            "+ {} more layers not shown ({} of them failing; all are in the JSON sidecar)",
            n_all - n,
            d.layers[n..].iter().filter(|l| failing(l)).count()
        );
        c.text(
            &note,
            24.0,
            gy1 + 34.0,
            Font::new(TICK_EM, MUTED).align(HAlign::Left, VAlign::Top),
        );
    }
    for (i, l) in d.layers.iter().take(n).enumerate() {
        let yc = gy0 + (i as f64 + 0.5) * row_h;
        let f = if failing(l) {
            Font { color: BAD, ..rf }.bold()
        } else {
            rf
        };
        let shown = text::fit_middle(&names[i], label_w, em, f.bold);
        c.text(&shown, px0 - 10.0, yc, f);
        let mut tip = l.name.clone();
        if let Some(v) = l.cosine {
            tip.push_str(&format!("\ncosine {v:.6}"));
        } else if l.cosine_ok == Some(false) {
            tip.push_str("\ncosine not finite");
        }
        if let Some(v) = l.max_abs_diff {
            tip.push_str(&format!("\nmax |diff| {}", text::num(v)));
        } else if l.max_abs_diff_ok == Some(false) {
            tip.push_str("\nmax |diff| not finite");
        }
        c.tip(24.0, yc - row_h / 2.0, x - 54.0, row_h, tip);
    }

    for (is_cos, left) in panels {
        let (x0, x1) = (left, left + PANEL_W);
        let sc = if is_cos {
            cosine_scale(d, x0, x1)
        } else {
            diff_scale(d, x0, x1)
        };
        let title = match (is_cos, sc.is_log()) {
            (true, _) => "cosine similarity  (higher is better)",
            (false, true) => "max |diff|  (lower is better, log scale)",
            (false, false) => "max |diff|  (lower is better)",
        };
        c.text(
            title,
            x0,
            82.0,
            Font::new(LABEL_EM, INK)
                .bold()
                .align(HAlign::Left, VAlign::Middle),
        );
        let ticks = sc.ticks(if sc.is_log() { 6 } else { 4 });
        let labels: Vec<String> = if sc.is_log() {
            ticks.iter().map(|t| pow10_label(*t)).collect()
        } else {
            tick_labels(&ticks)
        };
        let tf = Font::new(TICK_EM, MUTED).align(HAlign::Center, VAlign::Bottom);
        let bf = Font::new(TICK_EM, MUTED).align(HAlign::Center, VAlign::Top);
        for (t, l) in ticks.iter().zip(&labels) {
            let xx = sc.map(*t).round();
            c.line(vec![(xx, gy0), (xx, gy1)], GRID, 1.0);
            c.text(l, xx, gy0 - 6.0, tf);
            if n > 25 {
                c.text(l, xx, gy1 + 6.0, bf);
            }
        }
        c.frame(x0, gy0, x1, gy1, Rgba::hex(0xc8c8c8), 1.0);
        let thr = if is_cos {
            d.cosine_threshold
        } else {
            d.max_abs_diff_threshold
        };
        if let Some(t) = thr {
            if sc.contains(t) {
                let xx = sc.map(t);
                c.dashed((xx, gy0), (xx, gy1), BAD, 1.5, 6.0, 4.0);
                let label = format!("threshold {}", text::num(t));
                let f = Font::new(TICK_EM, BAD).bold();
                let w = f.width(&label);
                let (tx, h) = if xx + 5.0 + w <= x1 + 40.0 {
                    (xx + 5.0, HAlign::Left)
                } else {
                    (xx - 5.0, HAlign::Right)
                };
                c.rect(
                    if h == HAlign::Left {
                        tx - 2.0
                    } else {
                        tx - w - 2.0
                    },
                    gy0 - 40.0,
                    tx + w + 2.0,
                    gy0 - 22.0,
                    WHITE,
                );
                c.text(&label, tx, gy0 - 31.0, f.align(h, VAlign::Middle));
            }
        }
        let base = if is_cos { x1 } else { x0 };
        for (i, l) in d.layers.iter().take(n).enumerate() {
            let yc = gy0 + (i as f64 + 0.5) * row_h;
            let (v, ok) = if is_cos {
                (l.cosine, l.cosine_ok)
            } else {
                (l.max_abs_diff, l.max_abs_diff_ok)
            };
            let color = if ok == Some(false) { BAD } else { OK };
            match v {
                Some(v) => {
                    let xx = if !is_cos && sc.is_log() && v <= 0.0 {
                        x0
                    } else {
                        sc.map(v)
                    };
                    c.line(vec![(base, yc), (xx, yc)], color.alpha(0.45), 2.0);
                    c.circle(xx, yc, (row_h * 0.2).clamp(2.5, 4.0), color, true, 1.0);
                }
                None if ok == Some(false) => {
                    c.text(
                        "NaN",
                        x0 + 4.0,
                        yc,
                        Font::new(em, BAD)
                            .bold()
                            .align(HAlign::Left, VAlign::Middle),
                    );
                }
                None => {}
            }
        }
    }
    c
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
