//! What a report groups by (`--by`, any combination of queue, agent and
//! channel) and its service-level thresholds (`--sla`, one or one per
//! channel), docs/METRICS.md §4.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::ParseChoiceError;
use super::ReportLeg;
use crate::timearg::parse_duration_ms;

/// `--by`: the groupings besides the interval; none = every leg together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupBy {
    pub queue: bool,
    pub agent: bool,
    pub channel: bool,
}

impl GroupBy {
    pub const ALL: GroupBy = GroupBy {
        queue: false,
        agent: false,
        channel: false,
    };
    pub const QUEUE: GroupBy = GroupBy {
        queue: true,
        ..GroupBy::ALL
    };
    pub const AGENT: GroupBy = GroupBy {
        agent: true,
        ..GroupBy::ALL
    };
    pub const CHANNEL: GroupBy = GroupBy {
        channel: true,
        ..GroupBy::ALL
    };

    /// Whether rows are split at all.
    pub fn is_all(self) -> bool {
        self == GroupBy::ALL
    }

    /// The group of one leg.
    pub fn key_of(self, s: &ReportLeg<'_>) -> GroupKey {
        GroupKey {
            queue_id: self.queue.then_some(s.queue_id),
            agent_id: self.agent.then(|| s.agent_id.map(str::to_owned)),
            media_type: self.channel.then(|| s.media_type.map(str::to_owned)),
        }
    }
}

impl fmt::Display for GroupBy {
    /// `all`, or the groupings in `queue,agent,channel` order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.queue, "queue"),
            (self.agent, "agent"),
            (self.channel, "channel"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            f.write_str("all")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

impl FromStr for GroupBy {
    type Err = ParseChoiceError;
    /// `queue,channel`; `all` or `none` alone for no grouping.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut by = GroupBy::ALL;
        for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            match part.as_str() {
                "all" | "none" => {}
                "queue" => by.queue = true,
                "agent" => by.agent = true,
                "channel" => by.channel = true,
                _ => {
                    return Err(ParseChoiceError {
                        what: "grouping",
                        given: s.to_string(),
                        choices: "queue, agent, channel (comma-separated), or all",
                    })
                }
            }
        }
        Ok(by)
    }
}

/// The group of a row besides its interval: the value of each grouping in
/// force (`None` = not grouped by it; `Some(None)` = legs without a value,
/// a group of their own that sorts first).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Option<String>>,
}

impl GroupKey {
    /// The group of legs of queue `q` in a report by queue alone.
    pub fn queue(q: Option<i64>) -> GroupKey {
        GroupKey {
            queue_id: Some(q),
            ..GroupKey::default()
        }
    }

    /// The group of agent `a`'s legs in a report by agent alone.
    pub fn agent(a: Option<String>) -> GroupKey {
        GroupKey {
            agent_id: Some(a),
            ..GroupKey::default()
        }
    }

    /// `all`, or the group's values (`queue 311 · agent a1 · phone`).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(q) = &self.queue_id {
            parts.push(q.map_or_else(|| "no queue".to_string(), |q| format!("queue {q}")));
        }
        if let Some(a) = &self.agent_id {
            parts.push(a.clone().unwrap_or_else(|| "no agent".to_string()));
        }
        if let Some(m) = &self.media_type {
            parts.push(m.clone().unwrap_or_else(|| "no channel".to_string()));
        }
        if parts.is_empty() {
            "all".to_string()
        } else {
            parts.join(" · ")
        }
    }
}

/// `--sla`: the service-level threshold on `waitMs`, one for every leg or
/// one per `mediaType` with `*` for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sla {
    /// The threshold of channels not listed (`*`), in ms.
    pub default_ms: i64,
    /// Per `mediaType` (lower case), in ms.
    pub by_channel: BTreeMap<String, i64>,
}

impl Sla {
    /// One threshold for every channel.
    pub fn uniform(ms: i64) -> Sla {
        Sla {
            default_ms: ms,
            by_channel: BTreeMap::new(),
        }
    }

    /// The threshold of a leg of channel `media_type`.
    pub fn threshold_ms(&self, media_type: Option<&str>) -> i64 {
        media_type
            .and_then(|m| self.by_channel.get(m))
            .copied()
            .unwrap_or(self.default_ms)
    }
}

impl Default for Sla {
    fn default() -> Self {
        Sla::uniform(20_000)
    }
}

/// An `--sla` value that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SLA {given:?}: {why} (e.g. 20s, or phone=20s,chat=60s,email=4h,*=30s)")]
pub struct ParseSlaError {
    given: String,
    why: String,
}

impl FromStr for Sla {
    type Err = ParseSlaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ParseSlaError {
            given: s.to_string(),
            why,
        };
        if !s.contains('=') {
            return parse_duration_ms(s).map(Sla::uniform).map_err(bad);
        }
        let mut sla = Sla::default();
        // A channel given twice would have its last value win in silence.
        let mut seen: Vec<String> = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (channel, duration) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("{entry:?} is not CHANNEL=DURATION")))?;
            let ms = parse_duration_ms(duration).map_err(bad)?;
            let channel = channel.trim().to_lowercase();
            if seen.contains(&channel) {
                return Err(bad(format!("{channel:?} is given twice")));
            }
            seen.push(channel.clone());
            match channel {
                c if c == "*" => sla.default_ms = ms,
                c if c.is_empty() => return Err(bad(format!("{entry:?} names no channel"))),
                c => {
                    sla.by_channel.insert(c, ms);
                }
            }
        }
        Ok(sla)
    }
}

impl fmt::Display for Sla {
    /// `20s`, or `chat=1m,phone=20s,*=30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The largest unit that divides evenly: short, and parses back.
        let d = |ms: i64| match ms {
            ms if ms != 0 && ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
            ms if ms != 0 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
            ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
            ms => format!("{ms}ms"),
        };
        if self.by_channel.is_empty() {
            return f.write_str(&d(self.default_ms));
        }
        for (channel, ms) in &self.by_channel {
            write!(f, "{channel}={},", d(*ms))?;
        }
        write!(f, "*={}", d(self.default_ms))
    }
}
