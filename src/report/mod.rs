//! Training-report pictures: training curves, confusion matrices, per-label
//! F1 bars and per-layer quantization fidelity, each written as SVG + PNG
//! (+ a JSON sidecar with the plotted data), and a self-contained
//! `report.html` tying them together.
//!
//! In the data flow it comes right after [`crate::metrics`]: [`write_eval_plots`] draws an
//! [`crate::metrics::EvalReport`]; the charts themselves take plain data, which training (curves)
//! and quantization (per-layer fidelity) fill in.
//!
//! Every chart has a `render_*` function (in memory) and a `write_*`
//! function that takes an output *stem* and writes `stem.svg`, `stem.png`
//! and `stem.json` atomically (temporary file in the same folder, fsync,
//! rename). Both return the data the chart was drawn from, so callers can
//! assert on it (e.g. that confusion-matrix counts sum to the test-set size).
//!
//! Drawing uses `plotters` with no system libraries: text in PNGs comes
//! from an embedded DejaVu Sans subset (Latin + Latin-1 + punctuation, see
//! `fonts/LICENSE-DejaVu.txt`); characters it lacks are drawn as a
//! "missing glyph" box in PNGs and as real text in SVGs. Input data never
//! causes a panic: empty lists, NaN, zero counts and odd label names are
//! drawn as such.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use edgetune::report::{write_training_curves, EpochPoint, TrainingCurves};
//!
//! let points = (1..=5)
//!     .map(|e| EpochPoint {
//!         epoch: e,
//!         loss: 1.0 / e as f64,
//!         scores: BTreeMap::from([("intent accuracy".to_string(), 0.8 + 0.02 * e as f64)]),
//!         selection_score: None,
//!     })
//!     .collect();
//! let curves = TrainingCurves { points, best_epoch: Some(5), ..TrainingCurves::default() };
//! let files = write_training_curves(Path::new("run/curves"), &curves)?;
//! assert_eq!(files.data.epochs.len(), 5);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod canvas;
mod chart;
mod confusion;
mod curves;
mod error;
mod evaluation;
mod fidelity;
mod html;
mod io;
mod labels;
mod layout;
mod pareto;
mod scale;
mod text;
mod theme;

#[cfg(test)]
mod tests;

pub use crate::report::chart::{ChartFiles, Rendered};
pub use crate::report::confusion::{
    render_confusion_matrix, write_confusion_matrix, ConfusionData, ConfusionMatrix,
};
pub use crate::report::curves::{
    render_training_curves, write_training_curves, CurvesData, EpochPoint, SeriesData,
    TrainingCurves, SELECTION,
};
pub use crate::report::error::{ReportError, Result};
pub use crate::report::evaluation::{confusion_of, label_f1_of, write_eval_plots, EvalPlots};
pub use crate::report::fidelity::{
    render_layer_fidelity, write_layer_fidelity, FidelityChart, FidelityData, LayerFidelity,
    LayerFidelityRow,
};
pub use crate::report::html::{
    render_html_report, write_html_report, Figure, FigureSource, HtmlReport, MetricFormat,
    MetricRow,
};
pub use crate::report::labels::{
    render_label_f1, write_label_f1, LabelF1Chart, LabelF1Data, LabelF1Row, LabelScore,
};
pub use crate::report::pareto::{
    on_front, render_pareto, write_pareto, ParetoChart, ParetoData, ParetoPoint, ParetoRow,
};
