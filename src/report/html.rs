//! `report.html`: one self-contained page (inline CSS, inlined SVGs) with
//! run facts, a metrics table and the figures.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::report::canvas::xml_escape;
use crate::report::error::{ReportError, Result};
use crate::report::io;
use crate::report::text;

/// How the values of a [`MetricRow`] are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricFormat {
    /// Fractions printed as percentages with two decimals (`0.9341` -> `93.41%`).
    #[default]
    Percent,
    /// Plain numbers with about four significant digits.
    Number,
}

/// One line of the metrics table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricRow {
    /// Task name, e.g. `intent`; consecutive rows of a task are grouped.
    pub task: String,
    /// Metric name, e.g. `accuracy` or `span F1`.
    pub metric: String,
    /// Value on the validation split.
    pub valid: Option<f64>,
    /// Value on the test split.
    pub test: Option<f64>,
    /// How to print the values.
    pub format: MetricFormat,
}

/// Where a figure's SVG comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum FigureSource {
    /// An SVG file (read and inlined; linked too, with its PNG, when it
    /// sits in the report's folder or a folder below it).
    SvgFile(PathBuf),
    /// SVG text, inlined as is (e.g. [`Rendered::svg`](crate::report::Rendered)).
    Svg(String),
}

/// A figure of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Caption shown above the figure.
    pub caption: String,
    /// The picture.
    pub source: FigureSource,
}

impl Figure {
    /// A figure read from an SVG file.
    pub fn svg_file(caption: impl Into<String>, path: impl Into<PathBuf>) -> Figure {
        Figure {
            caption: caption.into(),
            source: FigureSource::SvgFile(path.into()),
        }
    }
    /// A figure from SVG text.
    pub fn svg(caption: impl Into<String>, svg: impl Into<String>) -> Figure {
        Figure {
            caption: caption.into(),
            source: FigureSource::Svg(svg.into()),
        }
    }
}

/// Content of `report.html`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HtmlReport {
    /// Page title, e.g. the run name.
    pub title: String,
    /// Key/value facts (run name, backbone, settings), in order.
    pub facts: Vec<(String, String)>,
    /// Metrics table rows.
    pub metrics: Vec<MetricRow>,
    /// Figures, in order.
    pub figures: Vec<Figure>,
    /// Free-text notes shown as a list at the end.
    pub notes: Vec<String>,
}

/// Builds the HTML page in memory (reads the figures' SVG files).
pub fn render_html_report(report: &HtmlReport) -> Result<String> {
    build(report, None)
}

/// Writes the HTML page to `path` atomically and returns `path`.
pub fn write_html_report(path: &Path, report: &HtmlReport) -> Result<PathBuf> {
    let html = build(report, path.parent())?;
    io::write_atomic(path, html.as_bytes())?;
    Ok(path.to_path_buf())
}

fn fmt_value(v: Option<f64>, f: MetricFormat) -> String {
    match v {
        None => "–".into(),
        Some(v) if !v.is_finite() => text::num(v),
        Some(v) => match f {
            MetricFormat::Percent => format!("{:.2}%", v * 100.0),
            MetricFormat::Number => text::num(v),
        },
    }
}

/// The `<svg>…</svg>` part of an SVG document (drops XML prolog/doctype).
fn svg_element(svg: &str, origin: &str) -> Result<String> {
    let start = svg
        .find("<svg")
        .ok_or_else(|| ReportError::InvalidInput(format!("{origin} is not an SVG document")))?;
    let end = svg
        .rfind("</svg>")
        .map(|i| i + "</svg>".len())
        .unwrap_or(svg.len());
    if end <= start {
        return Err(ReportError::InvalidInput(format!(
            "{origin} is not an SVG document"
        )));
    }
    Ok(svg[start..end].to_string())
}

/// `file`'s path relative to `dir` when it lies in `dir` or a folder below it (for links).
fn relative_to(file: &Path, dir: Option<&Path>) -> Option<PathBuf> {
    let (fp, dir) = (file.parent()?, dir?);
    let norm = |p: &Path| {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
    };
    let rel = norm(fp).strip_prefix(norm(dir)).ok()?.to_path_buf();
    Some(rel.join(file.file_name()?))
}

const CSS: &str = "\
:root{color-scheme:light}\
body{margin:0;background:#f4f5f7;color:#1f2328;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\
main{max-width:1120px;margin:0 auto;padding:24px 20px 48px}\
h1{font-size:26px;margin:8px 0 18px;overflow-wrap:anywhere}\
h2{font-size:19px;margin:32px 0 12px}\
section,figure{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 18px;margin:0 0 18px}\
table{border-collapse:collapse;width:100%}\
th,td{padding:6px 10px;border-bottom:1px solid #e6e8eb;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
th{font-weight:600;color:#555;background:#fafbfc}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
td.task{font-weight:600}\
table.facts th{width:28%;background:none}\
figure{margin:0 0 18px;overflow-x:auto}\
figcaption{font-weight:600;margin-bottom:10px;overflow-wrap:anywhere}\
figcaption a{font-weight:400;font-size:13px;margin-left:10px;color:#0b62c4}\
figure svg{display:block;max-width:100%;height:auto}\
ul{margin:0;padding-left:20px}\
.muted{color:#666}";

fn build(r: &HtmlReport, base: Option<&Path>) -> Result<String> {
    let title = match r.title.trim() {
        "" => "Training report",
        _ => r.title.as_str(),
    };
    let t = xml_escape(title);
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{t}</h1>\n"
    );
    if !r.facts.is_empty() {
        h.push_str("<section>\n<table class=\"facts\">\n");
        for (k, v) in &r.facts {
            let (k, v) = (xml_escape(k), xml_escape(v));
            let _ = writeln!(h, "<tr><th scope=\"row\">{k}</th><td>{v}</td></tr>");
        }
        h.push_str("</table>\n</section>\n");
    }
    if !r.metrics.is_empty() {
        metrics_table(&mut h, &r.metrics);
    }
    if !r.figures.is_empty() {
        h.push_str("<h2>Figures</h2>\n");
        for f in &r.figures {
            figure(&mut h, f, base)?;
        }
    }
    if !r.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<section>\n<ul>\n");
        for n in &r.notes {
            let _ = writeln!(h, "<li>{}</li>", xml_escape(n));
        }
        h.push_str("</ul>\n</section>\n");
    }
    h.push_str("<p class=\"muted\">Hover chart cells and labels for full names and exact values.</p>\n</main>\n</body>\n</html>\n");
    Ok(h)
}

/// The metrics table: one row per metric, the task's name spanning its rows.
fn metrics_table(h: &mut String, metrics: &[MetricRow]) {
    h.push_str("<h2>Metrics</h2>\n<section>\n<table class=\"metrics\">\n<thead><tr><th>task</th><th>metric</th><th class=\"num\">valid</th><th class=\"num\">test</th></tr></thead>\n<tbody>\n");
    for group in metrics.chunk_by(|a, b| a.task == b.task) {
        for (k, m) in group.iter().enumerate() {
            h.push_str("<tr>");
            if k == 0 {
                let (span, task) = (group.len(), xml_escape(&m.task));
                let _ = write!(h, "<td class=\"task\" rowspan=\"{span}\">{task}</td>");
            }
            let _ = writeln!(
                h,
                "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                xml_escape(&m.metric),
                xml_escape(&fmt_value(m.valid, m.format)),
                xml_escape(&fmt_value(m.test, m.format))
            );
        }
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// One figure: its SVG inlined under the caption, with links to the SVG and PNG files when the
/// figure comes from a file below the page's folder.
fn figure(h: &mut String, f: &Figure, base: Option<&Path>) -> Result<()> {
    let (svg, links) = match &f.source {
        FigureSource::Svg(s) => (svg_element(s, "inline figure")?, String::new()),
        FigureSource::SvgFile(p) => {
            let s = fs::read_to_string(p).map_err(|err| ReportError::io("read", p, err))?;
            (
                svg_element(&s, &p.display().to_string())?,
                file_links(p, base),
            )
        }
    };
    let caption = xml_escape(&f.caption);
    let _ = write!(
        h,
        "<figure>\n<figcaption>{caption}{links}</figcaption>\n{svg}\n</figure>\n"
    );
    Ok(())
}

/// `<a>` links to the chart's SVG and (when it exists) PNG, relative to `base`.
fn file_links(svg: &Path, base: Option<&Path>) -> String {
    let Some(name) = relative_to(svg, base).and_then(|r| r.to_str().map(str::to_string)) else {
        return String::new();
    };
    let mut links = format!("<a href=\"{}\">SVG</a>", xml_escape(&percent_path(&name)));
    if let Some(stem) = name.strip_suffix(".svg") {
        if svg.with_extension("png").is_file() {
            let png = percent_path(&format!("{stem}.png"));
            let _ = write!(links, "<a href=\"{}\">PNG</a>", xml_escape(&png));
        }
    }
    links
}

/// Percent-encodes a relative path (`/`-separated) for use in a URL.
fn percent_path(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
