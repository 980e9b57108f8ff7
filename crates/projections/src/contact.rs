//! Legs and contacts (docs/METRICS.md §3): which customer contact a leg
//! belongs to, found by walking `parentGuid` links through the archive.
//!
//! Guarantees: [`resolve_contact`] terminates on any link graph (cycles
//! included), and its answer depends only on the links and on which
//! interactions are archived, never on the order they were learnt in.

use std::collections::BTreeSet;

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
}
