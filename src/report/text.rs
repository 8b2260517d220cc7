//! Embedded font, text measuring, label clean-up and number formatting.
//!
//! The PNG renderer only knows the glyphs of the embedded DejaVu Sans subset
//! (Latin, Latin-1, common punctuation). Other characters (CJK, emoji, ...)
//! are drawn as the font's "missing glyph" box in PNGs; SVGs keep the real
//! text and let the viewer's fonts draw it. Widths are measured
//! conservatively so that such text does not overflow its slot in either
//! format.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use crate::report::error::{ReportError, Result};

/// Font family written into SVG `font-family` attributes (DejaVu Sans first,
/// so that viewers that have it match the PNG's metrics exactly).
pub(crate) const FAMILY: &str = "DejaVu Sans, Verdana, sans-serif";

static REGULAR_TTF: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");
static BOLD_TTF: &[u8] = include_bytes!("fonts/DejaVuSans-Bold-subset.ttf");

/// Ratio of DejaVu Sans' line height (ascent - descent) to its em size; the
/// ab_glyph "pixel scale" of a font is this line height.
pub(crate) const PX_SCALE_PER_EM: f64 = (1901.0 + 483.0) / 2048.0;
/// Cap height of DejaVu Sans in em.
const CAP_HEIGHT: f64 = 0.729;
/// Ascender height (top of 'd', 'l') in em.
const ASCENT: f64 = 0.76;
/// Descender depth in em.
const DESCENT: f64 = 0.236;

struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

static FONTS: OnceLock<std::result::Result<Fonts, String>> = OnceLock::new();

fn load() -> std::result::Result<Fonts, String> {
    let regular =
        FontRef::try_from_slice(REGULAR_TTF).map_err(|e| format!("embedded regular font: {e}"))?;
    let bold = FontRef::try_from_slice(BOLD_TTF).map_err(|e| format!("embedded bold font: {e}"))?;
    Ok(Fonts { regular, bold })
}

/// Loads the embedded fonts (once).
pub(crate) fn ensure_fonts() -> Result<()> {
    match FONTS.get_or_init(load) {
        Ok(_) => Ok(()),
        Err(e) => Err(ReportError::Font(e.clone())),
    }
}

fn fonts() -> Option<&'static Fonts> {
    FONTS.get_or_init(load).as_ref().ok()
}

/// The embedded font (regular or bold), if it loaded.
pub(crate) fn font_ref(bold: bool) -> Option<&'static FontRef<'static>> {
    fonts().map(|f| if bold { &f.bold } else { &f.regular })
}

/// True for characters that render as nothing (joiners, variation
/// selectors, combining marks the subset lacks): they are dropped from PNG
/// text instead of showing a "missing glyph" box.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFE00..=0xFE0F
        | 0xFEFF | 0xE0000..=0xE007F | 0x0300..=0x036F | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F | 0x1F3FB..=0x1F3FF)
}

/// True for characters that take a full em in most fonts (CJK, Hangul,
/// Kana, full-width forms, emoji).
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF | 0x1F680..=0x1F6FF | 0x1FA70..=0x1FAFF
        | 0x20000..=0x2FFFD | 0x30000..=0x3FFFD | 0x2600..=0x27BF)
}

/// Replaces characters that are not allowed in XML or that would break a
/// one-line label (control characters, newlines, U+FFFE/U+FFFF) and trims
/// the result. Empty labels become `(empty)`.
pub(crate) fn clean(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect();
    let t = out.trim();
    if t.is_empty() {
        "(empty)".to_string()
    } else {
        t.to_string()
    }
}

/// Like [`clean`] but keeps line breaks (for tooltips).
pub(crate) fn clean_multiline(s: &str) -> String {
    s.lines().map(clean).collect::<Vec<_>>().join("\n")
}

/// Estimated width of `text` in pixels at font size `em` (CSS px).
///
/// Uses the embedded font's advances; characters the font lacks count as a
/// full em when they are "wide" (CJK, emoji) and 0.62 em otherwise, which is
/// at least what both the PNG ("missing glyph" box) and typical SVG viewer
/// fonts need.
pub(crate) fn width(text: &str, em: f64, bold: bool) -> f64 {
    let Some(f) = fonts() else {
        return text.chars().count() as f64 * em * 0.62;
    };
    let font = if bold { &f.bold } else { &f.regular };
    let scaled = font.as_scaled(PxScale::from((em * PX_SCALE_PER_EM) as f32));
    let mut w = 0.0f64;
    let mut prev = None;
    for c in text.chars() {
        if is_invisible(c) {
            continue;
        }
        let id = font.glyph_id(c);
        if id.0 == 0 {
            w += if is_wide(c) { em } else { 0.62 * em };
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            w += f64::from(scaled.kern(p, id));
        }
        w += f64::from(scaled.h_advance(id));
        prev = Some(id);
    }
    w
}

/// Shortens `text` with a trailing ellipsis so that it fits `max_w` pixels.
pub(crate) fn fit(text: &str, max_w: f64, em: f64, bold: bool) -> String {
    shorten(text, max_w, em, bold, &|chars, keep| {
        let prefix: String = chars[..keep].iter().collect();
        format!("{}…", prefix.trim_end())
    })
}

/// Shortens `text` with an ellipsis in the middle (keeps both ends, which
/// suits dotted tensor names like `encoder.layer.11.attention.query.weight`).
pub(crate) fn fit_middle(text: &str, max_w: f64, em: f64, bold: bool) -> String {
    shorten(text, max_w, em, bold, &|chars, keep| {
        let h: String = chars[..keep.div_ceil(2)].iter().collect();
        let t: String = chars[chars.len() - keep / 2..].iter().collect();
        format!("{h}…{t}")
    })
}

/// `text` as is when it fits `max_w`, else `build(chars, n)` for the largest number `n` of kept
/// characters whose result fits.
fn shorten(
    text: &str,
    max_w: f64,
    em: f64,
    bold: bool,
    build: &dyn Fn(&[char], usize) -> String,
) -> String {
    if width(text, em, bold) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if width(&build(&chars, mid), em, bold) <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    build(&chars, lo)
}

/// Vertical alignment of a text line relative to a y coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VAlign {
    /// Top of ascenders at y.
    Top,
    /// Middle of the capital letters at y.
    Middle,
    /// Bottom of descenders at y.
    Bottom,
}

/// Offset from the requested y to the baseline, for font size `em`.
pub(crate) fn baseline_offset(v: VAlign, em: f64) -> f64 {
    match v {
        VAlign::Top => ASCENT * em,
        VAlign::Middle => CAP_HEIGHT * em / 2.0,
        VAlign::Bottom => -DESCENT * em,
    }
}

/// `12345` -> `12,345`.
pub(crate) fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage with one decimal (`0.9341` -> `93.4`), or
/// `n/a` when it is not finite.
pub(crate) fn pct(f: f64) -> String {
    if f.is_finite() {
        format!("{:.1}", f * 100.0)
    } else {
        "n/a".to_string()
    }
}

/// A number with about four significant digits, switching to scientific
/// notation for very small or large magnitudes.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "∞".into()
        } else {
            "−∞".into()
        };
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fonts_load() {
        ensure_fonts().unwrap();
        assert!(width("Hello", 12.0, false) > 20.0);
        assert!(width("Hello", 12.0, true) > width("Hello", 12.0, false));
    }

    #[test]
    fn wide_chars_measure_wide() {
        ensure_fonts().unwrap();
        let w = width("意図分類", 10.0, false);
        assert!(w >= 40.0, "{w}");
        assert_eq!(width("\u{200D}\u{FE0F}", 10.0, false), 0.0);
    }

    #[test]
    fn fit_truncates_with_ellipsis() {
        ensure_fonts().unwrap();
        let long = "restaurant_reservation_with_a_very_long_name_indeed";
        let f = fit(long, 80.0, 12.0, false);
        assert!(f.ends_with('…'), "{f}");
        assert!(width(&f, 12.0, false) <= 80.0);
        assert_eq!(fit("ok", 80.0, 12.0, false), "ok");
        // Nothing fits: just the ellipsis.
        assert_eq!(fit(long, 1.0, 12.0, false), "…");
        let m = fit_middle(
            "encoder.layer.11.attention.self.query.weight",
            150.0,
            12.0,
            false,
        );
        assert!(
            m.starts_with("enc") && m.ends_with("ght") && m.contains('…'),
            "{m}"
        );
        let e = fit("🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉", 40.0, 12.0, false);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn clean_removes_controls() {
        assert_eq!(clean("a\nb\u{0}c"), "a b c");
        assert_eq!(clean("  "), "(empty)");
        assert_eq!(clean("x\u{FFFF}"), "x\u{FFFD}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(pct(0.9341), "93.4");
        assert_eq!(pct(f64::NAN), "n/a");
        assert_eq!(num(0.98765), "0.9877");
        assert_eq!(num(0.00001234), "1.23e-5");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(12.0), "12");
    }
}
