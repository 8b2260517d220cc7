//! Colours and font sizes shared by all charts.

use crate::report::canvas::{Marker, Rgba};

pub(crate) const INK: Rgba = Rgba::hex(0x1f2328);
pub(crate) const TEXT: Rgba = Rgba::hex(0x333333);
pub(crate) const MUTED: Rgba = Rgba::hex(0x606060);
pub(crate) const FAINT: Rgba = Rgba::hex(0x8a8a8a);
pub(crate) const GRID: Rgba = Rgba::hex(0xe6e6e6);
pub(crate) const AXIS: Rgba = Rgba::hex(0x9a9a9a);
pub(crate) const WHITE: Rgba = Rgba::hex(0xffffff);
pub(crate) const BAD: Rgba = Rgba::hex(0xc62828);
pub(crate) const BAR: Rgba = Rgba::hex(0x3b75af);
pub(crate) const BAR_LIGHT: Rgba = Rgba::hex(0xa9c4e0);

/// Okabe-Ito based palette: distinguishable with common colour-vision
/// deficiencies (series also differ by marker shape).
pub(crate) const PALETTE: [Rgba; 10] = [
    Rgba::hex(0x0072b2),
    Rgba::hex(0xd55e00),
    Rgba::hex(0x009e73),
    Rgba::hex(0xcc79a7),
    Rgba::hex(0xe69f00),
    Rgba::hex(0x56b4e9),
    Rgba::hex(0x882255),
    Rgba::hex(0x117733),
    Rgba::hex(0x332288),
    Rgba::hex(0x999933),
];

pub(crate) const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
];

pub(crate) const TITLE_EM: f64 = 17.0;
pub(crate) const SUB_EM: f64 = 12.5;
pub(crate) const LABEL_EM: f64 = 12.5;
pub(crate) const TICK_EM: f64 = 11.5;
