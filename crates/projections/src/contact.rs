//! Legs and contacts (docs/METRICS.md §3): which customer contact a leg
//! belongs to, found by walking `parentGuid` links through the archive, and
//! the text `show` prints for a contact of several legs.
//!
//! Guarantees: [`resolve_contact`] terminates on any link graph (cycles
//! included), and its answer depends only on the links and on which
//! interactions are archived, never on the order they were learnt in.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use jiff::tz::TimeZone;

use crate::text::{for_terminal, table};
use crate::timefmt::format_opt_duration;
use crate::timeline::Timeline;

/// Where a leg sits in its contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPlace {
    /// The GUID of the contact's first leg (or of a parent never archived).
    pub contact_id: String,
    /// Links walked from the leg to `contact_id`.
    pub leg_index: u32,
}

/// Resolves `guid`'s contact: start at the leg with n = 0; while the current
/// GUID has a parent, move to it and add 1, stopping there if the parent is
/// not archived. A walk that meets a GUID twice (a cycle) belongs to the
/// smallest GUID on the cycle, at the number of distinct GUIDs met minus 1.
///
/// `parent_of` gives an archived interaction's `parentGuid`; `archived`
/// says whether an interaction of that GUID is in the archive.
pub fn resolve_contact(
    guid: &str,
    mut parent_of: impl FnMut(&str) -> Option<String>,
    mut archived: impl FnMut(&str) -> bool,
) -> ContactPlace {
    let mut path: Vec<String> = vec![guid.to_owned()];
    let mut met: BTreeSet<String> = BTreeSet::from([guid.to_owned()]);
    loop {
        let current = path.last().map_or(guid, String::as_str);
        let Some(parent) = parent_of(current) else {
            break;
        };
        if met.contains(&parent) {
            let start = path.iter().position(|g| *g == parent).unwrap_or(0);
            let smallest = path[start..].iter().min().cloned().unwrap_or(parent);
            return ContactPlace {
                contact_id: smallest,
                leg_index: u32::try_from(met.len() - 1).unwrap_or(u32::MAX),
            };
        }
        met.insert(parent.clone());
        let stop = !archived(&parent);
        path.push(parent);
        if stop {
            break;
        }
    }
    ContactPlace {
        leg_index: u32::try_from(path.len() - 1).unwrap_or(u32::MAX),
        contact_id: path.pop().unwrap_or_else(|| guid.to_owned()),
    }
}

/// Whether [`resolve_contact`] puts the leg `guid` at `legIndex` 0, known
/// from the leg alone: it has no parent, or is its own (a cycle of one,
/// which the walk meets at once). Any other parent is a link walked, so
/// the index is at least 1 (a cycle through others counts its distinct
/// GUIDs minus 1, at least 1). Lets a report count contacts without
/// walking.
pub fn opens_contact(guid: &str, parent: Option<&str>) -> bool {
    parent.is_none_or(|p| p == guid)
}

/// One leg of a contact as [`render_text`] prints it.
#[derive(Debug, Clone, Copy)]
pub struct LegText<'a> {
    pub timeline: &'a Timeline,
    /// The leg `show` was asked for.
    pub asked: bool,
}

/// `show GUID` of a contact of several legs: an overview of the legs in the
/// order given (`offeredAt`, then GUID), then each leg's own timeline
/// ([`crate::timeline::render_text`]) under a heading; the asked leg is
/// marked in both. Times print in UTC unless `tz` is given.
pub fn render_text(legs: &[LegText<'_>], tz: Option<&TimeZone>) -> String {
    let mut out = String::new();
    let contact = legs
        .iter()
        .find_map(|l| l.timeline.summary.contact_id.as_deref())
        .unwrap_or("-");
    let asked = legs
        .iter()
        .position(|l| l.asked)
        .map_or_else(String::new, |i| format!(", leg {} asked", i + 1));
    // Values from events are escaped outside the table as in it (the
    // headings printed GUIDs raw: an outside audit).
    let contact = for_terminal(contact);
    let _ = writeln!(out, "Contact {contact}: {} legs{asked}\n", legs.len());
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = legs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let s = &l.timeline.summary;
            vec![
                format!("{}{}", i + 1, if l.asked { "*" } else { "" }),
                s.leg_index.to_string(),
                dash(l.timeline.interaction_guid.clone()),
                dash(s.parent_guid.clone()),
                s.kind.as_str().to_string(),
                dash(s.media_type.clone()),
                dash(s.queue_id.map(|q| q.to_string())),
                dash(s.agent_id.clone()),
                s.outcome.as_str().to_string(),
                format_opt_duration(s.wait_ms),
                format_opt_duration(s.talk_ms),
                format_opt_duration(s.handle_ms),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "LEG",
            "INDEX",
            "INTERACTION",
            "FROM",
            "KIND",
            "MEDIA",
            "QUEUE",
            "AGENT",
            "OUTCOME",
            "WAIT",
            "TALK",
            "HANDLE",
        ],
        &rows,
        &[
            false, true, false, false, false, false, true, false, false, true, true, true,
        ],
    ));
    for (i, l) in legs.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n== Leg {} of {}: {} (legIndex {}{}) ==\n",
            i + 1,
            legs.len(),
            for_terminal(l.timeline.interaction_guid.as_deref().unwrap_or("-")),
            l.timeline.summary.leg_index,
            if l.asked { ", asked" } else { "" }
        );
        out.push_str(&crate::timeline::render_text(l.timeline, tz));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `links`: (leg, parent) of every archived leg that has a parent;
    /// `legs`: every archived leg.
    fn place(guid: &str, links: &[(&str, &str)], legs: &[&str]) -> (String, u32) {
        let parents: BTreeMap<&str, &str> = links.iter().copied().collect();
        let p = resolve_contact(
            guid,
            |g| parents.get(g).map(|p| p.to_string()),
            |g| legs.contains(&g),
        );
        (p.contact_id, p.leg_index)
    }

    #[test]
    fn a_leg_without_a_parent_is_its_own_contact() {
        assert_eq!(place("a", &[], &["a"]), ("a".into(), 0));
    }

    #[test]
    fn a_chain_of_transfers_leads_to_its_first_leg() {
        let links = [("b", "a"), ("c", "b")];
        let legs = ["a", "b", "c"];
        assert_eq!(place("c", &links, &legs), ("a".into(), 2));
        assert_eq!(place("b", &links, &legs), ("a".into(), 1));
        assert_eq!(place("a", &links, &legs), ("a".into(), 0));
    }

    #[test]
    fn a_parent_never_archived_is_the_contact_at_index_one() {
        // The first leg is missing from the stream: the chain stops at its
        // GUID, which names the contact.
        let links = [("b", "a"), ("c", "b")];
        assert_eq!(place("b", &links, &["b", "c"]), ("a".into(), 1));
        assert_eq!(place("c", &links, &["b", "c"]), ("a".into(), 2));
    }

    #[test]
    fn a_cycle_belongs_to_its_smallest_guid() {
        let links = [("b", "c"), ("c", "d"), ("d", "b")];
        let legs = ["b", "c", "d"];
        // From c: c, d, b, then c again: 3 distinct GUIDs.
        assert_eq!(place("c", &links, &legs), ("b".into(), 2));
        // A leg leading into the cycle counts itself too.
        let links = [("x", "c"), ("b", "c"), ("c", "d"), ("d", "b")];
        assert_eq!(place("x", &links, &["x", "b", "c", "d"]), ("b".into(), 3));
        // A leg that names itself never got past resolution of parentGuid
        // (its own GUID is no parent), but a two-leg loop is a cycle.
        let links = [("p", "q"), ("q", "p")];
        assert_eq!(place("q", &links, &["p", "q"]), ("p".into(), 1));
    }

    #[test]
    fn opens_contact_is_the_walk_at_index_zero() {
        // Every parent assignment of three archived legs, each parent
        // none, one of them (itself included) or a leg never archived.
        let legs = ["a", "b", "c"];
        let choices = [None, Some("a"), Some("b"), Some("c"), Some("x")];
        for i in 0..choices.len().pow(3) {
            let pick = |k: u32| choices[i / choices.len().pow(k) % choices.len()];
            let links: Vec<(&str, &str)> = (0..3u32)
                .filter_map(|k| Some((legs[k as usize], pick(k)?)))
                .collect();
            for (k, leg) in legs.iter().enumerate() {
                let walked = place(leg, &links, &legs).1 == 0;
                assert_eq!(
                    opens_contact(leg, pick(k as u32)),
                    walked,
                    "{leg} with links {links:?}"
                );
            }
        }
    }
}
