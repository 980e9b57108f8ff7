//! Plain-text tables for human output.

/// Renders rows under headers, columns padded to their widest cell; columns
/// flagged in `right` are right-aligned (numbers).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    push_row(&mut out, &header, &widths, right);
    for row in rows {
        push_row(&mut out, row, &widths, right);
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize], right: &[bool]) {
    out.push_str(&line(cells, widths, right));
    out.push('\n');
}

/// One table line without its line break: cells padded to `widths`, two
/// spaces apart, trailing blanks trimmed.
pub(crate) fn line(cells: &[String], widths: &[usize], right: &[bool]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let width = widths.get(i).copied().unwrap_or(0);
        let pad = width.saturating_sub(cell.chars().count());
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
