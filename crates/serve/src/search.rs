//! `/search`: legs by GUID or GUID prefix, agent, queue, outcome, time
//! range, and by a phone number or any attachedData value.
//!
//! Invariants:
//! - The structured part is the `interactions` filter ([`InteractionFilter`]),
//!   read from the projections in `offeredAt` order.
//! - A text (`q`) matches a leg whose GUID starts with it, or one of whose
//!   archived events carries it in an `attachedData` value or in a field
//!   whose name says it is a phone number (`phone`, `ani`, `dnis`, `number`,
//!   any case); digits are compared without separators, so `+44 20 7955`
//!   finds `442079550123`.
//! - Bounded work: at most [`MAX_RESULTS`] results and [`MAX_EXAMINED`]
//!   legs whose events are read; the result says when a bound was hit.

use anyhow::Result;
use ccvault_projections::{InteractionFilter, Projections, Summary};
use ccvault_store::ArchiveReader;
use serde_json::Value;

pub const MAX_RESULTS: usize = 200;
pub const MAX_EXAMINED: usize = 20_000;

/// What a search found.
#[derive(Debug, Default)]
pub struct Found {
    pub legs: Vec<Summary>,
    /// A bound stopped the search before the end of the range.
    pub truncated: bool,
}

/// Lower-case text, and its digits alone when it has at least 4.
struct Needle {
    text: String,
    digits: Option<String>,
}

impl Needle {
    fn new(q: &str) -> Needle {
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        Needle {
            text: q.to_lowercase(),
            digits: (digits.len() >= 4).then_some(digits),
        }
    }

    fn in_text(&self, s: &str) -> bool {
        if s.to_lowercase().contains(&self.text) {
            return true;
        }
        self.digits.as_deref().is_some_and(|d| {
            let only: String = s.chars().filter(char::is_ascii_digit).collect();
            only.contains(d)
        })
    }

    fn in_value(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.in_text(s),
            Value::Number(n) => self.in_text(&n.to_string()),
            Value::Bool(_) | Value::Null => false,
            Value::Array(a) => a.iter().any(|v| self.in_value(v)),
            // attachedData's entries name themselves (`attachedDataKey`):
            // the names are not what a search looks for.
            Value::Object(o) => o
                .iter()
                .any(|(k, v)| k != "attachedDataKey" && self.in_value(v)),
        }
    }
}

fn is_phone_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["phone", "ani", "dnis", "number"]
        .iter()
        .any(|p| k.contains(p))
}

/// Whether a payload carries the needle in attachedData or a phone field.
fn mentions(v: &Value, needle: &Needle) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| {
            if k == "attachedData" {
                return needle.in_value(v);
            }
            if is_phone_key(k) && needle.in_value(v) {
                return true;
            }
            mentions(v, needle)
        }),
        Value::Array(a) => a.iter().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// Whether any of `guid`'s archived events mentions the needle.
fn leg_mentions(reader: &mut ArchiveReader, guid: &str, needle: &Needle) -> Result<bool> {
    for rec in reader.interaction_records(guid)? {
        if rec.quarantined {
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&rec.payload) {
            if mentions(&v, needle) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The legs matching `filter` and, when given, the text `q`.
pub fn search(
    p: &Projections,
    reader: &mut ArchiveReader,
    filter: &InteractionFilter,
    q: Option<&str>,
) -> Result<Found> {
    let q = q.map(str::trim).filter(|q| !q.is_empty());
    let mut found = Found::default();
    let mut examined = 0usize;
    let needle = q.map(Needle::new);
    let mut failure: Option<anyhow::Error> = None;
    p.for_each_interaction(filter, |s| {
        let hit = match (q, &needle) {
            (Some(q), Some(needle)) => {
                let guid = s.interaction_guid.as_deref().unwrap_or("");
                if guid.starts_with(q) {
                    true
                } else if examined >= MAX_EXAMINED {
                    found.truncated = true;
                    return Ok(false);
                } else {
                    examined += 1;
                    match leg_mentions(reader, guid, needle) {
                        Ok(hit) => hit,
                        Err(e) => {
                            failure = Some(e);
                            return Ok(false);
                        }
                    }
                }
            }
            _ => true,
        };
        if hit {
            if found.legs.len() >= MAX_RESULTS {
                found.truncated = true;
                return Ok(false);
            }
            found.legs.push(s);
        }
        Ok(true)
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_and_attached_values_are_found() {
        let v: Value = serde_json::from_str(
            r#"{"Interaction":{"attachedData":{"attachedDatum":[{"attachedDataKey":"callingName","attachedDataValue":"Dana Whitfield"},{"attachedDataKey":"phoneNum","attachedDataValue":4420795550123}]},"ani":"+1 (555) 010-9999","queueId":301}}"#,
        )
        .unwrap();
        assert!(mentions(&v, &Needle::new("+44 20 7955")));
        assert!(mentions(&v, &Needle::new("dana")));
        assert!(mentions(&v, &Needle::new("555-010-9999")));
        assert!(
            !mentions(&v, &Needle::new("301")),
            "queueId is not a phone field"
        );
        assert!(!mentions(&v, &Needle::new("Jones")));
        // The entries' names are not values: every call has them.
        assert!(!mentions(&v, &Needle::new("callingName")));
    }
}
