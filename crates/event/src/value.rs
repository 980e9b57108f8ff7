//! Lenient JSON values (docs/METRICS.md §1).
//!
//! The 8x8 stream does not fix a JSON type per field: `311`, `"311"` and
//! `"0311"` may all name the same queue, `true` and `"true"` the same flag.
//! A [`Lenient`] keeps what was received and answers each question
//! ("as a number?", "as a flag?", "as text?") by the contract's rules, so one
//! odd value never fails a message: it only makes that one value absent.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One scalar JSON value as received. Objects and arrays are `Nested`: the
/// event fields this crate reads are scalars, and their content is not needed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Lenient<'a> {
    /// Absent or JSON `null`.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    /// A JSON integer above `i64::MAX` that fits a `u64`: its text is
    /// exact, and it is no number of the contract's (none fits an `i64`).
    /// Until 2026-12-07 it was read as a float, so two ids that differ in
    /// their last digits had one text (an outside audit).
    Big(u64),
    /// A JSON number that is neither (fraction, exponent, or beyond the
    /// `u64` range, whose text is then the nearest double's).
    Float(f64),
    Text(Cow<'a, str>),
    /// An object or array.
    Nested,
}

impl<'a> Lenient<'a> {
    /// Present: exists, is not `null` and is not `""`.
    pub fn is_present(&self) -> bool {
        match self {
            Lenient::Null => false,
            Lenient::Text(t) => !t.is_empty(),
            _ => true,
        }
    }

    /// A number: a JSON integer, or text made only of an optional `-` and
    /// digits (leading zeros allowed). Integral floats count; other floats do not.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Lenient::Int(n) => Some(*n),
            Lenient::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Lenient::Text(t) => parse_decimal(t),
            _ => None,
        }
    }

    /// A flag (docs/METRICS.md §1): `true`, `"true"` and `"yes"` (any
    /// case), the integer `1` and `"1"` are true; `false`, `"false"` and
    /// `"no"` (any case), `0` and `"0"` are false; anything else is absent,
    /// `1.0` included.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Lenient::Bool(b) => Some(*b),
            Lenient::Int(1) => Some(true),
            Lenient::Int(0) => Some(false),
            Lenient::Text(t) => {
                let t = t.as_ref();
                if t.eq_ignore_ascii_case("true") || t == "1" || t.eq_ignore_ascii_case("yes") {
                    Some(true)
                } else if t.eq_ignore_ascii_case("false")
                    || t == "0"
                    || t.eq_ignore_ascii_case("no")
                {
                    Some(false)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The text of a present scalar: text as given, numbers in decimal
    /// (`1000` -> `"1000"`), booleans as `true`/`false`.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Lenient::Text(t) if !t.is_empty() => Some(Cow::Borrowed(t.as_ref())),
            Lenient::Int(n) => Some(Cow::Owned(n.to_string())),
            Lenient::Big(n) => Some(Cow::Owned(n.to_string())),
            Lenient::Float(f) => Some(Cow::Owned(f.to_string())),
            Lenient::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }

    /// Detaches the value from the input buffer.
    pub fn into_owned(self) -> Lenient<'static> {
        match self {
            Lenient::Null => Lenient::Null,
            Lenient::Bool(b) => Lenient::Bool(b),
            Lenient::Int(n) => Lenient::Int(n),
            Lenient::Big(n) => Lenient::Big(n),
            Lenient::Float(f) => Lenient::Float(f),
            Lenient::Text(t) => Lenient::Text(Cow::Owned(t.into_owned())),
            Lenient::Nested => Lenient::Nested,
        }
    }
}

fn parse_decimal(t: &str) -> Option<i64> {
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are allowed ("0311" is 311); i64::from_str accepts them.
    t.parse::<i64>().ok()
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Lenient::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lenient::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(n) => Lenient::Int(n),
            Err(_) => Lenient::Big(v),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Lenient::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Lenient::Text(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient::Nested)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Lenient<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn integers_past_i64_keep_their_digits_up_to_u64() {
        let max = v("18446744073709551615");
        assert_eq!(max.as_text().as_deref(), Some("18446744073709551615"));
        assert_eq!(
            v("18446744073709551614").as_text().as_deref(),
            Some("18446744073709551614")
        );
        assert_eq!(
            v("9223372036854775808").as_text().as_deref(),
            Some("9223372036854775808")
        );
        assert_eq!(max.as_i64(), None);
        assert_eq!(max.as_bool(), None);
        assert!(max.is_present());
    }

    #[test]
    fn numbers_read_from_numbers_and_digit_text() {
        assert_eq!(v("1162").as_i64(), Some(1162));
        assert_eq!(v("\"1162\"").as_i64(), Some(1162));
        assert_eq!(v("\"0311\"").as_i64(), Some(311));
        assert_eq!(v("\"-5\"").as_i64(), Some(-5));
        assert_eq!(v("\"\"").as_i64(), None);
        assert_eq!(v("\"-\"").as_i64(), None);
        assert_eq!(v("\"12a\"").as_i64(), None);
        assert_eq!(v("\" 12\"").as_i64(), None);
        assert_eq!(v("true").as_i64(), None);
        assert_eq!(v("{}").as_i64(), None);
        assert_eq!(v("99999999999999999999").as_i64(), None);
    }

    #[test]
    fn text_keeps_leading_zeros_and_renders_numbers() {
        assert_eq!(v("\"0311\"").as_text().as_deref(), Some("0311"));
        assert_eq!(v("1000").as_text().as_deref(), Some("1000"));
        assert_eq!(v("\"\"").as_text(), None);
        assert_eq!(v("null").as_text(), None);
    }

    #[test]
    fn booleans_follow_the_contract() {
        for t in [
            "true", "\"TRUE\"", "\"True\"", "1", "\"1\"", "\"yes\"", "\"YES\"",
        ] {
            assert_eq!(v(t).as_bool(), Some(true), "{t}");
        }
        for f in ["false", "\"false\"", "0", "\"0\"", "\"no\"", "\"No\""] {
            assert_eq!(v(f).as_bool(), Some(false), "{f}");
        }
        for absent in ["2", "\"pause\"", "null", "\"\"", "[]", "1.0", "0.0"] {
            assert_eq!(v(absent).as_bool(), None, "{absent}");
        }
    }

    #[test]
    fn presence() {
        assert!(!v("null").is_present());
        assert!(!v("\"\"").is_present());
        assert!(v("0").is_present());
        assert!(v("{}").is_present());
    }
}
