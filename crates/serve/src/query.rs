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

/// A data route's query that names a parameter the route does not take is
/// refused, naming it: a misspelt filter (`quue=313`) would otherwise be
/// ignored and the answer be about everything. Names are compared decoded
/// (percent escapes and `+`, as the parameters' values are read), so
/// `fr%6Fm` is `from`.
pub fn only_known_params(uri: &axum::http::Uri, known: &[&str]) -> Result<(), String> {
    // axum's own query decoding (serde_urlencoded over form_urlencoded),
    // the one the routes read their parameters with.
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| format!("unreadable query: {}", e.body_text()))?;
    for (name, _) in &pairs {
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
        Ok(InteractionFilter {
            from: instant("from", self.from.as_deref(), tz)?,
            to: instant("to", self.to.as_deref(), tz)?,
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
    /// The options `ccvault report` builds from the same flags (and its
    /// defaults: 1h, all legs together, 20s, 5s).
    pub fn options(&self, tz: &TimeZone) -> Result<ReportOptions, BadParam> {
        Ok(ReportOptions {
            interval: param("interval", self.interval.as_deref(), from_str::<Interval>)?
                .unwrap_or(Interval::Hour1),
            by: param("by", self.by.as_deref(), from_str::<GroupBy>)?.unwrap_or_default(),
            tz: tz.clone(),
            sla: param("sla", self.sla.as_deref(), from_str::<Sla>)?
                .map_or_else(default_sla, Ok)?,
            short_abandon_ms: param(
                "short_abandon",
                self.short_abandon.as_deref(),
                parse_duration_ms,
            )?
            .unwrap_or(5_000),
            from: instant("from", self.from.as_deref(), tz)?,
            to: instant("to", self.to.as_deref(), tz)?,
        })
    }
}

/// `report --sla`'s default.
pub fn default_sla() -> Result<Sla, BadParam> {
    from_str::<Sla>("20s").map_err(|why| BadParam { name: "sla", why })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        .options(&TimeZone::UTC)
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
        .options(&TimeZone::UTC)
        .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
    }
}
