//! Plain-text tables for human output.
//!
//! Guarantee: every cell of every table, and every field the human output
//! prints from an event, goes through [`for_terminal`], so a crafted
//! `agentId` or GUID cannot move the cursor, retitle the window or forge a
//! row (JSON and CSV carry the values unchanged; their encoders escape).

use std::borrow::Cow;

use unicode_width::UnicodeWidthStr;

/// `value` with control characters (C0, DEL, C1), the characters that
/// reorder what a terminal shows (bidirectional overrides, isolates and
/// marks) and those it shows as nothing or as a line break (zero-width
/// characters, U+2028/2029, the soft hyphen, fillers, tags) written as Rust
/// escapes (`\u{1b}`, `\n`, `\u{200b}`), so `ag1` and `ag1` with a
/// zero-width space never look alike, and a backslash as `\\`, so no
/// value prints as another's escape (`ag\n1` typed with a backslash and
/// `ag` newline `1` looked alike until 2026-12-07: an outside audit); text
/// without them is returned as it is.
pub fn for_terminal(value: &str) -> Cow<'_, str> {
    escaped(value, true)
}

/// A whole message (an error, a warning) as [`for_terminal`] writes a
/// value, but for its backslashes: the values a message quotes are quoted
/// with Rust's `{:?}`, which escapes their backslashes already.
pub fn message_for_terminal(message: &str) -> Cow<'_, str> {
    escaped(message, false)
}

fn escaped(text: &str, backslash: bool) -> Cow<'_, str> {
    let escape_debug = |c: char| c.is_control() || (backslash && c == '\\');
    if !text
        .chars()
        .any(|c| escape_debug(c) || hidden_or_reordering(c))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape_debug(c) {
            out.extend(c.escape_debug());
        } else if hidden_or_reordering(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal shows as nothing, as a line break, or that
/// reorder the text around them.
fn hidden_or_reordering(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}'
        | '\u{17B4}' | '\u{17B5}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}')
}

/// Renders rows under headers, columns padded to their widest cell; columns
/// flagged in `right` are right-aligned (numbers). Cells are given as
/// they are and escaped once, by [`line`] (until 2026-12-07 they were
/// escaped here too: a tenant `a\u{202e}` printed `a\\u{202e}`, which
/// names none: an outside audit).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths = widths_of(headers);
    for row in rows {
        widen(&mut widths, row);
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    push_row(&mut out, &header, &widths, right);
    for row in rows {
        push_row(&mut out, row, &widths, right);
    }
    out
}

/// The widths of a table's columns before any row: their headers'.
pub(crate) fn widths_of(headers: &[&str]) -> Vec<usize> {
    headers.iter().map(|h| h.width()).collect()
}

/// Widens `widths` to hold `row`'s cells as [`line`] prints them (escaped
/// by [`for_terminal`]): a table streamed in two passes measures its rows
/// with this in the first.
pub(crate) fn widen(widths: &mut [usize], row: &[String]) {
    for (w, cell) in widths.iter_mut().zip(row) {
        *w = (*w).max(for_terminal(cell).width());
    }
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize], right: &[bool]) {
    out.push_str(&line(cells, widths, right));
    out.push('\n');
}

/// One table line without its line break: cells padded to `widths`, two
/// spaces apart, trailing blanks trimmed. Widths are the columns a
/// terminal gives the text (`unicode-width`): a CJK character or an emoji
/// takes two, a combining mark none (counted in characters until
/// 2026-12-06, CJK names shifted every column after them).
pub(crate) fn line(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let cell = for_terminal(cell);
        let cell = cell.as_ref();
        let width = widths.get(i).copied().unwrap_or(0);
        let pad = width.saturating_sub(cell.width());
        if i > 0 {
            line.push_str("  ");
        }
        if right.get(i).copied().unwrap_or(false) {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.truncate(line.trim_end().len());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_the_width_a_terminal_gives_each_cell() {
        let out = table(
            &["AGENT", "QUEUE"],
            &[
                vec!["山田太郎".into(), "sales".into()],
                vec!["Zoe\u{301}".into(), "support".into()],
                vec!["ag-7".into(), "☎ billing".into()],
            ],
            &[false, false],
        );
        let starts: Vec<usize> = out
            .lines()
            .map(|l| {
                let agent = l.split("  ").next().unwrap();
                agent.width() + l[agent.len()..].len() - l[agent.len()..].trim_start().len()
            })
            .collect();
        assert_eq!(starts, vec![10; 4], "{out}");
    }

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(for_terminal("agent-7 Zoë"), Cow::Borrowed(_)));
        assert_eq!(
            for_terminal("a\u{1b}]0;owned\u{7}b\u{1b}[2J\nforged\u{202E}"),
            "a\\u{1b}]0;owned\\u{7}b\\u{1b}[2J\\nforged\\u{202e}"
        );
        // Invisible, line-breaking or reordering: two agents never look
        // alike (an outside audit found these printed raw).
        assert_eq!(
            for_terminal(
                "ag1\u{200b}|\u{200f}|\u{2028}|\u{ad}|\u{3164}|\u{feff}|\u{e0041}|\u{2066}"
            ),
            "ag1\\u{200b}|\\u{200f}|\\u{2028}|\\u{ad}|\\u{3164}|\\u{feff}|\\u{e0041}|\\u{2066}"
        );
        assert_eq!(
            for_terminal("a\u{34f}|\u{17b4}|\u{fff9}|\u{1d173}"),
            "a\\u{34f}|\\u{17b4}|\\u{fff9}|\\u{1d173}"
        );
        assert!(matches!(for_terminal("Zoë 山田 ☎"), Cow::Borrowed(_)));
        // A backslash is escaped too, so no value prints as another's
        // escape.
        assert_eq!(for_terminal("ag\\n1"), "ag\\\\n1");
        assert_ne!(for_terminal("ag\\n1"), for_terminal("ag\n1"));
        assert_ne!(
            for_terminal("int-zw\\u{200b}1"),
            for_terminal("int-zw\u{200b}1")
        );
    }

    #[test]
    fn a_table_cell_cannot_add_a_row_or_an_escape_sequence() {
        let out = table(
            &["AGENT"],
            &[vec!["x\nFORGED 1".into()], vec!["\u{1b}[2J".into()]],
            &[false],
        );
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        // Escaped once, as everywhere else: the text the reader can type
        // back (`--tenant`) for the value.
        let out = table(&["T"], &[vec!["a\u{202e}\\b".into()]], &[false]);
        assert_eq!(
            out.lines().nth(1),
            Some(for_terminal("a\u{202e}\\b").as_ref())
        );
        assert_eq!(out.lines().nth(1), Some("a\\u{202e}\\\\b"));
    }
}
