//! Reading a number from slot text: `40`, `40%`, `40 percent`, `12.5`, `forty five`.

use thiserror::Error;

/// A number read from slot text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The number.
    pub value: f64,
    /// Whether it was written as a percentage (`%`, `percent`, `per cent`, `pct`).
    pub percent: bool,
}

/// Slot text that is not a number this parser understands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("\"{0}\" is not a number (expected e.g. 40, 40%, 40 percent or forty)")]
pub struct NotANumber(pub String);

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Parses digits (optionally with a decimal point and sign) or English number words up to
/// 999, each optionally followed by a percent marker.
pub fn parse_quantity(text: &str) -> Result<Quantity, NotANumber> {
    let err = || NotANumber(text.trim().to_owned());
    let lower = text.trim().to_lowercase();
    let (body, percent) = strip_percent(&lower);
    let body = body.trim();
    if body.is_empty() {
        return Err(err());
    }
    let numeric = body
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
    let value = if numeric {
        body.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(err)?
    } else {
        words_value(body).ok_or_else(err)?
    };
    Ok(Quantity { value, percent })
}

fn strip_percent(text: &str) -> (&str, bool) {
    for suffix in ["%", "per cent", "percent", "pct"] {
        if let Some(body) = text.strip_suffix(suffix) {
            return (body, true);
        }
    }
    (text, false)
}

fn words_value(text: &str) -> Option<f64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty() && *w != "and")
        .collect();
    if words.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for (i, word) in words.iter().enumerate() {
        if let Some(n) = UNITS.iter().position(|u| u == word) {
            value += n as u32;
        } else if let Some(n) = TENS.iter().position(|t| t == word) {
            value += (n as u32 + 2) * 10;
        } else if *word == "hundred" {
            value = value.max(1) * 100;
        } else if *word == "a" && words.get(i + 1) == Some(&"hundred") {
            value += 1;
        } else {
            return None;
        }
    }
    Some(f64::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: f64, percent: bool) -> Result<Quantity, NotANumber> {
        Ok(Quantity { value, percent })
    }

    #[test]
    fn digits_with_and_without_percent() {
        assert_eq!(parse_quantity("40"), q(40.0, false));
        assert_eq!(parse_quantity(" 40% "), q(40.0, true));
        assert_eq!(parse_quantity("40 %"), q(40.0, true));
        assert_eq!(parse_quantity("12.5 percent"), q(12.5, true));
        assert_eq!(parse_quantity("75 Per Cent"), q(75.0, true));
        assert_eq!(parse_quantity("-5"), q(-5.0, false));
    }

    #[test]
    fn number_words() {
        assert_eq!(parse_quantity("forty"), q(40.0, false));
        assert_eq!(parse_quantity("Forty-Five percent"), q(45.0, true));
        assert_eq!(parse_quantity("a hundred"), q(100.0, false));
        assert_eq!(
            parse_quantity("two hundred and fifty five"),
            q(255.0, false)
        );
        assert_eq!(parse_quantity("zero"), q(0.0, false));
    }

    #[test]
    fn rejects_non_numbers() {
        for text in [
            "",
            "%",
            "bright",
            "inf",
            "nan",
            "1.2.3",
            "forty bright",
            "a",
        ] {
            assert_eq!(
                parse_quantity(text),
                Err(NotANumber(text.trim().to_owned())),
                "{text:?}"
            );
        }
    }
}
