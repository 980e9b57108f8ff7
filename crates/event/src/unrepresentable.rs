//! Valid JSON that serde_json cannot represent: a number out of `f64`
//! range (`1e400`) or a string holding a lone UTF-16 surrogate escape
//! (`"\ud800"`). serde_json refuses the whole document for either; the
//! contract (docs/OPERATIONS.md, "Nothing lost silently") archives it as an
//! event with only that value absent, as for any other odd value
//! (docs/METRICS.md §1).
//!
//! Invariants:
//! - Used only after serde_json refused a document, so the parse of every
//!   document it accepts costs nothing more.
//! - [`absent_unrepresentable`] changes nothing but those values: each such
//!   number or string *value* becomes `null` (it reads as absent), each lone
//!   surrogate escape in an object *key* becomes `\ufffd` (the key names no
//!   field this crate reads, so its value is skipped as unknown keys are);
//!   every other byte is kept. It answers `None` when there is nothing to
//!   change, so the caller keeps serde_json's own error.
//! - It never panics and reads each byte a bounded number of times; on
//!   text that is not JSON its output is not JSON either and the second
//!   parse fails as the first did.

/// The text with its unrepresentable values made absent, or `None` when it
/// has none.
pub(crate) fn absent_unrepresentable(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut lone = Vec::new();
                let end = string_end(b, i, |at| lone.push(at))?;
                if !lone.is_empty() {
                    out.push_str(text.get(copied..i)?);
                    if next_significant(b, end) == Some(b':') {
                        let mut from = i;
                        for at in lone {
                            out.push_str(text.get(from..at)?);
                            out.push_str("\\ufffd");
                            from = at + ESCAPE_LEN;
                        }
                        out.push_str(text.get(from..end)?);
                    } else {
                        out.push_str("null");
                    }
                    copied = end;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = i + b[i..]
                    .iter()
                    .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
                if out_of_range(text.get(i..end)?) {
                    out.push_str(text.get(copied..i)?);
                    out.push_str("null");
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(text.get(copied..)?);
    Some(out)
}

/// Bytes of one `\uXXXX` escape.
const ESCAPE_LEN: usize = 6;

/// Whether a number token is one serde_json refuses as out of range: its
/// value overflows `f64`. (Near `f64::MAX` serde_json's own rounding may
/// overflow first; such values count too. Underflow reads as 0 and is
/// accepted by serde_json.)
fn out_of_range(token: &str) -> bool {
    token
        .parse::<f64>()
        .is_ok_and(|v| v.is_nan() || v.abs() >= 1e308)
}

/// The index just past the closing quote of the string starting at
/// `start`, calling `lone(at)` with the index of each `\u` escape that is a
/// lone surrogate (a high one not followed by a low one, or a low one
/// alone), as serde_json judges them. `None` if the string is unterminated
/// or an escape is malformed.
fn string_end(b: &[u8], start: usize, mut lone: impl FnMut(usize)) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' if *b.get(i + 1)? == b'u' => {
                let unit = hex_unit(b, i)?;
                match unit {
                    0xD800..=0xDBFF
                        if b.get(i + ESCAPE_LEN) == Some(&b'\\')
                            && b.get(i + ESCAPE_LEN + 1) == Some(&b'u')
                            && hex_unit(b, i + ESCAPE_LEN)
                                .is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) =>
                    {
                        i += 2 * ESCAPE_LEN;
                    }
                    0xD800..=0xDFFF => {
                        lone(i);
                        i += ESCAPE_LEN;
                    }
                    _ => i += ESCAPE_LEN,
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The UTF-16 unit of the `\uXXXX` escape at `at`.
fn hex_unit(b: &[u8], at: usize) -> Option<u32> {
    let hex = std::str::from_utf8(b.get(at + 2..at + ESCAPE_LEN)?).ok()?;
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The first byte from `at` on that is not JSON whitespace.
fn next_significant(b: &[u8], at: usize) -> Option<u8> {
    b.get(at..)?
        .iter()
        .copied()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unrepresentable_values_change() {
        for (text, want) in [
            (r#"{"a":1e400}"#, Some(r#"{"a":null}"#)),
            (r#"{"a":-1E+400,"b":2}"#, Some(r#"{"a":null,"b":2}"#)),
            (r#"[1e-400, 1.5, 1e400]"#, Some(r#"[1e-400, 1.5, null]"#)),
            (r#"{"a":"\ud800"}"#, Some(r#"{"a":null}"#)),
            (r#"{"a":"x\udc00y"}"#, Some(r#"{"a":null}"#)),
            (r#"{"a":"\ud800\ud800\udc00"}"#, Some(r#"{"a":null}"#)),
            (
                r#"{"k\ud800" : "\ud83d\ude00", "1e400": 0}"#,
                Some(r#"{"k\ufffd" : "\ud83d\ude00", "1e400": 0}"#),
            ),
            (r#"{"a":"\ud83d\ude00","b":1e300,"c":"\\ud800"}"#, None),
            ("not json 1e400", Some("not json null")),
            ("\"unterminated \\ud800", None),
            ("", None),
        ] {
            assert_eq!(absent_unrepresentable(text).as_deref(), want, "{text}");
        }
    }
}
