//! The file exactly as serde reads it, before any value checks.
//!
//! Integers are read as `i64` so that out-of-range values reach the validator and get a
//! message naming the rule and field, instead of a bare serde range error.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::{Level, PwmUnit};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub version: Option<i64>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Option<String>,
    pub intent: Option<OneOrMany>,
    #[serde(default)]
    pub when: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub slots: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub spans: BTreeMap<String, BTreeMap<String, OneOrMany>>,
    pub min_prob: Option<f64>,
    pub gpio: Option<RawGpio>,
    pub pwm: Option<RawPwm>,
    pub i2c: Option<RawI2c>,
}

/// `[rule.gpio]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGpio {
    pub chip: String,
    pub line: i64,
    pub value: Level,
    pub pulse_ms: Option<i64>,
    pub initial: Option<Level>,
}

/// `[rule.pwm]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPwm {
    pub chip: i64,
    pub channel: i64,
    pub period_ns: i64,
    pub slot: Option<String>,
    pub unit: Option<PwmUnit>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub duty_percent: Option<f64>,
}

/// `[rule.i2c]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawI2c {
    pub bus: String,
    pub address: i64,
    pub bytes: Vec<i64>,
}

/// A string or an array of strings (alternatives that all match).
#[derive(Debug, Clone)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    values.push(v);
                }
                Ok(OneOrMany(values))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}
