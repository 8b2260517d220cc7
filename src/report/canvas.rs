//! A tiny display list that every chart draws into, replayed onto plotters'
//! SVG and bitmap backends.
//!
//! Recording first and replaying twice keeps the chart code free of backend
//! generics (smaller binary), lets the PNG be drawn supersampled (plotters'
//! bitmap lines are not anti-aliased) and lets the SVG get hover tooltips
//! (`<title>`), which plotters has no element for.

use plotters::backend::{BitMapBackend, DrawingBackend, SVGBackend};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontFamily, FontStyle, FontTransform, RGBAColor, ShapeStyle};

use crate::report::error::{ReportError, Result};
use crate::report::text::{self, VAlign};

/// Largest width or height of a chart, in pixels.
pub(crate) const MAX_DIM: f64 = 4000.0;
/// Charts with at most this many pixels get a 2x supersampled PNG.
const SUPERSAMPLE_MAX_PIXELS: f64 = 3_000_000.0;

/// An sRGB colour with opacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rgba(pub u8, pub u8, pub u8, pub f64);

impl Rgba {
    /// Opaque colour from `0xRRGGBB`.
    pub(crate) const fn hex(v: u32) -> Rgba {
        Rgba((v >> 16) as u8, (v >> 8) as u8, v as u8, 1.0)
    }
    /// Same colour with another opacity.
    pub(crate) fn alpha(self, a: f64) -> Rgba {
        Rgba(self.0, self.1, self.2, a)
    }
    /// Linear blend from `self` (t = 0) to `other` (t = 1).
    pub(crate) fn mix(self, other: Rgba, t: f64) -> Rgba {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let m = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        Rgba(
            m(self.0, other.0),
            m(self.1, other.1),
            m(self.2, other.2),
            self.3 + (other.3 - self.3) * t,
        )
    }
    /// Relative luminance (0 = black, 1 = white), for choosing text colour.
    pub(crate) fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }
    fn plotters(self) -> RGBAColor {
        RGBAColor(self.0, self.1, self.2, self.3.clamp(0.0, 1.0))
    }
}

/// Horizontal anchor of a text (along its reading direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// How a text is drawn.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Font {
    pub em: f64,
    pub bold: bool,
    pub color: Rgba,
    pub h: HAlign,
    pub v: VAlign,
    /// Rotated to read bottom-to-top.
    pub vertical: bool,
}

impl Font {
    pub(crate) fn new(em: f64, color: Rgba) -> Font {
        Font {
            em,
            bold: false,
            color,
            h: HAlign::Left,
            v: VAlign::Middle,
            vertical: false,
        }
    }
    /// [`Font::new`] anchored at (`h`, `v`).
    pub(crate) fn at(em: f64, color: Rgba, h: HAlign, v: VAlign) -> Font {
        Font::new(em, color).align(h, v)
    }
    pub(crate) fn bold(mut self) -> Font {
        self.bold = true;
        self
    }
    pub(crate) fn align(mut self, h: HAlign, v: VAlign) -> Font {
        self.h = h;
        self.v = v;
        self
    }
    pub(crate) fn vertical(mut self) -> Font {
        self.vertical = true;
        self
    }
    /// Width of `s` in this font.
    pub(crate) fn width(&self, s: &str) -> f64 {
        text::width(s, self.em, self.bold)
    }
}

/// Marker shapes for line series (distinguishable without colour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

/// How a shape is drawn: colour, filled or outlined, outline width.
#[derive(Clone, Copy, Debug)]
struct Paint {
    color: Rgba,
    fill: bool,
    width: f64,
}

impl Paint {
    /// plotters' style at scale `s`.
    fn style(self, s: f64) -> ShapeStyle {
        ShapeStyle {
            color: self.color.plotters(),
            filled: self.fill,
            stroke_width: (self.width * s).round().max(1.0) as u32,
        }
    }
}

#[derive(Clone, Debug)]
enum Prim {
    /// Corners (x0, y0, x1, y1).
    Rect([f64; 4], Paint),
    Path(Vec<(f64, f64)>, Paint),
    /// Centre and radius.
    Circle([f64; 3], Paint),
    Polygon(Vec<(f64, f64)>, Paint),
    Text {
        text: String,
        x: f64,
        y: f64,
        font: Font,
    },
}

/// A hover tooltip (SVG only): an invisible rectangle with a `<title>`.
#[derive(Clone, Debug)]
struct Tip {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    text: String,
}

/// Recorded drawing of one chart.
#[derive(Clone, Debug)]
pub(crate) struct Canvas {
    w: u32,
    h: u32,
    title: String,
    prims: Vec<Prim>,
    tips: Vec<Tip>,
}

fn finite(v: f64) -> bool {
    v.is_finite()
}

impl Canvas {
    /// A white canvas of `w` x `h` pixels (clamped to 64..=[`MAX_DIM`]).
    /// `title` becomes the SVG's accessible `<title>`.
    pub(crate) fn new(w: f64, h: f64, title: &str) -> Canvas {
        let clamp = |v: f64| {
            if v.is_finite() {
                v.clamp(64.0, MAX_DIM).ceil() as u32
            } else {
                64
            }
        };
        Canvas {
            w: clamp(w),
            h: clamp(h),
            title: text::clean(title),
            prims: Vec::new(),
            tips: Vec::new(),
        }
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        (self.w, self.h)
    }

    /// Filled rectangle.
    pub(crate) fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, color: Rgba) {
        self.rect_with(
            [x0, y0, x1, y1],
            Paint {
                color,
                fill: true,
                width: 1.0,
            },
        );
    }

    /// Rectangle outline.
    pub(crate) fn frame(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, color: Rgba, width: f64) {
        let fill = false;
        self.rect_with([x0, y0, x1, y1], Paint { color, fill, width });
    }

    fn rect_with(&mut self, corners: [f64; 4], paint: Paint) {
        if corners.iter().all(|v| finite(*v)) {
            self.prims.push(Prim::Rect(corners, paint));
        }
    }

    /// Poly-line; non-finite points are dropped.
    pub(crate) fn line(&mut self, pts: Vec<(f64, f64)>, color: Rgba, width: f64) {
        let pts: Vec<_> = pts
            .into_iter()
            .filter(|(x, y)| finite(*x) && finite(*y))
            .collect();
        if pts.len() >= 2 {
            let fill = false;
            self.prims
                .push(Prim::Path(pts, Paint { color, fill, width }));
        }
    }

    /// Dashed straight line from `a` to `b`.
    pub(crate) fn dashed(
        &mut self,
        a: (f64, f64),
        b: (f64, f64),
        color: Rgba,
        width: f64,
        dash: f64,
        gap: f64,
    ) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if !finite(len) || len <= 0.0 || dash <= 0.0 {
            return;
        }
        let (ux, uy) = (dx / len, dy / len);
        let mut t = 0.0;
        let mut n = 0;
        while t < len && n < 10_000 {
            let e = (t + dash).min(len);
            self.line(
                vec![(a.0 + ux * t, a.1 + uy * t), (a.0 + ux * e, a.1 + uy * e)],
                color,
                width,
            );
            t = e + gap.max(0.5);
            n += 1;
        }
    }

    /// Circle, filled or outlined.
    pub(crate) fn circle(&mut self, cx: f64, cy: f64, r: f64, color: Rgba, fill: bool, width: f64) {
        if [cx, cy, r].iter().all(|v| finite(*v)) && r > 0.0 {
            let paint = Paint { color, fill, width };
            self.prims.push(Prim::Circle([cx, cy, r], paint));
        }
    }

    /// Filled polygon.
    pub(crate) fn polygon(&mut self, pts: Vec<(f64, f64)>, color: Rgba) {
        if pts.len() >= 3 && pts.iter().all(|(x, y)| finite(*x) && finite(*y)) {
            let (fill, width) = (true, 1.0);
            self.prims
                .push(Prim::Polygon(pts, Paint { color, fill, width }));
        }
    }

    /// A series marker of radius `r`: filled with `fill`, white outline.
    pub(crate) fn marker(&mut self, shape: Marker, cx: f64, cy: f64, r: f64, fill: Rgba) {
        let white = Rgba::hex(0xffffff);
        match shape {
            Marker::Circle => {
                self.circle(cx, cy, r + 1.0, white, true, 1.0);
                self.circle(cx, cy, r, fill, true, 1.0);
            }
            Marker::Square => {
                let q = r * 0.9;
                self.rect(
                    cx - q - 1.0,
                    cy - q - 1.0,
                    cx + q + 1.0,
                    cy + q + 1.0,
                    white,
                );
                self.rect(cx - q, cy - q, cx + q, cy + q, fill);
            }
            Marker::Triangle => {
                let tri = |k: f64| {
                    vec![
                        (cx, cy - k * 1.2),
                        (cx + k * 1.1, cy + k * 0.8),
                        (cx - k * 1.1, cy + k * 0.8),
                    ]
                };
                self.polygon(tri(r + 1.5), white);
                self.polygon(tri(r), fill);
            }
            Marker::Diamond => {
                let dia = |k: f64| {
                    vec![
                        (cx, cy - k * 1.25),
                        (cx + k * 1.25, cy),
                        (cx, cy + k * 1.25),
                        (cx - k * 1.25, cy),
                    ]
                };
                self.polygon(dia(r + 1.4), white);
                self.polygon(dia(r), fill);
            }
        }
    }

    /// Text at (x, y) with the anchor and alignment of `font`; returns the
    /// measured width. The text is cleaned (control characters removed).
    pub(crate) fn text(&mut self, s: &str, x: f64, y: f64, font: Font) -> f64 {
        if !finite(x) || !finite(y) || !finite(font.em) || font.em <= 0.0 {
            return 0.0;
        }
        if s.trim().is_empty() {
            return 0.0;
        }
        let s = text::clean(s);
        let w = font.width(&s);
        // Store the baseline position; for vertical text the baseline is a
        // vertical line at x + offset.
        let off = text::baseline_offset(font.v, font.em);
        let (bx, by) = if font.vertical {
            (x + off, y)
        } else {
            (x, y + off)
        };
        self.prims.push(Prim::Text {
            text: s,
            x: bx,
            y: by,
            font,
        });
        w
    }

    /// Hover tooltip over the given box (SVG only).
    pub(crate) fn tip(&mut self, x: f64, y: f64, w: f64, h: f64, text: String) {
        if [x, y, w, h].iter().all(|v| finite(*v)) && w > 0.0 && h > 0.0 {
            self.tips.push(Tip {
                x,
                y,
                w,
                h,
                text: text::clean_multiline(&text),
            });
        }
    }

    fn replay<DB: DrawingBackend>(
        &self,
        db: &mut DB,
        s: f64,
        svg: bool,
    ) -> std::result::Result<(), String> {
        let p = |x: f64, y: f64| ((x * s).round() as i32, (y * s).round() as i32);
        if svg {
            // White background (the bitmap buffer starts out white).
            let (w, h) = (self.w as f64, self.h as f64);
            db.draw_rect(
                p(0.0, 0.0),
                p(w, h),
                &ShapeStyle::from(RGBAColor(255, 255, 255, 1.0)).filled(),
                true,
            )
            .map_err(e2s)?;
        }
        for prim in &self.prims {
            match prim {
                Prim::Rect([x0, y0, x1, y1], paint) => {
                    let (a, b) = (p(x0.min(*x1), y0.min(*y1)), p(x0.max(*x1), y0.max(*y1)));
                    // plotters' bitmap rect is inclusive of the far edge.
                    let b = match paint.fill && !svg {
                        true => (b.0 - 1, b.1 - 1),
                        false => b,
                    };
                    if !paint.fill || (b.0 >= a.0 && b.1 >= a.1) {
                        db.draw_rect(a, b, &paint.style(s), paint.fill)
                            .map_err(e2s)?;
                    }
                }
                Prim::Path(pts, paint) => {
                    let pts: Vec<_> = pts.iter().map(|(x, y)| p(*x, *y)).collect();
                    db.draw_path(pts, &paint.style(s)).map_err(e2s)?;
                }
                Prim::Circle([cx, cy, r], paint) => {
                    let r = (r * s).round().max(1.0) as u32;
                    db.draw_circle(p(*cx, *cy), r, &paint.style(s), paint.fill)
                        .map_err(e2s)?;
                }
                Prim::Polygon(pts, paint) => {
                    let pts: Vec<_> = pts.iter().map(|(x, y)| p(*x, *y)).collect();
                    db.fill_polygon(pts, &paint.style(s)).map_err(e2s)?;
                }
                Prim::Text { text, x, y, font } if svg => svg_text(db, text, *x, *y, font)?,
                Prim::Text { text, x, y, font } => png_text(db, text, *x, *y, font, s)?,
            }
        }
        db.present().map_err(e2s)?;
        Ok(())
    }

    /// The chart as an SVG document (with tooltips and an accessible title).
    pub(crate) fn to_svg(&self) -> Result<String> {
        text::ensure_fonts()?;
        let mut out = String::new();
        {
            let mut db = SVGBackend::with_string(&mut out, (self.w, self.h));
            self.replay(&mut db, 1.0, true)
                .map_err(|message| ReportError::Render {
                    format: "SVG",
                    message,
                })?;
        }
        // Accessible title right after the opening <svg ...> tag.
        if let Some(open_end) = out.find('>') {
            let title = format!("\n<title>{}</title>", xml_escape(&self.title));
            out.insert_str(open_end + 1, &title);
        }
        if !self.tips.is_empty() {
            let mut g = String::from("<g fill=\"#000\" fill-opacity=\"0\" stroke=\"none\">\n");
            for t in &self.tips {
                g.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>\n",
                    t.x,
                    t.y,
                    t.w,
                    t.h,
                    xml_escape(&t.text)
                ));
            }
            g.push_str("</g>\n");
            match out.rfind("</svg>") {
                Some(i) => out.insert_str(i, &g),
                None => {
                    return Err(ReportError::Render {
                        format: "SVG",
                        message: "backend produced no </svg>".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// The chart as PNG bytes (RGB, 8 bit).
    pub(crate) fn to_png(&self) -> Result<Vec<u8>> {
        text::ensure_fonts()?;
        let (w, h) = (self.w as usize, self.h as usize);
        let s: usize = if (w * h) as f64 <= SUPERSAMPLE_MAX_PIXELS {
            2
        } else {
            1
        };
        let (sw, sh) = (w * s, h * s);
        let mut buf = vec![255u8; sw * sh * 3];
        {
            let mut db = BitMapBackend::with_buffer(&mut buf, (sw as u32, sh as u32));
            self.replay(&mut db, s as f64, false)
                .map_err(|message| ReportError::Render {
                    format: "PNG",
                    message,
                })?;
        }
        let pixels = if s == 2 { downsample2(&buf, w, h) } else { buf };
        encode_png(&pixels, self.w, self.h)
    }
}

/// Text for the SVG backend: plotters writes `font-size = size / 1.24` and
/// a `dy` of 0.76 em for top-anchored text.
fn svg_text<DB: DrawingBackend>(
    db: &mut DB,
    text: &str,
    x: f64,
    y: f64,
    font: &Font,
) -> std::result::Result<(), String> {
    let style_kind = if font.bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    let mut desc = FontDesc::new(FontFamily::Name(text::FAMILY), font.em * 1.24, style_kind);
    if font.vertical {
        desc = desc.transform(FontTransform::Rotate270);
    }
    let hpos = match font.h {
        HAlign::Left => HPos::Left,
        HAlign::Center => HPos::Center,
        HAlign::Right => HPos::Right,
    };
    let color = font.color.plotters();
    let style = desc.color(&color).pos(Pos::new(hpos, VPos::Top));
    let top = 0.76 * font.em;
    let pos = if font.vertical {
        (x - top, y)
    } else {
        (x, y - top)
    };
    db.draw_text(text, &style, (pos.0.round() as i32, pos.1.round() as i32))
        .map_err(e2s)
}

/// Text for the bitmap backend, rasterised with ab_glyph at sub-pixel glyph
/// positions and blended in through the backend's `draw_pixel`. (plotters'
/// own bitmap text path rounds every glyph position down to a whole pixel,
/// which gives visibly uneven letter spacing at small sizes.)
fn png_text<DB: DrawingBackend>(
    db: &mut DB,
    s: &str,
    x: f64,
    y: f64,
    font: &Font,
    scale: f64,
) -> std::result::Result<(), String> {
    use ab_glyph::{point, Font as _, ScaleFont as _};
    use plotters::style::Color as _;
    let Some(f) = text::font_ref(font.bold) else {
        return Ok(());
    };
    let px = (font.em * text::PX_SCALE_PER_EM * scale) as f32;
    let sf = f.as_scaled(px);
    let mut glyphs = Vec::new();
    let mut caret = 0f32;
    let mut prev = None;
    for c in s.chars().filter(|c| !text::is_invisible(*c)) {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        glyphs.push((id, caret));
        caret += sf.h_advance(id);
        prev = Some(id);
    }
    let start = match font.h {
        HAlign::Left => 0.0,
        HAlign::Center => -caret / 2.0,
        HAlign::Right => -caret,
    };
    let (ax, ay) = ((x * scale) as f32, (y * scale) as f32);
    let (r, g, b, a) = (
        font.color.0,
        font.color.1,
        font.color.2,
        font.color.3.clamp(0.0, 1.0),
    );
    let mut result = Ok(());
    for (id, cx) in glyphs {
        let origin = if font.vertical {
            point(start + cx, 0.0)
        } else {
            point(ax + start + cx, ay)
        };
        let Some(outline) = f.outline_glyph(id.with_scale_and_position(px, origin)) else {
            continue;
        };
        let bb = outline.px_bounds();
        outline.draw(|gx, gy, cov| {
            if result.is_err() || cov < 0.004 {
                return;
            }
            let (lx, ly) = (bb.min.x as i32 + gx as i32, bb.min.y as i32 + gy as i32);
            // Vertical text reads bottom-to-top: local x runs up, local y right.
            let pos = if font.vertical {
                (ax.round() as i32 + ly, ay.round() as i32 - lx - 1)
            } else {
                (lx, ly)
            };
            let color = RGBAColor(r, g, b, a * f64::from(cov.min(1.0))).to_backend_color();
            result = db.draw_pixel(pos, color).map_err(e2s);
        });
        result.clone()?;
    }
    Ok(())
}

/// Box-filter a 2w x 2h RGB image down to w x h.
fn downsample2(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let sw = w * 2;
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let i =
                    |dx: usize, dy: usize| u32::from(src[((y * 2 + dy) * sw + x * 2 + dx) * 3 + c]);
                out[(y * w + x) * 3 + c] = ((i(0, 0) + i(1, 0) + i(0, 1) + i(1, 1) + 2) / 4) as u8;
            }
        }
    }
    out
}

fn encode_png(pixels: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fail = |e: png::EncodingError| ReportError::Render {
        format: "PNG",
        message: e.to_string(),
    };
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    let mut wr = enc.write_header().map_err(fail)?;
    wr.write_image_data(pixels).map_err(fail)?;
    wr.finish().map_err(fail)?;
    Ok(out)
}

/// Escapes text for XML/HTML element content and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// plotters does not re-export its backend error type; format it generically.
fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
