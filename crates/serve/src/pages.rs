//! The server's HTML: the wallboard shell, the contact, search, report and
//! login pages.
//!
//! Invariants:
//! - Every text from data goes through crates/html's escaping
//!   ([`ccvault_html::escape`]); attribute values are double-quoted.
//! - No inline script or style of this module's own: the wallboard's
//!   behaviour is `/assets/wallboard.js`, its look `/assets/serve.css`. The
//!   contact and report pictures are crates/html's pages, whose one inline
//!   stylesheet the response's policy allows by hash.
//! - The wallboard's DOM contract (docs/SERVE.md) is kept by
//!   `assets/wallboard.js`: rows `tr[data-guid][data-stage]` in
//!   `table#in-progress` with `td.wait[data-since-ms]`, `tr[data-queue]` in
//!   `table#queues`, `tr[data-agent][data-state]` in `table#agents`.

use std::fmt::Write as _;

use ccvault_html::{escape, push_escaped};
use ccvault_projections::timefmt::{format_duration, format_opt_instant, zone_for_display};
use ccvault_projections::Summary;
use ccvault_store::Record;
use jiff::tz::TimeZone;

use crate::wallboard::Wallboard;

const NAV_LINKS: &str =
    "<nav><a href=\"/\">Wallboard</a><a href=\"/search\">Search</a><a href=\"/report\">Report</a>";

/// The sign-out button (`/logout`), on every page of a server with a
/// token (whose browsers sign in) but its sign-in page.
const SIGN_OUT: &str = "<form class=\"signout\" method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>";

/// A page of this server: its stylesheet, the navigation (with the
/// sign-out button when `sign_out`), `body`.
pub fn shell(title: &str, body: &str, sign_out: bool) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>");
    push_escaped(&mut out, title);
    out.push_str(
        "</title>\n<link rel=\"stylesheet\" href=\"/assets/serve.css\"/>\n</head>\n<body>\n",
    );
    out.push_str(NAV_LINKS);
    if sign_out {
        out.push_str(SIGN_OUT);
    }
    out.push_str("</nav>\n");
    out.push_str(body);
    out.push_str("</body>\n</html>\n");
    out
}

/// A wait as the page writes it: m:ss, h:mm:ss past an hour (the same as
/// `clock()` in `assets/wallboard.js`, which takes over once connected).
pub fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, ss) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{ss:02}")
    } else {
        format!("{m}:{ss:02}")
    }
}

fn td(out: &mut String, class: &str, text: &str) {
    if class.is_empty() {
        out.push_str("<td>");
    } else {
        let _ = write!(out, "<td class=\"{class}\">");
    }
    push_escaped(out, text);
    out.push_str("</td>");
}

fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A cell of a duration that grows with the clock: `since` as data, the
/// time from it to `now_ms` as text.
fn since_td(out: &mut String, class: &str, since: Option<i64>, now_ms: i64) {
    match since {
        Some(ms) => {
            let _ = write!(
                out,
                "<td class=\"{class}\" data-since-ms=\"{ms}\">{}</td>",
                clock(now_ms.saturating_sub(ms))
            );
        }
        None => td(out, class, "-"),
    }
}

/// `/`: the wallboard as of `board` (rendered here, so the page is not
/// empty without JavaScript), which `/assets/wallboard.js` then keeps
/// current from `/events`. `now_ms` is the server's clock: the script
/// advances the waits from it, never from the browser's clock.
pub fn wallboard(board: Option<&Wallboard>, now_ms: i64, tz: &TimeZone, sign_out: bool) -> String {
    let mut b = String::with_capacity(4096);
    let _ = write!(
        b,
        "<h1>Wallboard</h1>\n<div id=\"wallboard\" data-now-ms=\"{now_ms}\">\n"
    );
    match board {
        Some(w) => {
            let _ = write!(
                b,
                "<p id=\"status\" class=\"static\">{} records, {} in progress, as of ",
                w.records,
                w.in_progress.len()
            );
            push_escaped(
                &mut b,
                &format_opt_instant(Some(w.as_of_ms), zone_for_display(tz)),
            );
            b.push_str(" (connecting for live updates…)</p>\n");
        }
        None => b.push_str("<p id=\"status\">connecting…</p>\n"),
    }
    b.push_str("<h2>Queues (today)</h2>\n<table id=\"queues\"><thead><tr><th>queue</th><th>channel</th><th class=\"num\">waiting</th><th class=\"num\">longest wait</th><th class=\"num\">offered</th><th class=\"num\">answered</th><th class=\"num\">abandoned</th><th class=\"num\">service level</th><th class=\"num\">ASA</th><th class=\"num\">outbound</th><th class=\"num\">connected</th></tr></thead><tbody>\n");
    for q in board.map_or(&[][..], |w| &w.queues) {
        b.push_str("<tr data-queue=\"");
        push_escaped(
            &mut b,
            &q.queue_id.map_or("none".to_owned(), |q| q.to_string()),
        );
        b.push_str("\" data-channel=\"");
        push_escaped(&mut b, q.media_type.as_deref().unwrap_or("none"));
        b.push_str("\">");
        td(&mut b, "", &or_dash(q.queue_id));
        td(&mut b, "", q.media_type.as_deref().unwrap_or("-"));
        td(&mut b, "num", &q.waiting.to_string());
        since_td(&mut b, "num longest", q.oldest_waiting_since_ms, now_ms);
        td(&mut b, "num", &q.offered.to_string());
        td(&mut b, "num", &q.answered.to_string());
        td(&mut b, "num", &q.abandoned.to_string());
        td(
            &mut b,
            "num",
            &or_dash(q.service_level.map(|v| format!("{:.1}%", v * 100.0))),
        );
        td(
            &mut b,
            "num",
            &or_dash(q.asa_ms.map(|v| format!("{:.1}s", v as f64 / 1000.0))),
        );
        td(&mut b, "num", &q.outbound.to_string());
        td(&mut b, "num", &q.outbound_connected.to_string());
        b.push_str("</tr>\n");
    }
    b.push_str("</tbody></table>\n<h2>In progress</h2>\n<table id=\"in-progress\"><thead><tr><th>interaction</th><th>stage</th><th class=\"num\">time</th><th>queue</th><th>channel</th><th>agent</th></tr></thead><tbody>\n");
    for l in board.map_or(&[][..], |w| &w.in_progress) {
        b.push_str("<tr data-guid=\"");
        push_escaped(&mut b, &l.interaction_guid);
        let _ = write!(
            b,
            "\" data-stage=\"{}\"><td><a href=\"/contact/",
            l.stage.as_str()
        );
        push_escaped(&mut b, &percent_encode(&l.interaction_guid));
        b.push_str("\">");
        push_escaped(&mut b, &l.interaction_guid);
        b.push_str("</a></td>");
        td(&mut b, "stage", l.stage.as_str());
        since_td(&mut b, "num wait", Some(l.since_ms), now_ms);
        td(&mut b, "", &or_dash(l.queue_id));
        td(&mut b, "", l.media_type.as_deref().unwrap_or("-"));
        td(&mut b, "", l.agent_id.as_deref().unwrap_or("-"));
        b.push_str("</tr>\n");
    }
    b.push_str("</tbody></table>\n<h2>Agents</h2>\n<table id=\"agents\"><thead><tr><th>agent</th><th>state</th><th class=\"num\">time in state</th><th>on</th><th class=\"num\">time</th><th class=\"num\">legs</th></tr></thead><tbody>\n");
    for a in board.map_or(&[][..], |w| &w.agents) {
        b.push_str("<tr data-agent=\"");
        push_escaped(&mut b, &a.agent_id);
        let activity = a.activity.map_or("none", |s| s.as_str());
        let _ = write!(
            b,
            "\" data-state=\"{}\" data-activity=\"{activity}\">",
            a.state
        );
        td(&mut b, "", &a.agent_id);
        td(&mut b, "", &a.state_name);
        since_td(&mut b, "num", Some(a.since_ms), now_ms);
        td(&mut b, "stage", a.activity.map_or("-", |s| s.as_str()));
        since_td(&mut b, "num", a.activity_since_ms, now_ms);
        td(&mut b, "num", &a.interactions.to_string());
        b.push_str("</tr>\n");
    }
    b.push_str("</tbody></table>\n</div>\n<script src=\"/assets/wallboard.js\"></script>\n");
    shell("ccvault wallboard", &b, sign_out)
}

/// Inserts `html` right after the `<body>` tag of a crates/html page (or
/// at its start when there is none).
pub fn after_body_tag(page: &mut String, html: &str) {
    let at = page.find("<body>").map_or(0, |i| i + "<body>".len());
    page.insert_str(at, html);
}

/// Inserts `html` before the page's footer (or its end).
pub fn before_footer(page: &mut String, html: &str) {
    let at = page
        .find("<footer>")
        .or_else(|| page.find("</body>"))
        .unwrap_or(page.len());
    page.insert_str(at, html);
}

/// The navigation of a crates/html page shown by the server.
pub fn nav_for_page(download: Option<&str>, sign_out: bool) -> String {
    let mut s = String::from("\n<nav class=\"facts\"><a href=\"/\">Wallboard</a> · <a href=\"/search\">Search</a> · <a href=\"/report\">Report</a>");
    if let Some(href) = download {
        s.push_str(" · <a href=\"");
        push_escaped(&mut s, href);
        s.push_str("\">raw events (NDJSON)</a>");
    }
    if sign_out {
        s.push_str(SIGN_OUT);
    }
    s.push_str("</nav>\n");
    s
}

/// The archived records of each leg with where they came from.
pub fn provenance(legs: &[(&str, &[Record])], tz: &TimeZone) -> String {
    let mut out = String::from("<h2>Archived records</h2>\n");
    for (guid, records) in legs {
        out.push_str("<h3>");
        push_escaped(&mut out, guid);
        out.push_str("</h3>\n<table class=\"provenance\"><tr><th class=\"num\">offset</th><th>source</th><th class=\"num\">line</th><th>messageId</th><th>publishTime</th><th>ingest time</th><th>payload (as archived)</th></tr>\n");
        for r in *records {
            let _ = write!(out, "<tr><td class=\"num\">{}</td><td>", r.offset);
            push_escaped(&mut out, &r.source);
            let _ = write!(out, "</td><td class=\"num\">{}</td><td>", r.line);
            push_escaped(&mut out, &r.message_id);
            out.push_str("</td><td>");
            push_escaped(&mut out, &r.publish_time);
            out.push_str("</td><td class=\"nowrap\">");
            push_escaped(&mut out, &format_opt_instant(Some(r.ingest_ms), Some(tz)));
            out.push_str("</td><td class=\"raw\">");
            push_escaped(&mut out, &String::from_utf8_lossy(&r.payload));
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    out
}

/// A form field of the query pages.
fn field(out: &mut String, label: &str, name: &str, value: Option<&str>) {
    let _ = write!(
        out,
        "<label>{label} <input name=\"{name}\" value=\"{}\"/></label>",
        escape(value.unwrap_or(""))
    );
}

/// `/search`: the form and, once asked, the results.
pub fn search(
    params: &[(&str, &str, Option<&str>)],
    results: Option<Result<(&[Summary], bool), String>>,
    tz: &TimeZone,
    sign_out: bool,
) -> String {
    let mut body =
        String::from("<h1>Search</h1>\n<form class=\"query\" method=\"get\" action=\"/search\">");
    for (label, name, value) in params {
        field(&mut body, label, name, *value);
    }
    body.push_str("<button type=\"submit\">Search</button></form>\n");
    match results {
        None => {}
        Some(Err(e)) => {
            body.push_str("<p class=\"error\">");
            push_escaped(&mut body, &e);
            body.push_str("</p>\n");
        }
        Some(Ok((legs, truncated))) => {
            let _ = writeln!(
                body,
                "<p>{} leg{}{}</p>",
                legs.len(),
                if legs.len() == 1 { "" } else { "s" },
                if truncated {
                    " (stopped at a bound: narrow the search)"
                } else {
                    ""
                }
            );
            body.push_str("<table id=\"results\"><thead><tr><th>interaction</th><th>contact</th><th>offered</th><th>kind</th><th>queue</th><th>channel</th><th>agent</th><th>outcome</th><th class=\"num\">wait</th></tr></thead><tbody>\n");
            for s in legs {
                let guid = s.interaction_guid.as_deref().unwrap_or("");
                body.push_str("<tr><td><a href=\"/contact/");
                push_escaped(&mut body, &percent_encode(guid));
                body.push_str("\">");
                push_escaped(&mut body, guid);
                body.push_str("</a></td><td>");
                match s.contact_id.as_deref() {
                    Some(contact) => {
                        body.push_str("<a href=\"/contact/");
                        push_escaped(&mut body, &percent_encode(contact));
                        body.push_str("\">");
                        push_escaped(&mut body, contact);
                        body.push_str("</a>");
                    }
                    None => body.push('-'),
                }
                body.push_str("</td><td class=\"nowrap\">");
                push_escaped(&mut body, &format_opt_instant(Some(s.offered_at), Some(tz)));
                let _ = write!(body, "</td><td>{}</td><td>", s.kind.as_str());
                push_escaped(
                    &mut body,
                    &s.queue_id.map_or("-".to_owned(), |q| q.to_string()),
                );
                body.push_str("</td><td>");
                push_escaped(&mut body, s.media_type.as_deref().unwrap_or("-"));
                body.push_str("</td><td>");
                push_escaped(&mut body, s.agent_id.as_deref().unwrap_or("-"));
                let _ = writeln!(
                    body,
                    "</td><td>{}</td><td class=\"num\">{}</td></tr>",
                    s.outcome.as_str(),
                    // A caller who hung up waited too: abandonMs, the
                    // number that settles "they waited and gave up".
                    match (s.wait_ms, s.abandon_ms) {
                        (Some(w), _) => format_duration(w),
                        (None, Some(a)) => format!("{} (abandoned)", format_duration(a)),
                        (None, None) => "-".to_owned(),
                    }
                );
            }
            body.push_str("</tbody></table>\n");
        }
    }
    shell("ccvault search", &body, sign_out)
}

/// The report form, put above crates/html's report page.
pub fn report_form(params: &[(&str, &str, Option<&str>)]) -> String {
    let mut out = String::from("<form class=\"facts\" method=\"get\" action=\"/report\">");
    for (label, name, value) in params {
        field(&mut out, label, name, *value);
        out.push(' ');
    }
    out.push_str("<button type=\"submit\">Show</button></form>\n");
    out
}

/// A page saying what went wrong (the message escaped).
pub fn problem(title: &str, message: &str, sign_out: bool) -> String {
    let mut body = String::from("<h1>");
    push_escaped(&mut body, title);
    body.push_str("</h1>\n<p class=\"error\">");
    push_escaped(&mut body, message);
    body.push_str("</p>\n");
    shell(title, &body, sign_out)
}

/// [`problem`], then a list of links to the contacts of `guids`: where
/// to go instead (a contact whose first leg was never archived names the
/// legs that were).
pub fn problem_with_legs(title: &str, message: &str, guids: &[String], sign_out: bool) -> String {
    let mut body = String::from("<h1>");
    push_escaped(&mut body, title);
    body.push_str("</h1>\n<p class=\"error\">");
    push_escaped(&mut body, message);
    body.push_str("</p>\n<ul id=\"legs\">\n");
    for guid in guids {
        body.push_str("<li><a href=\"/contact/");
        push_escaped(&mut body, &percent_encode(guid));
        body.push_str("\">");
        push_escaped(&mut body, guid);
        body.push_str("</a></li>\n");
    }
    body.push_str("</ul>\n");
    shell(title, &body, sign_out)
}

/// A warning paragraph saying `text`.
pub fn warning(text: &str) -> String {
    let mut out = String::from("<p class=\"error\" role=\"alert\">");
    push_escaped(&mut out, text);
    out.push_str("</p>\n");
    out
}

/// `/login`: where a browser presents the token once (it is then kept in
/// an HttpOnly cookie).
pub fn login(failed: bool, next: Option<&str>) -> String {
    let mut body = String::from("<h1>ccvault</h1>\n");
    if failed {
        body.push_str("<p class=\"error\">That is not the token.</p>\n");
    }
    body.push_str("<form class=\"query\" method=\"post\" action=\"/login\"><label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\"/></label>");
    if let Some(next) = next {
        body.push_str("<input type=\"hidden\" name=\"next\" value=\"");
        push_escaped(&mut body, next);
        body.push_str("\"/>");
    }
    body.push_str("<button type=\"submit\">Sign in</button></form>\n");
    shell("ccvault sign in", &body, false)
}

/// `s` with everything but unreserved URL characters percent-encoded (a
/// path segment).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
