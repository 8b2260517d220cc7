//! A chart's two renderings and its files on disk.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::report::canvas::Canvas;
use crate::report::error::Result;
use crate::report::html::Figure;
use crate::report::html::FigureSource;
use crate::report::io;

/// A chart rendered in memory.
#[derive(Clone, Debug)]
pub struct Rendered<D> {
    /// The SVG document.
    pub svg: String,
    /// The PNG file contents.
    pub png: Vec<u8>,
    /// Width and height in pixels (same for SVG and PNG).
    pub size: (u32, u32),
    /// The data the chart was drawn from.
    pub data: D,
}

/// Files written for one chart, plus the data it was drawn from.
#[derive(Clone, Debug)]
pub struct ChartFiles<D> {
    /// `stem.svg`.
    pub svg: PathBuf,
    /// `stem.png`.
    pub png: PathBuf,
    /// `stem.json`: the plotted data, serialised from `data`.
    pub json: PathBuf,
    /// The data the chart was drawn from.
    pub data: D,
}

impl<D> ChartFiles<D> {
    /// A report figure that inlines this chart's SVG.
    pub fn figure(&self, caption: impl Into<String>) -> Figure {
        Figure {
            caption: caption.into(),
            source: FigureSource::SvgFile(self.svg.clone()),
        }
    }
}

impl<D> Rendered<D> {
    pub(crate) fn from_canvas(canvas: &Canvas, data: D) -> Result<Self> {
        Ok(Rendered {
            svg: canvas.to_svg()?,
            png: canvas.to_png()?,
            size: canvas.size(),
            data,
        })
    }
}

/// Writes `stem.json`, `stem.svg` and `stem.png` (each atomically).
pub(crate) fn write_chart<D: Serialize>(stem: &Path, r: Rendered<D>) -> Result<ChartFiles<D>> {
    let (svg, png, json) = (
        io::with_ext(stem, "svg"),
        io::with_ext(stem, "png"),
        io::with_ext(stem, "json"),
    );
    let mut js = serde_json::to_vec(&r.data)?;
    js.push(b'\n');
    io::write_atomic(&json, &js)?;
    io::write_atomic(&svg, r.svg.as_bytes())?;
    io::write_atomic(&png, &r.png)?;
    Ok(ChartFiles {
        svg,
        png,
        json,
        data: r.data,
    })
}
