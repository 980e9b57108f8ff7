//! ccvault's pages in a real headless Chromium (`tests/common/browser.rs`):
//! what a user sees, with the page's own scripts running under its
//! Content-Security-Policy, not what a test parses out of the HTML.
//!
//! Requires `chromium` and `chromium-driver` (and `mosquitto` for the live
//! wallboard); `scripts/test.sh` installs them when root.

use common::browser::Browser;
use serde_json::json;

mod common;

/// Browser console entries at level SEVERE (script errors, CSP violations,
/// failed loads) since the page was opened.
fn severe_console_entries(browser: &Browser) -> Vec<String> {
    browser
        .console_log()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_html_report_file_renders_in_chromium_with_every_row_and_no_errors() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    common::import(&data, &[&common::sample("events.ndjson")], &[]);
    let page = work.path().join("report.html");
    common::ccvault(
        &data,
        &[
            "report",
            "--interval",
            "1h",
            "--html",
            page.to_str().unwrap(),
        ],
    )
    .ok();
    let rows = common::ccvault(&data, &["report", "--interval", "1h", "--format", "json"])
        .ok()
        .json_lines();

    let browser = Browser::start();
    browser.goto(&format!("file://{}", page.display()));
    assert!(
        browser.title().contains("report") || browser.title().contains("Report"),
        "title: {:?}",
        browser.title()
    );
    // The table as laid out by the browser: every report row is a visible row.
    let shown = browser.execute(
        "return Array.from(document.querySelectorAll('table.report tbody tr'))
             .filter(r => r.getBoundingClientRect().height > 0).length;",
        json!([]),
    );
    assert_eq!(
        shown.as_u64(),
        Some(rows.len() as u64),
        "rows shown vs report --format json rows:\n{}",
        browser.text()
    );
    assert!(!rows.is_empty());
    assert_eq!(severe_console_entries(&browser), Vec::<String>::new());

    let shot = work.path().join("shots/report.png");
    browser.screenshot_page(&shot, 4000);
    let png = std::fs::read(&shot).unwrap();
    let (w, h) = png_size(&png);
    assert_eq!(w, common::browser::WINDOW.0, "screenshot width");
    assert!(h >= 200, "screenshot height {h}");
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && &png[12..16] == b"IHDR", "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}
