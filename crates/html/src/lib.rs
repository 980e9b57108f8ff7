//! Self-contained HTML pictures of ccvault projections: the swim-lane timeline
//! of one interaction, or of every leg of a contact with the transfers between
//! them (`show GUID --html`), and the charts of a report (`report --html`).
//!
//! Guarantees:
//! - One self-contained document: inline CSS and inline SVG only; no scripts,
//!   no external stylesheets, fonts or images, so it opens offline and nothing
//!   is fetched when it is viewed.
//! - Every text that comes from data (payloads, agent ids, GUIDs) is escaped,
//!   and the document is well-formed XML (XHTML syntax), so XML tools read it.
//! - Rendering is a pure function of its inputs and never panics.

mod contact;
mod escape;
mod report;
mod svg;
mod timeline;

pub use contact::{render_contact, LegView};
pub use escape::{esc as escape, push as push_escaped};
pub use report::render_report;
pub use timeline::{lanes, render_timeline, Lane, Segment, SegmentKind};

/// The stylesheet shared by both pages (inline: nothing is fetched).
const BASE_CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 6px}
h2{font-size:16px;margin:22px 0 6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.facts{margin:4px 0;color:#3e4c59}
.facts b{color:#1f2933}
table{border-collapse:collapse;font-size:12px;margin-top:6px}
th,td{border:1px solid #d9e2ec;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f4f8;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}
.nowrap{white-space:nowrap}
.raw{white-space:pre-wrap;word-break:break-all;font-size:11px;color:#334e68}
svg{display:block;max-width:100%;height:auto;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend svg.swatch{display:inline-block;margin-right:4px;vertical-align:-2px}
footer{margin-top:24px;font-size:11px;color:#7b8794}
";

/// The document head and opening body.
fn page_start(out: &mut String, title: &str, extra_css: &str) {
    out.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>");
    escape::push(out, title);
    out.push_str("</title>\n<style>");
    out.push_str(BASE_CSS);
    out.push_str(extra_css);
    out.push_str("</style>\n</head>\n<body>\n");
}

fn page_end(out: &mut String, note: &str) {
    out.push_str("<footer>");
    escape::push(out, note);
    out.push_str("</footer>\n</body>\n</html>\n");
}

#[cfg(test)]
pub(crate) mod test_xml {
    /// Parses the page as XML (the DOCTYPE is HTML's, not a DTD) and returns it.
    pub fn check(html: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(html, opts)
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{html}"))
    }
}

#[cfg(test)]
mod sim_day;

#[cfg(test)]
mod tests;
