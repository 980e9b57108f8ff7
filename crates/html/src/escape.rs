//! Escaping of data for XML/HTML text and attribute values.

/// Appends `s` escaped for text or a double- or single-quoted attribute.
///
/// Control characters that XML 1.0 forbids even as character references are
/// shown as U+FFFD: a payload may carry them (as JSON `\u0000` escapes, decoded
/// into a field) and the page must stay well-formed.
pub fn push(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // A parser turns a CR (or CRLF) it reads into LF: the reference
            // keeps the CR of a payload captured with CRLF line ends, so the
            // raw events a page shows are their bytes (outside audit).
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// `s` escaped (see [`push`]).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_forbidden_controls() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("a\u{0}b\u{1b}c\td"), "a\u{FFFD}b\u{FFFD}c\td");
        assert_eq!(esc("ünïcode ✓"), "ünïcode ✓");
        assert_eq!(
            esc("{\r\n  \"a\": 1\r\n}"),
            "{&#13;\n  &quot;a&quot;: 1&#13;\n}"
        );
    }
}
