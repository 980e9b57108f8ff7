//! End-to-end properties of the generated stream, checked with an independent
//! reading of docs/METRICS.md §2-§3 (written from the document, not from the
//! simulator's code), legs and contacts included.

// Test code: a failed unwrap is a failed test (the library crates deny these).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use ccvault_event::lifecycle_rank;
use ccvault_sim::{simulate, simulate_with_truth, Quirks, SimConfig, SimSummary, Truth};
use serde_json::Value;

fn run(cfg: &SimConfig) -> (Vec<u8>, Vec<Truth>, SimSummary) {
    let mut out = Vec::new();
    let mut truths = Vec::new();
    let s = simulate_with_truth(cfg, &mut out, &mut |t| truths.push(t)).expect("simulate");
    (out, truths, s)
}

fn small(seed: u64, quirks: Quirks) -> SimConfig {
    SimConfig {
        seed,
        days: 1,
        agents: 12,
        quirks,
        ..SimConfig::default()
    }
}

/// Decoded payload bytes of a line (shape 1 or 2), or None when ingest would
/// quarantine it.
fn payload(line: &[u8]) -> Option<Vec<u8>> {
    record(line).map(|(p, _)| p)
}

/// Payload bytes and, for an envelope, its `publishTime` in ms.
fn record(line: &[u8]) -> Option<(Vec<u8>, Option<i64>)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let obj = v.as_object()?;
    if obj.contains_key("payload") && obj.contains_key("messageId") {
        let p = obj.get("payload")?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(p).ok()?;
        let inner: Value = serde_json::from_slice(&bytes).ok()?;
        let o = inner.as_object()?;
        if o.len() == 1 && o.values().all(Value::is_object) {
            let publish = obj
                .get("publishTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond());
            return Some((bytes, publish));
        }
        return None;
    }
    if obj.len() == 1 && obj.values().all(Value::is_object) {
        return Some((line.to_vec(), None));
    }
    None
}

fn lines(out: &[u8]) -> Vec<&[u8]> {
    assert_eq!(out.last(), Some(&b'\n'));
    out[..out.len() - 1].split(|&b| b == b'\n').collect()
}

/// One distinct event: payload bytes, parsed, the smallest `publishTime` of the
/// records that hold it.
type Distinct = (Vec<u8>, Value, Option<i64>);

/// Distinct decoded events (METRICS: same payload bytes = same event).
fn distinct_events(out: &[u8]) -> (Vec<Distinct>, usize) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut evs: Vec<Distinct> = Vec::new();
    let mut bad = 0;
    for l in lines(out) {
        match record(l) {
            Some((p, publish)) => match seen.get(&p) {
                Some(&i) => {
                    let kept = &mut evs[i].2;
                    *kept = match (*kept, publish) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => {
                    let v: Value = serde_json::from_slice(&p).expect("payload is JSON");
                    seen.insert(p.clone(), evs.len());
                    evs.push((p, v, publish));
                }
            },
            None => bad += 1,
        }
    }
    (evs, bad)
}

// ---- docs/METRICS.md §1-§2, independently ------------------------------------------

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null() && v.as_str() != Some(""))
}

fn num(v: Option<&Value>) -> Option<i64> {
    match present(v)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> Option<bool> {
    match present(v)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match present(v)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// docs/METRICS.md §2 event time of a file's record (no receipt or import time here).
fn event_time(e: &Value, publish: Option<i64>) -> Option<i64> {
    let pos = |x: Option<i64>| x.filter(|&x| x > 0);
    pos(num(e.get("interactionEventTS")).map(|s| s * 1000))
        .or_else(|| pos(num(e.get("statusEventTS")).map(|s| s * 1000)))
        .or_else(|| pos(num(e.get("msgInfo").and_then(|m| m.get("timestamp")))))
        .or_else(|| pos(publish))
        .or_else(|| pos(num(e.get("eventTS")).map(|s| s * 1000)))
}

/// `originalInteractionGuid` of an event: an `attachedDatum` entry or a body field.
fn original_guid(e: &Value) -> Option<String> {
    let datum = e
        .get("attachedData")
        .and_then(|a| a.get("attachedDatum"))
        .and_then(Value::as_array)
        .and_then(|items| {
            items.iter().find_map(|d| {
                (d.get("attachedDataKey").and_then(Value::as_str)
                    == Some("originalInteractionGuid"))
                .then(|| text(d.get("attachedDataValue")))
                .flatten()
            })
        });
    datum.or_else(|| text(e.get("originalInteractionGuid")))
}

/// docs/METRICS.md §3 `contactId` and `legIndex`: walk the parents while they are archived.
fn contact_of(guid: &str, parents: &HashMap<String, Option<String>>) -> (String, i64) {
    let mut seen = vec![guid.to_string()];
    let mut cur = guid.to_string();
    while let Some(Some(p)) = parents.get(&cur) {
        if seen.contains(p) {
            panic!("the simulator made a cycle at {p}");
        }
        seen.push(p.clone());
        cur = p.clone();
    }
    (cur, seen.len() as i64 - 1)
}

struct E {
    t: i64,
    ty: String,
    v: Value,
}

/// docs/METRICS.md §3 derived from the distinct events of one interaction; `parents`
/// holds the `parentGuid` of every interaction in the stream.
fn derive(mut raw: Vec<Distinct>, parents: &HashMap<String, Option<String>>) -> Truth {
    raw.sort_by(|(ab, av, ap), (bb, bv, bp)| {
        let key = |v: &Value, p: Option<i64>| {
            let e = &v["Interaction"];
            let seq = num(e.get("msgInfo").and_then(|m| m.get("sequenceId")));
            (
                event_time(e, p).expect("every simulated event has a time"),
                seq.is_none(),
                seq.unwrap_or(0),
                lifecycle_rank(e["event"].as_str().unwrap_or("")),
            )
        };
        key(av, *ap).cmp(&key(bv, *bp)).then_with(|| ab.cmp(bb))
    });
    let evs: Vec<E> = raw
        .into_iter()
        .map(|(_, v, p)| {
            let e = v["Interaction"].clone();
            E {
                t: event_time(&e, p).unwrap_or(0),
                ty: e["event"].as_str().unwrap_or("").to_string(),
                v: e,
            }
        })
        .collect();
    let first = |ty: &str| evs.iter().find(|e| e.ty == ty);
    let last = |ty: &str| evs.iter().rev().find(|e| e.ty == ty);
    let any = |ty: &str| evs.iter().any(|e| e.ty == ty);
    let attr = |f: &dyn Fn(&E) -> Option<String>| evs.iter().find_map(f);

    let guid = attr(&|e| text(e.v.get("interactionGUID"))).unwrap_or_default();
    let direction = if evs.iter().any(|e| {
        text(e.v.get("direction")).as_deref() == Some("out")
            || boolean(e.v.get("isOutboundCall")) == Some(true)
            || e.ty == "InteractionCustomerAccepted"
    }) {
        Some("out".to_string())
    } else if evs
        .iter()
        .any(|e| text(e.v.get("direction")).as_deref() == Some("in") || e.ty == "InteractionQueued")
    {
        Some("in".to_string())
    } else {
        None
    };
    let outbound = direction.as_deref() == Some("out");
    let created_at = first("InteractionCreated").map(|e| e.t);
    let queued_at = first("InteractionQueued").map(|e| e.t);
    let acc = evs.iter().position(|e| e.ty == "InteractionAccepted");
    let accepted_at = acc.map(|i| evs[i].t);
    let asg = acc.and_then(|i| {
        evs[..i]
            .iter()
            .rev()
            .find(|e| e.ty == "InteractionAssigned")
    });
    let assigned_at = asg.map(|e| e.t);
    let agent_id = acc.and_then(|i| {
        text(evs[i].v.get("agentId")).or_else(|| asg.and_then(|e| text(e.v.get("agentId"))))
    });
    let connected_at = if outbound {
        first("InteractionCustomerAccepted").map(|e| e.t)
    } else {
        accepted_at
    };
    let wrap_start_at = first("InteractionPostProcess").map(|e| e.t);
    let wrap_end_at = wrap_start_at.and_then(|ws| {
        evs.iter()
            .find(|e| e.ty == "InteractionEndPostProcess" && e.t >= ws)
            .map(|e| e.t)
    });
    let ended_at = last("InteractionDeleted").map(|e| e.t);
    let talk_end = wrap_start_at.or(ended_at);
    let mut hold_count = 0;
    let mut max_hold_ms: Option<i64> = None;
    let hold_ms = match (connected_at, talk_end) {
        (Some(c), Some(te)) => {
            let mut tot = 0;
            let mut on: Option<i64> = None;
            let mut longest = |held: i64| max_hold_ms = max_hold_ms.max(Some(held));
            for e in evs.iter().filter(|e| e.ty == "LineHoldStatus") {
                if e.t < c || e.t > te {
                    continue;
                }
                match (boolean(e.v.get("status")), on) {
                    (Some(true), None) => {
                        on = Some(e.t);
                        hold_count += 1;
                    }
                    (Some(false), Some(s)) => {
                        tot += e.t - s;
                        longest(e.t - s);
                        on = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = on {
                tot += te - s;
                longest(te - s);
            }
            Some(tot)
        }
        _ => None,
    };
    let d = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) if a >= b => Some(a - b),
        _ => None,
    };
    let talk_ms = d(talk_end, connected_at).and_then(|s| hold_ms.and_then(|h| d(Some(s), Some(h))));
    let wrap_ms = d(wrap_end_at, wrap_start_at);
    let deleted = last("InteractionDeleted");
    let outcome = if connected_at.is_some() {
        "answered"
    } else if !outbound && queued_at.is_some() && (any("InteractionUnqueued") || deleted.is_some())
    {
        "abandoned"
    } else if outbound && deleted.is_some() {
        "unanswered"
    } else if deleted.is_some() {
        "ended"
    } else {
        "open"
    };
    let parent_guid = parents.get(&guid).cloned().flatten();
    let kind = if outbound {
        "outbound"
    } else if queued_at.is_some() {
        "inbound"
    } else if parent_guid.is_some() {
        "consult"
    } else {
        "unqueued"
    };
    let (contact_id, leg_index) = contact_of(&guid, parents);
    let media_type =
        attr(&|e| text(e.v.get("mediaType")).map(|m| m.to_lowercase())).or_else(|| {
            attr(&|e| {
                Some(
                    match num(e.v.get("resourceType"))? {
                        0 | 4 => "phone",
                        1 => "email",
                        2 | 3 => "chat",
                        _ => return None,
                    }
                    .to_string(),
                )
            })
        });
    let rejects = |reason: Option<i64>| {
        evs.iter()
            .filter(|e| e.ty == "InteractionRejected")
            .filter(|e| reason.is_none_or(|r| num(e.v.get("rejectReason")) == Some(r)))
            .count() as i64
    };
    let abandon_ms = (outcome == "abandoned")
        .then(|| {
            d(
                first("InteractionUnqueued").or(deleted).map(|e| e.t),
                queued_at,
            )
        })
        .flatten();
    Truth {
        tenant: guid.rsplit('-').next().unwrap_or("").to_string(),
        interaction_guid: guid,
        media_type,
        queue_id: evs.iter().find_map(|e| num(e.v.get("queueId"))),
        direction,
        parent_guid,
        contact_id,
        leg_index,
        kind: kind.to_string(),
        outcome: outcome.to_string(),
        agent_id,
        created_at,
        queued_at,
        assigned_at,
        accepted_at,
        connected_at,
        wrap_start_at,
        wrap_end_at,
        ended_at,
        queue_ms: d(assigned_at, queued_at),
        ring_ms: d(accepted_at, assigned_at),
        wait_ms: d(accepted_at, queued_at),
        dial_ms: if outbound {
            d(connected_at, accepted_at)
        } else {
            None
        },
        talk_ms,
        hold_ms,
        max_hold_ms,
        hold_count,
        wrap_ms,
        handle_ms: talk_ms.map(|t| t + hold_ms.unwrap_or(0) + wrap_ms.unwrap_or(0)),
        abandon_ms,
        offer_count: evs.iter().filter(|e| e.ty == "InteractionAssigned").count() as i64,
        reject_count: rejects(None),
        reject_timeouts: rejects(Some(1)),
        reject_refusals: rejects(Some(2)),
        transferred: any("InteractionTransferRequest"),
        hangup_initiator: deleted.and_then(|e| text(e.v.get("hangupInitiator"))),
        call_hangup_reason: deleted.and_then(|e| text(e.v.get("callHangupReason"))),
        disposition_code: deleted
            .and_then(|e| text(e.v.get("dispositionCode")))
            .or_else(|| {
                last("InteractionEndPostProcess").and_then(|e| text(e.v.get("dispositionCode")))
            }),
        complete: deleted.is_some(),
        event_count: evs.len() as i64,
        anomalies: Vec::new(),
    }
}

fn check_truth(out: &[u8], truths: &[Truth]) {
    let (evs, _) = distinct_events(out);
    let mut by_guid: HashMap<String, Vec<Distinct>> = HashMap::new();
    for (b, v, p) in evs {
        if let Some(e) = v.get("Interaction") {
            let g = e["interactionGUID"].as_str().expect("guid").to_string();
            by_guid.entry(g).or_default().push((b, v, p));
        }
    }
    // First present originalInteractionGuid that is not the leg's own, in any
    // order: the simulator writes one value per leg.
    let parents: HashMap<String, Option<String>> = by_guid
        .iter()
        .map(|(g, evs)| {
            let p = evs
                .iter()
                .filter_map(|(_, v, _)| original_guid(&v["Interaction"]))
                .find(|p| p != g);
            (g.clone(), p)
        })
        .collect();
    assert!(!truths.is_empty());
    assert_eq!(by_guid.len(), truths.len(), "one truth per interaction");
    for t in truths {
        let evs = by_guid
            .remove(&t.interaction_guid)
            .unwrap_or_else(|| panic!("no events for {}", t.interaction_guid));
        let got = derive(evs, &parents);
        assert_eq!(&got, t, "derived vs truth for {}", t.interaction_guid);
    }
}

#[test]
fn truth_matches_an_independent_reading_without_quirks() {
    let (out, truths, s) = run(&small(11, Quirks::none()));
    assert_eq!(s.interactions, truths.len() as u64);
    check_truth(&out, &truths);
    let outcomes: HashSet<&str> = truths.iter().map(|t| t.outcome.as_str()).collect();
    for o in ["answered", "abandoned", "unanswered", "ended"] {
        assert!(outcomes.contains(o), "outcome {o} occurs");
    }
    assert!(truths.iter().any(|t| t.reject_count > 0));
    assert!(truths.iter().any(|t| t.hold_count > 0));
    // Legs with two holds, where the longest is not their sum.
    assert!(truths
        .iter()
        .any(|t| t.hold_count > 1 && t.max_hold_ms < t.hold_ms));
    assert!(truths.iter().any(|t| t.transferred));
    assert!(truths
        .iter()
        .any(|t| t.abandon_ms.is_some_and(|a| a < 5000)));
    assert!(truths
        .iter()
        .any(|t| t.wrap_ms.is_none() && t.outcome == "answered"));
    // Every kind of leg, every channel, contacts of up to three legs, some whose
    // first leg is not in the stream, and both reasons of a reject.
    let kinds: HashSet<&str> = truths.iter().map(|t| t.kind.as_str()).collect();
    for k in ["inbound", "outbound", "consult", "unqueued"] {
        assert!(kinds.contains(k), "kind {k} occurs");
    }
    let media: HashSet<Option<&str>> = truths.iter().map(|t| t.media_type.as_deref()).collect();
    for m in ["phone", "chat", "email"] {
        assert!(media.contains(&Some(m)), "mediaType {m} occurs");
    }
    assert!(truths
        .iter()
        .any(|t| t.kind == "outbound" && t.queued_at.is_some()));
    assert!(truths.iter().any(|t| t.leg_index == 2));
    let guids: HashSet<&str> = truths.iter().map(|t| t.interaction_guid.as_str()).collect();
    assert!(truths
        .iter()
        .any(|t| t.leg_index == 1 && !guids.contains(t.contact_id.as_str())));
    assert!(truths.iter().any(|t| t.reject_timeouts > 0));
    assert!(truths.iter().any(|t| t.reject_refusals > 0));
}

#[test]
fn truth_matches_an_independent_reading_with_all_quirks() {
    let q = Quirks {
        duplicate_rate: 0.05,
        envelope_rate: 0.3,
        malformed_rate: 0.01,
        ..Quirks::default()
    };
    for seed in [3, 4] {
        let (out, truths, s) = run(&small(seed, q.clone()));
        assert!(
            s.duplicates > 0 && s.envelopes > 0 && s.malformed > 0,
            "{s:?}"
        );
        check_truth(&out, &truths);
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = small(5, Quirks::default());
    let mut a = Vec::new();
    let mut b = Vec::new();
    let sa = simulate(&cfg, &mut a).expect("a");
    let sb = simulate(&cfg, &mut b).expect("b");
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let mut c = Vec::new();
    simulate(&small(6, Quirks::default()), &mut c).expect("c");
    assert_ne!(a, c);
}

#[test]
fn every_good_line_is_shape_1_or_2() {
    let q = Quirks {
        malformed_rate: 0.01,
        ..Quirks::default()
    };
    let (out, _, s) = run(&small(8, q));
    let all = lines(&out);
    assert_eq!(all.len() as u64, s.lines);
    let (_, bad) = distinct_events(&out);
    assert_eq!(bad as u64, s.malformed, "exactly the malformed lines fail");
    assert!(s.malformed > 0);
    let families: HashSet<String> = all
        .iter()
        .filter_map(|l| payload(l))
        .filter_map(|p| {
            let v: Value = serde_json::from_slice(&p).ok()?;
            v.as_object()?.keys().next().cloned()
        })
        .collect();
    for f in [
        "Interaction",
        "AgentStatusChange",
        "AgentProvChange",
        "QueueStatsTick",
    ] {
        assert!(families.contains(f), "family {f}");
    }
}

#[test]
fn summary_counts_add_up() {
    let (out, _, s) = run(&small(9, Quirks::default()));
    assert_eq!(lines(&out).len() as u64, s.lines);
    assert_eq!(s.lines, s.events + s.duplicates + s.malformed);
    let (evs, _) = distinct_events(&out);
    assert_eq!(
        evs.len() as u64,
        s.events,
        "event lines are pairwise distinct"
    );
}

fn interaction_events(out: &[u8]) -> Vec<Value> {
    distinct_events(out)
        .0
        .into_iter()
        .filter_map(|(_, v, _)| v.get("Interaction").cloned())
        .collect()
}

#[test]
fn quirks_off_means_clean_stream() {
    let (out, _, s) = run(&small(10, Quirks::none()));
    assert_eq!((s.duplicates, s.envelopes, s.malformed), (0, 0, 0));
    for l in lines(&out) {
        let v: Value = serde_json::from_slice(l).expect("json");
        assert!(v.get("messageId").is_none());
        assert!(v.get("QueueStatsTick").is_none());
    }
    let mut last_seq: BTreeMap<String, i64> = BTreeMap::new();
    for l in lines(&out) {
        let v: Value = serde_json::from_slice(l).expect("json");
        let (_, e) = v.as_object().and_then(|o| o.iter().next()).expect("family");
        let m = &e["msgInfo"];
        let inst = m["instanceId"]
            .as_str()
            .expect("msgInfo filled")
            .to_string();
        let seq = m["sequenceId"].as_i64().expect("numeric sequenceId");
        let prev = last_seq.insert(inst, seq);
        assert!(prev.is_none_or(|p| p < seq), "in publish order");
    }
    for e in interaction_events(&out) {
        assert!(e["interactionEventTS"].is_i64());
        assert!(e["event"].as_str().is_some_and(|t| lifecycle_rank(t) != 7
            || t == "RecordingStatus"
            || t == "InteractionTransferRequest"));
        if let Some(q) = e.get("queueId") {
            assert!(q.is_i64());
        }
        if let Some(st) = e.get("status") {
            assert!(st.is_boolean() || st.is_string() && e["event"] == "RecordingStatus");
        }
    }
}

#[test]
fn each_quirk_switch_does_what_it_says() {
    let base = Quirks::none();
    let count = |q: Quirks, f: &dyn Fn(&Value) -> bool| {
        let (out, _, _) = run(&small(12, q));
        interaction_events(&out).iter().filter(|e| f(e)).count()
    };
    let mixed = |e: &Value| {
        e.get("queueId").is_some_and(Value::is_string)
            || e.get("interactionEventTS").is_some_and(Value::is_string)
    };
    assert_eq!(count(base.clone(), &mixed), 0);
    assert!(
        count(
            Quirks {
                mixed_types: true,
                ..base.clone()
            },
            &mixed
        ) > 0
    );

    let empty = |e: &Value| e["msgInfo"].as_object().is_some_and(|m| m.is_empty());
    assert_eq!(count(base.clone(), &empty), 0);
    let q = Quirks {
        empty_msg_info: true,
        ..base.clone()
    };
    assert!(count(q.clone(), &empty) > 0);
    // Never both missing: METRICS event time stays defined by the event itself.
    assert_eq!(
        count(q, &|e| empty(e) && e.get("interactionEventTS").is_none()),
        0
    );

    let no_ts = |e: &Value| e.get("interactionEventTS").is_none();
    assert_eq!(count(base.clone(), &no_ts), 0);
    let q = Quirks {
        missing_event_ts: true,
        empty_msg_info: true,
        ..base.clone()
    };
    assert!(count(q.clone(), &no_ts) > 0);
    assert_eq!(
        count(q, &|e| no_ts(e) && e["msgInfo"].get("timestamp").is_none()),
        0
    );

    // Only eventTS: no interactionEventTS, empty msgInfo, always in an envelope.
    let (out, _, _) = run(&small(
        12,
        Quirks {
            weak_event_ts: true,
            ..base.clone()
        },
    ));
    let weak = lines(&out)
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_slice(l).ok()?;
            let e = serde_json::from_slice::<Value>(&payload(l)?).ok()?["Interaction"].clone();
            let bare = e.get("interactionEventTS").is_none()
                && e["msgInfo"].as_object().is_some_and(|m| m.is_empty());
            bare.then(|| v.get("publishTime").is_some() && e.get("eventTS").is_some())
        })
        .collect::<Vec<bool>>();
    assert!(!weak.is_empty() && weak.iter().all(|&in_envelope| in_envelope));

    let only_resource = |q: Quirks| {
        let (_, truths, _) = run(&small(12, q));
        let (out, _, _) = run(&small(12, Quirks::none()));
        let with_media: HashSet<String> = interaction_events(&out)
            .iter()
            .filter(|e| e.get("mediaType").is_some())
            .filter_map(|e| e["interactionGUID"].as_str().map(str::to_string))
            .collect();
        truths
            .iter()
            .filter(|t| t.media_type.is_some() && !with_media.contains(&t.interaction_guid))
            .count()
    };
    assert_eq!(only_resource(base.clone()), 0);
    let q = Quirks {
        resource_type_only: true,
        ..base.clone()
    };
    let (out, truths, _) = run(&small(12, q));
    let mut media_seen: HashMap<String, bool> = HashMap::new();
    for e in interaction_events(&out) {
        let g = e["interactionGUID"].as_str().unwrap_or("").to_string();
        *media_seen.entry(g).or_default() |= e.get("mediaType").is_some();
    }
    let resource_only: Vec<&Truth> = truths
        .iter()
        .filter(|t| media_seen.get(&t.interaction_guid) == Some(&false))
        .collect();
    assert!(!resource_only.is_empty());
    assert!(resource_only.iter().all(|t| t.media_type.is_some()));

    let untimed = |e: &Value| e.get("statusEventTS").is_none();
    let agent_lines = |q: Quirks| -> Vec<Value> {
        let (out, _, _) = run(&small(12, q));
        lines(&out)
            .iter()
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .filter_map(|v| v.get("AgentStatusChange").cloned())
            .collect()
    };
    assert!(!agent_lines(base.clone()).iter().any(untimed));
    let with = agent_lines(Quirks {
        untimed_agent_events: true,
        ..base.clone()
    });
    assert!(with.iter().any(untimed));
    assert!(with
        .iter()
        .filter(|e| untimed(e))
        .all(|e| e["msgInfo"].as_object().is_some_and(|m| m.is_empty())));

    let future = |e: &Value| e["event"] == "InteractionFutureThing";
    assert_eq!(count(base.clone(), &future), 0);
    assert!(
        count(
            Quirks {
                unknown_types: true,
                ..base.clone()
            },
            &future
        ) > 0
    );

    let (_, _, s) = run(&small(
        12,
        Quirks {
            duplicate_rate: 0.02,
            ..base.clone()
        },
    ));
    assert!(s.duplicates > 0 && s.envelopes == 0 && s.malformed == 0);
    let (_, _, s) = run(&small(
        12,
        Quirks {
            envelope_rate: 0.5,
            ..base.clone()
        },
    ));
    assert!(s.envelopes > s.events / 3 && s.duplicates == 0);
    let (_, _, s) = run(&small(
        12,
        Quirks {
            malformed_rate: 0.01,
            ..base.clone()
        },
    ));
    assert!(s.malformed > 0 && s.duplicates == 0);
}

#[test]
fn reorder_window_bounds_the_disorder() {
    let window = 3000;
    let q = Quirks {
        reorder_window_ms: window,
        ..Quirks::none()
    };
    let (out, _, _) = run(&small(13, q));
    let mut max_seen = i64::MIN;
    let mut inversions = 0;
    for l in lines(&out) {
        let v: Value = serde_json::from_slice(l).expect("json");
        let (_, e) = v.as_object().and_then(|o| o.iter().next()).expect("family");
        let t = num(e["msgInfo"].get("timestamp")).expect("timestamp");
        if t < max_seen {
            inversions += 1;
            // +1 s: publish delays and agent-event spacing ride on top of the window.
            assert!(
                max_seen - t <= window + 1000,
                "displaced {} ms",
                max_seen - t
            );
        }
        max_seen = max_seen.max(t);
    }
    assert!(inversions > 0);
}

#[test]
fn size_limits() {
    let cfg = SimConfig {
        events: Some(5000),
        ..small(14, Quirks::default())
    };
    let (out, truths, s) = run(&cfg);
    assert_eq!(s.lines, 5000);
    assert_eq!(lines(&out).len(), 5000);
    assert_eq!(truths.len() as u64, s.interactions);

    let cfg = SimConfig {
        interactions: Some(300),
        ..small(15, Quirks::none())
    };
    let (out, truths, s) = run(&cfg);
    assert_eq!(truths.len(), 300);
    assert_eq!(s.interactions, 300);
    check_truth(&out, &truths);

    let cfg = SimConfig {
        days: 2,
        ..small(16, Quirks::none())
    };
    let (_, truths, _) = run(&cfg);
    let day2 = cfg.start_ms + 86_400_000;
    assert!(truths
        .iter()
        .any(|t| t.created_at.is_some_and(|c| c >= day2)));
    assert!(truths
        .iter()
        .all(|t| t.created_at.is_some_and(|c| c < day2 + 86_400_000)));

    let (out, _, s) = run(&SimConfig {
        events: Some(0),
        ..small(17, Quirks::default())
    });
    assert!(out.is_empty() && s.lines == 0);
}

#[test]
fn tenant_and_guid_shape() {
    let cfg = SimConfig {
        tenant: "acmecorp01".into(),
        ..small(18, Quirks::none())
    };
    let (_, truths, _) = run(&cfg);
    for t in &truths {
        assert_eq!(t.tenant, "acmecorp01");
        let parts: Vec<&str> = t.interaction_guid.split('-').collect();
        assert_eq!(parts.len(), 6, "{}", t.interaction_guid);
        assert_eq!(parts[0], "int");
        assert!(i64::from_str_radix(parts[1], 16).is_ok());
        assert_eq!(parts[2].len(), 25);
        assert!(parts[2].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(["phone", "chat", "email"].contains(&parts[3]), "{parts:?}");
    }
}

#[test]
fn tiny_and_empty_centers_terminate() {
    for agents in [0, 1, 3] {
        let cfg = SimConfig {
            agents,
            interactions: Some(40),
            ..small(19, Quirks::default())
        };
        let (out, truths, s) = run(&cfg);
        assert_eq!(s.interactions, 40, "agents={agents}");
        check_truth(&out, &truths);
        if agents == 0 {
            assert!(truths.iter().all(|t| t.outcome != "answered"));
        }
    }
}
