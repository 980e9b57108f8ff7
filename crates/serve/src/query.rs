//! The questions the server's pages and `/api/…` routes take as query
//! parameters, read with the CLI's grammar (same names as its flags, same
//! value forms), so `/api/report?interval=15m&by=queue` asks exactly what
//! `ccvault report --interval 15m --by queue` asks.
//!
//! Invariant: a bad parameter is an error naming it and its value (the
//! server answers 400 with it), never a panic and never silently ignored.

use ccvault_projections::report::{GroupBy, Interval, ReportOptions, Sla};
use ccvault_projections::timearg::{parse_duration_ms, parse_time};
use ccvault_projections::{InteractionFilter, LegKind, Outcome};
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::wallboard::WallboardOptions;

/// A bad query parameter.
#[derive(Debug, thiserror::Error)]
#[error("bad parameter {name}: {why}")]
pub struct BadParam {
    pub name: &'static str,
    pub why: String,
}

fn param<T>(
    name: &'static str,
    v: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, BadParam> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v).map(Some).map_err(|why| BadParam { name, why }),
    }
}

fn instant(name: &'static str, v: Option<&str>, tz: &TimeZone) -> Result<Option<i64>, BadParam> {
    let Some(t) = param(name, v, parse_time)? else {
        return Ok(None);
    };
    t.resolve(tz, jiff::Timestamp::now())
        .map(Some)
        .map_err(|why| BadParam { name, why })
}

/// `from` and `to` as a window `[from, to)`: refused when `from` is after
/// `to`, as the CLI refuses it (an empty answer would say "nothing then",
/// not "you swapped them").
fn window(
    from: Option<&str>,
    to: Option<&str>,
    tz: &TimeZone,
) -> Result<(Option<i64>, Option<i64>), BadParam> {
    let (f, t) = (instant("from", from, tz)?, instant("to", to, tz)?);
    if let (Some(f_ms), Some(t_ms)) = (f, t) {
        if f_ms > t_ms {
            return Err(BadParam {
                name: "from",
                why: format!(
                    "{:?} is after to {:?}: the window is [from, to)",
                    from.unwrap_or_default(),
                    to.unwrap_or_default()
                ),
            });
        }
    }
    Ok((f, t))
}

fn from_str<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

/// Every name of [`InteractionsQuery`] (kept beside it: serde cannot list
/// the fields of a struct it deserializes).
pub const INTERACTIONS_PARAMS: &[&str] = &[
    "from", "to", "queue", "agent", "outcome", "channel", "kind", "contact", "tenant",
];

/// Every name of [`ReportQuery`].
pub const REPORT_PARAMS: &[&str] = &["from", "to", "interval", "by", "sla", "short_abandon"];

/// Every name of the routes that take no parameter (`/api/wallboard`,
/// `/api/contact/{guid}`, `/contact/{guid}/events.ndjson`).
pub const NO_PARAMS: &[&str] = &[];

/// A query whose values' percent escapes are no UTF-8 (`agent=%ff%fe`) is
/// refused, naming the parameter, as the same bytes in a path are: axum's
/// decoding would make them U+FFFD and the answer an empty 200 (an outside
/// audit; the `/search` page answered so until 2026-12-07, another).
pub fn only_utf8_values(uri: &axum::http::Uri) -> Result<(), String> {
    for pair in uri.query().unwrap_or_default().split('&') {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(pair).collect();
        if std::str::from_utf8(&decoded).is_err() {
            let name = pair.split('=').next().unwrap_or_default();
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            return Err(format!(
                "parameter {name:?} is not UTF-8 once its percent escapes are decoded"
            ));
        }
    }
    Ok(())
}

/// A data route's query that names a parameter the route does not take is
/// refused, naming it: a misspelt filter (`quue=313`) would otherwise be
/// ignored and the answer be about everything. Names are compared decoded
/// (percent escapes and `+`, as the parameters' values are read), so
/// `fr%6Fm` is `from`.
pub fn only_known_params(uri: &axum::http::Uri, known: &[&str]) -> Result<(), String> {
    only_utf8_values(uri)?;
    // axum's own query decoding (serde_urlencoded over form_urlencoded),
    // the one the routes read their parameters with.
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| format!("unreadable query: {}", e.body_text()))?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs
            .get(..i)
            .is_some_and(|seen| seen.iter().any(|(n, _)| n == name))
        {
            return Err(format!(
                "parameter {name:?} given twice (each takes one value)"
            ));
        }
        if !known.contains(&name.as_str()) {
            let takes = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(format!(
                "unknown parameter {name:?} (this route takes {takes})"
            ));
        }
    }
    Ok(())
}

/// `/api/interactions` and `/search`: the `interactions` command's flags.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InteractionsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub outcome: Option<String>,
    pub channel: Option<String>,
    pub kind: Option<String>,
    pub contact: Option<String>,
    pub tenant: Option<String>,
}

impl InteractionsQuery {
    /// The filter `ccvault interactions` builds from the same flags.
    pub fn filter(&self, tz: &TimeZone) -> Result<InteractionFilter, BadParam> {
        let (from, to) = window(self.from.as_deref(), self.to.as_deref(), tz)?;
        Ok(InteractionFilter {
            from,
            to,
            queue_id: param("queue", self.queue.as_deref(), from_str::<i64>)?,
            agent_id: param("agent", self.agent.as_deref(), |s| Ok(s.to_owned()))?,
            outcome: param("outcome", self.outcome.as_deref(), from_str::<Outcome>)?,
            media_type: param("channel", self.channel.as_deref(), |s| Ok(s.to_lowercase()))?,
            kind: param("kind", self.kind.as_deref(), from_str::<LegKind>)?,
            contact_id: param("contact", self.contact.as_deref(), |s| Ok(s.to_owned()))?,
            tenant: param("tenant", self.tenant.as_deref(), |s| Ok(s.to_owned()))?,
        })
    }
}

/// `/api/report` and `/report`: the `report` command's flags.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub interval: Option<String>,
    pub by: Option<String>,
    pub sla: Option<String>,
    pub short_abandon: Option<String>,
}

impl ReportQuery {
    /// The options `ccvault report` builds from the same flags, with
    /// `report`'s defaults (1h, all legs together) but the server's own
    /// service-level threshold and short-abandon limit (`serve --sla`,
    /// `--short-abandon`, which the wallboard counts with too), so that the
    /// report and the wallboard of one server agree.
    pub fn options(&self, server: &WallboardOptions) -> Result<ReportOptions, BadParam> {
        let tz = &server.tz;
        let (from, to) = window(self.from.as_deref(), self.to.as_deref(), tz)?;
        Ok(ReportOptions {
            interval: param("interval", self.interval.as_deref(), from_str::<Interval>)?
                .unwrap_or(Interval::Hour1),
            by: param("by", self.by.as_deref(), from_str::<GroupBy>)?.unwrap_or_default(),
            tz: tz.clone(),
            sla: param("sla", self.sla.as_deref(), from_str::<Sla>)?
                .unwrap_or_else(|| server.sla.clone()),
            short_abandon_ms: param(
                "short_abandon",
                self.short_abandon.as_deref(),
                parse_duration_ms,
            )?
            .unwrap_or(server.short_abandon_ms),
            from,
            to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's options as `serve` defaults them, but for `sla`.
    fn server_with(sla: &str) -> WallboardOptions {
        WallboardOptions {
            tz: TimeZone::UTC,
            sla: sla.parse().unwrap(),
            short_abandon_ms: 5_000,
            state_names: Default::default(),
            now_ms: 0,
        }
    }

    fn server() -> WallboardOptions {
        server_with("20s")
    }

    #[test]
    fn a_report_counts_with_the_servers_threshold_unless_asked_for_another() {
        let opts = ReportQuery::default()
            .options(&server_with("phone=20s,chat=60s"))
            .unwrap();
        assert_eq!(opts.sla, "phone=20s,chat=60s".parse().unwrap());
        let opts = ReportQuery {
            sla: Some("30s".into()),
            short_abandon: Some("2s".into()),
            ..Default::default()
        }
        .options(&server_with("phone=20s,chat=60s"))
        .unwrap();
        assert_eq!(opts.sla, "30s".parse().unwrap());
        assert_eq!(opts.short_abandon_ms, 2_000);
    }

    #[test]
    fn a_window_whose_start_is_after_its_end_is_refused_by_name() {
        let swapped = (Some("2025-11-25".to_owned()), Some("2025-11-24".to_owned()));
        let e = InteractionsQuery {
            from: swapped.0.clone(),
            to: swapped.1.clone(),
            ..Default::default()
        }
        .filter(&TimeZone::UTC)
        .unwrap_err();
        assert_eq!(e.name, "from");
        assert!(e.to_string().contains("is after"), "{e}");
        let e = ReportQuery {
            from: swapped.0,
            to: swapped.1,
            ..Default::default()
        }
        .options(&server())
        .unwrap_err();
        assert_eq!(e.name, "from");
        // An empty window is a window.
        let same = Some("2025-11-24".to_owned());
        assert!(InteractionsQuery {
            from: same.clone(),
            to: same,
            ..Default::default()
        }
        .filter(&TimeZone::UTC)
        .is_ok());
    }

    #[test]
    fn parameters_read_as_the_cli_flags() {
        let q = InteractionsQuery {
            from: Some("2025-11-24".into()),
            queue: Some("301".into()),
            channel: Some("Phone".into()),
            outcome: Some("answered".into()),
            ..Default::default()
        };
        let f = q.filter(&TimeZone::UTC).unwrap();
        assert_eq!(f.from, Some(1_763_942_400_000));
        assert_eq!(f.queue_id, Some(301));
        assert_eq!(f.media_type.as_deref(), Some("phone"));
        assert_eq!(f.outcome, Some(Outcome::Answered));
        let r = ReportQuery {
            interval: Some("15m".into()),
            by: Some("queue,channel".into()),
            ..Default::default()
        }
        .options(&server())
        .unwrap();
        assert_eq!(r.interval, Interval::Min15);
        assert_eq!(r.short_abandon_ms, 5_000);
    }

    #[test]
    fn unknown_parameters_are_named_once_decoded() {
        let check = |q: &str, known: &[&str]| {
            let uri: axum::http::Uri = format!("/api/x{q}").parse().unwrap();
            only_known_params(&uri, known)
        };
        assert!(check("", NO_PARAMS).is_ok());
        assert!(check("?fr%6Fm=2025-11-24&short%5Fabandon=5s", REPORT_PARAMS).is_ok());
        let e = check("?x=1", NO_PARAMS).unwrap_err();
        assert_eq!(e, "unknown parameter \"x\" (this route takes none)");
        let e = check("?from=1&%71uue=313", INTERACTIONS_PARAMS).unwrap_err();
        assert!(
            e.starts_with("unknown parameter \"quue\" (this route takes from, to,"),
            "{e}"
        );
        let e = check("?tenant", NO_PARAMS).unwrap_err();
        assert!(e.contains("\"tenant\""), "{e}");
        let e = check("?from=1&to=2&from=3", REPORT_PARAMS).unwrap_err();
        assert_eq!(e, "parameter \"from\" given twice (each takes one value)");
        let e = check("?from=1&agent=%ff%fe", INTERACTIONS_PARAMS).unwrap_err();
        assert_eq!(
            e,
            "parameter \"agent\" is not UTF-8 once its percent escapes are decoded"
        );
        assert!(check("?agent=%C3%A9t%C3%A9+x", INTERACTIONS_PARAMS).is_ok());
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let q = InteractionsQuery {
            queue: Some("three".into()),
            ..Default::default()
        };
        let e = q.filter(&TimeZone::UTC).unwrap_err();
        assert_eq!(e.name, "queue");
        let e = ReportQuery {
            interval: Some("7m".into()),
            ..Default::default()
        }
        .options(&server())
        .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
    }
}
