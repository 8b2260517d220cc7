//! Deciding whether a rule applies to an answer, and computing a PWM duty from it.

use super::config::{DutySource, LabelCondition, PwmUnit, Rule, SpanCondition};
use super::number::parse_quantity;
use crate::data::TAGS;
use crate::predict::Prediction;

impl Rule {
    /// True when every condition of the rule holds for `answer`:
    /// each label condition's task answered one of its labels with probability
    /// `>= min_prob` (when set), and each span condition's task found a span of its type
    /// whose text (trimmed, case-insensitive) is one of its values.
    pub fn matches(&self, answer: &Prediction) -> bool {
        self.labels
            .iter()
            .all(|c| label_holds(c, self.min_prob, answer))
            && self.spans.iter().all(|c| span_holds(c, answer))
    }
}

fn label_holds(cond: &LabelCondition, min_prob: Option<f32>, answer: &Prediction) -> bool {
    let Some((label, prob)) = answer.label(&cond.task) else {
        return false;
    };
    // A NaN probability fails `>=`, so a broken answer never fires a thresholded rule.
    cond.labels.iter().any(|l| l == label) && min_prob.is_none_or(|min| prob >= min)
}

fn span_holds(cond: &SpanCondition, answer: &Prediction) -> bool {
    answer.spans_of(&cond.task, &cond.kind).any(|span| {
        let text = span.text.trim().to_lowercase();
        cond.values.contains(&text)
    })
}

/// A duty cycle computed for one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Duty {
    /// Duty as a fraction of the period, 0..=1.
    pub fraction: f64,
    /// The slot text it came from (`None` for a fixed duty).
    pub input: Option<String>,
    /// Whether the number was outside `min..=max` and was clamped.
    pub clamped: bool,
}

impl DutySource {
    /// The duty for `answer`, or why there is none (no slot, not a number).
    ///
    /// Unit `percent`: the number (with or without `%`) is clamped to `min..=max` and
    /// divided by 100. Unit `raw`: the number is clamped to `min..=max` and mapped linearly
    /// to 0..=1; a number written with `%` is taken as that percentage of the range.
    pub fn duty_for(&self, answer: &Prediction) -> Result<Duty, String> {
        let (kind, unit, min, max) = match self {
            DutySource::Fixed(fraction) => {
                return Ok(Duty {
                    fraction: if fraction.is_nan() {
                        0.0
                    } else {
                        fraction.clamp(0.0, 1.0)
                    },
                    input: None,
                    clamped: false,
                })
            }
            DutySource::Slot {
                kind,
                unit,
                min,
                max,
            } => (kind, *unit, *min, *max),
        };
        // Checked at load; repeated here because the fields are public and `clamp` panics
        // on an inverted or NaN range.
        if !min.is_finite() || !max.is_finite() || min >= max {
            return Err(format!("invalid input range {min}..{max}"));
        }
        let span = answer
            .spans_of(TAGS, kind)
            .next()
            .ok_or_else(|| format!("no \"{kind}\" slot in the answer"))?;
        let quantity = parse_quantity(&span.text).map_err(|e| format!("slot \"{kind}\": {e}"))?;
        let value = match (unit, quantity.percent) {
            (PwmUnit::Raw, true) => min + quantity.value / 100.0 * (max - min),
            _ => quantity.value,
        };
        let clamped_value = value.clamp(min, max);
        let fraction = match unit {
            PwmUnit::Percent => clamped_value / 100.0,
            PwmUnit::Raw => (clamped_value - min) / (max - min),
        };
        Ok(Duty {
            fraction: fraction.clamp(0.0, 1.0),
            input: Some(span.text.clone()),
            clamped: clamped_value != value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(unit: PwmUnit, min: f64, max: f64) -> DutySource {
        DutySource::Slot {
            kind: "value".into(),
            unit,
            min,
            max,
        }
    }

    fn duty(source: &DutySource, text: &str) -> Result<(f64, bool), String> {
        let answer = Prediction::new("x").with_slot("value", text, 0.9);
        source.duty_for(&answer).map(|d| (d.fraction, d.clamped))
    }

    #[test]
    fn percent_unit_clamps_to_limits() {
        let s = slot(PwmUnit::Percent, 10.0, 90.0);
        assert_eq!(duty(&s, "40"), Ok((0.40, false)));
        assert_eq!(duty(&s, "40%"), Ok((0.40, false)));
        assert_eq!(duty(&s, "5"), Ok((0.10, true)));
        assert_eq!(duty(&s, "150%"), Ok((0.90, true)));
    }

    #[test]
    fn raw_unit_maps_the_range() {
        let s = slot(PwmUnit::Raw, 0.0, 10.0);
        assert_eq!(duty(&s, "7"), Ok((0.7, false)));
        assert_eq!(duty(&s, "50%"), Ok((0.5, false)));
        assert_eq!(duty(&s, "12"), Ok((1.0, true)));
        assert_eq!(duty(&s, "-3"), Ok((0.0, true)));
    }

    #[test]
    fn missing_or_bad_slot_is_explained() {
        let s = slot(PwmUnit::Percent, 0.0, 100.0);
        let err = s.duty_for(&Prediction::new("x")).unwrap_err();
        assert_eq!(err, "no \"value\" slot in the answer");
        let err = duty(&s, "bright").unwrap_err();
        assert!(err.contains("\"bright\" is not a number"), "{err}");
    }

    #[test]
    fn hand_built_bad_ranges_do_not_panic() {
        assert_eq!(
            duty(&slot(PwmUnit::Raw, 10.0, 10.0), "5"),
            Err("invalid input range 10..10".into())
        );
        assert_eq!(
            duty(&slot(PwmUnit::Raw, f64::NAN, 1.0), "5"),
            Err("invalid input range NaN..1".into())
        );
        let fixed = |f: f64| {
            DutySource::Fixed(f)
                .duty_for(&Prediction::new("x"))
                .map(|d| d.fraction)
        };
        assert_eq!(fixed(2.0), Ok(1.0));
        assert_eq!(fixed(f64::NAN), Ok(0.0));
    }
}
