//! Layout every chart shares: the title block, tick grids with their labels, rows of labelled
//! entries (zebra stripes, labels, tooltips), legend keys, and labels on a white backing beside a
//! marker line.

use crate::report::canvas::{Canvas, Font, HAlign, Marker, Rgba};
use crate::report::scale::{tick_labels, Scale};
use crate::report::text::{self, VAlign};
use crate::report::theme::*;

/// Left and right margin of every chart.
pub(crate) const MARGIN: f64 = 24.0;
/// Width of a legend key (a line, swatch or dash before its label).
pub(crate) const KEY_W: f64 = 24.0;
/// Colour of zebra stripes.
const STRIPE: Rgba = Rgba::hex(0xf6f7f9);

/// The title (bold, fitted to the chart's `width`) and subtitle lines under it.
pub(crate) fn header(c: &mut Canvas, title: &str, width: f64, subtitles: &[String]) {
    let room = width - 2.0 * MARGIN;
    let top = |em, color| Font::at(em, color, HAlign::Left, VAlign::Top);
    c.text(
        &text::fit(title, room, TITLE_EM, true),
        MARGIN,
        20.0,
        top(TITLE_EM, INK).bold(),
    );
    for (i, s) in subtitles.iter().enumerate() {
        let line = text::fit(s, room, SUB_EM, false);
        c.text(&line, MARGIN, 48.0 + 20.0 * i as f64, top(SUB_EM, MUTED));
    }
}

/// `title`, or `default` when it is blank.
pub(crate) fn title_or(title: &str, default: &str) -> String {
    match title.trim() {
        "" => default.to_string(),
        _ => title.to_string(),
    }
}

/// A faint, centred note where there is nothing to draw (`no labels`).
pub(crate) fn empty_note(c: &mut Canvas, note: &str, x: f64, y: f64, em: f64) {
    let f = Font::at(em, FAINT, HAlign::Center, VAlign::Middle);
    c.text(note, x, y, f);
}

/// The widest of `labels` in a font of `em` (bold where marked), within `min..=max`.
pub(crate) fn label_width<'a>(
    labels: impl IntoIterator<Item = (&'a str, bool)>,
    em: f64,
    min: f64,
    max: f64,
) -> f64 {
    labels
        .into_iter()
        .map(|(l, bold)| text::width(l, em, bold))
        .fold(min, f64::max)
        .min(max)
}

/// `n` rows of equal height from `y0` down: `max_h` each up to 40 rows, smaller for long lists
/// (about 2,600 pixels in all, at least `min_h` each), with a font that fits them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    pub y0: f64,
    pub h: f64,
    pub n: usize,
    pub em: f64,
}

impl Rows {
    pub(crate) fn new(n: usize, y0: f64, (min_h, max_h): (f64, f64), (lo, hi): (f64, f64)) -> Self {
        let h = if n <= 40 {
            max_h
        } else {
            (2600.0 / n as f64).clamp(min_h, max_h)
        };
        Rows {
            y0,
            h,
            n,
            em: (h * 0.6).clamp(lo, hi),
        }
    }

    /// The bottom of the last row (of one row when there are none).
    pub(crate) fn y1(&self) -> f64 {
        self.y0 + self.n.max(1) as f64 * self.h
    }

    /// The vertical middle of row `i`.
    pub(crate) fn center(&self, i: usize) -> f64 {
        self.y0 + (i as f64 + 0.5) * self.h
    }

    /// Light stripes behind every second row, from `x0` to `x1`.
    pub(crate) fn zebra(&self, c: &mut Canvas, x0: f64, x1: f64) {
        for i in (1..self.n).step_by(2) {
            let y = self.y0 + i as f64 * self.h;
            c.rect(x0, y, x1, y + self.h, STRIPE);
        }
    }

    /// A tooltip over row `i` from `x0`, `w` wide.
    pub(crate) fn tip(&self, c: &mut Canvas, i: usize, x0: f64, w: f64, tip: String) {
        c.tip(x0, self.center(i) - self.h / 2.0, w, self.h, tip);
    }
}

/// Vertical grid lines at `ticks` of `scale` from `y0` to `y1`, labelled above and/or below.
pub(crate) fn x_grid(
    c: &mut Canvas,
    scale: &Scale,
    ticks: &[f64],
    labels: &[String],
    (y0, y1): (f64, f64),
    (above, below): (bool, bool),
) {
    let font = |v| Font::at(TICK_EM, MUTED, HAlign::Center, v);
    for (t, l) in ticks.iter().zip(labels) {
        let x = scale.map(*t).round();
        c.line(vec![(x, y0), (x, y1)], GRID, 1.0);
        if above {
            c.text(l, x, y0 - 6.0, font(VAlign::Bottom));
        }
        if below {
            c.text(l, x, y1 + 6.0, font(VAlign::Top));
        }
    }
}

/// Horizontal grid lines at about five ticks of `scale` from `x0` to `x1`, labelled on the left.
pub(crate) fn y_grid(c: &mut Canvas, scale: &Scale, x0: f64, x1: f64) {
    let ticks = scale.ticks(5);
    let f = Font::at(TICK_EM, MUTED, HAlign::Right, VAlign::Middle);
    for (v, l) in ticks.iter().zip(tick_labels(&ticks)) {
        let y = scale.map(*v).round();
        c.line(vec![(x0, y), (x1, y)], GRID, 1.0);
        c.text(&l, x0 - 8.0, y, f);
    }
}

/// An axis title reading bottom-to-top, centred on `y0..y1` at `x`.
pub(crate) fn y_title(c: &mut Canvas, title: &str, x: f64, (y0, y1): (f64, f64), font: Font) {
    let f = font.align(HAlign::Center, VAlign::Top).vertical();
    c.text(title, x, (y0 + y1) / 2.0, f);
}

/// What a legend entry shows before its label.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key {
    /// A filled square.
    Swatch(Rgba),
    /// A dashed line: colour, width, dash and gap.
    Dash(Rgba, f64, f64, f64),
    /// A line with a series marker.
    Series(Rgba, Marker),
    /// A line with a small filled dot (the loss).
    Dot(Rgba),
}

impl Key {
    /// Draws the key at `x` (its left end), centred on `y`.
    pub(crate) fn draw(self, c: &mut Canvas, x: f64, y: f64) {
        match self {
            Key::Swatch(color) => c.rect(x, y - 6.0, x + 18.0, y + 6.0, color),
            Key::Dash(color, width, dash, gap) => {
                c.dashed((x, y), (x + KEY_W, y), color, width, dash, gap)
            }
            Key::Series(color, marker) => {
                c.line(vec![(x, y), (x + KEY_W, y)], color, 2.0);
                c.marker(marker, x + 12.0, y, 3.6, color);
            }
            Key::Dot(color) => {
                c.line(vec![(x, y), (x + KEY_W, y)], color, 2.0);
                c.circle(x + 12.0, y, 2.8, color, true, 1.0);
            }
        }
    }
}

/// Legend entries in one row from `x` on line `y`; returns where the row ends.
pub(crate) fn legend_row(c: &mut Canvas, mut x: f64, y: f64, entries: &[(Key, String)]) -> f64 {
    let f = Font::at(TICK_EM, TEXT, HAlign::Left, VAlign::Middle);
    for (key, label) in entries {
        key.draw(c, x, y);
        let gap = match key {
            Key::Swatch(_) => KEY_W,
            _ => KEY_W + 6.0,
        };
        x += gap + c.text(label, x + gap, y, f) + 20.0;
    }
    x
}

/// A bold label beside a vertical marker line at `x`, on the side with more room within
/// `left..right` (centred on the line when `center` and it fits), on a white backing so grid
/// lines do not run through it; `y` is the top of the label's box.
#[allow(clippy::too_many_arguments)]
pub(crate) fn flag(
    c: &mut Canvas,
    label: &str,
    x: f64,
    y: f64,
    (left, right): (f64, f64),
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
