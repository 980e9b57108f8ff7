use super::*;
use crate::summary::{summarize, Direction, LegKind, Summary};
use crate::test_util::*;
use jiff::Timestamp;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn ny() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn sample_summaries() -> Vec<Summary> {
    [GUID1, GUID2, GUID3]
        .iter()
        .map(|g| summarize(&inputs(&sample_of(g))).unwrap())
        .collect()
}

/// A summary with only what a test sets.
pub(super) fn base(offered_at: i64) -> Summary {
    Summary {
        interaction_guid: Some("g".into()),
        contact_id: Some("g".into()),
        leg_index: 0,
        parent_guid: None,
        kind: LegKind::Unqueued,
        tenant: None,
        media_type: None,
        queue_id: None,
        direction: None,
        created_at: None,
        queued_at: None,
        offered_at,
        offer_count: 0,
        reject_count: 0,
        reject_timeouts: 0,
        reject_refusals: 0,
        accepted_at: None,
        assigned_at: None,
        agent_id: None,
        connected_at: None,
        wrap_start_at: None,
        wrap_end_at: None,
        ended_at: None,
        hold_count: 0,
        hold_ms: None,
        max_hold_ms: None,
        queue_ms: None,
        ring_ms: None,
        wait_ms: None,
        dial_ms: None,
        talk_ms: None,
        wrap_ms: None,
        handle_ms: None,
        abandon_ms: None,
        outcome: Outcome::Open,
        hangup_initiator: None,
        call_hangup_reason: None,
        disposition_code: None,
        transferred: false,
        complete: false,
        event_count: 1,
        anomalies: vec![],
    }
}

fn answered(at: i64, wait: i64) -> Summary {
    Summary {
        queued_at: Some(at),
        kind: LegKind::Inbound,
        outcome: Outcome::Answered,
        wait_ms: Some(wait),
        ..base(at)
    }
}

fn abandoned(at: i64, after: i64) -> Summary {
    Summary {
        queued_at: Some(at),
        kind: LegKind::Inbound,
        outcome: Outcome::Abandoned,
        abandon_ms: Some(after),
        ..base(at)
    }
}

fn outbound_unanswered(at: i64) -> Summary {
    Summary {
        direction: Some(Direction::Out),
        kind: LegKind::Outbound,
        outcome: Outcome::Unanswered,
        ..base(at)
    }
}

fn report_of(opts: ReportOptions, summaries: &[Summary]) -> Report {
    let mut r = Report::new(opts);
    for s in summaries {
        r.add(s);
    }
    r
}

#[test]
fn parses_intervals_and_groupings() {
    assert_eq!("15m".parse(), Ok(Interval::Min15));
    assert_eq!("30M".parse(), Ok(Interval::Min30));
    assert_eq!("1h".parse(), Ok(Interval::Hour1));
    assert_eq!(" 1d".parse(), Ok(Interval::Day1));
    assert!("2h".parse::<Interval>().is_err());
    assert_eq!("queue".parse(), Ok(GroupBy::QUEUE));
    assert_eq!("Agent".parse(), Ok(GroupBy::AGENT));
    assert!("tenant".parse::<GroupBy>().is_err());
}

#[test]
fn utc_buckets_are_fixed() {
    let t = ms("2025-11-23T12:13:20.120Z");
    let utc = TimeZone::UTC;
    assert_eq!(
        bucket(t, Interval::Min15, &utc),
        (ms("2025-11-23T12:00:00Z"), ms("2025-11-23T12:15:00Z"))
    );
    assert_eq!(
        bucket(t, Interval::Min30, &utc),
        (ms("2025-11-23T12:00:00Z"), ms("2025-11-23T12:30:00Z"))
    );
    assert_eq!(
        bucket(t, Interval::Day1, &utc),
        (ms("2025-11-23T00:00:00Z"), ms("2025-11-24T00:00:00Z"))
    );
    // A bucket's start belongs to it, its end does not.
    let start = ms("2025-11-23T12:15:00Z");
    assert_eq!(bucket(start, Interval::Min15, &utc).0, start);
    // Out of the calendar's range: fixed UTC buckets, no panic.
    assert_eq!(bucket(-1, Interval::Hour1, &utc), (-3_600_000, 0));
    assert_eq!(bucket(i64::MAX, Interval::Day1, &ny()).1, i64::MAX);
    // The lowest instants: the bucket that holds them starts below
    // i64::MIN, so it is cut there, and still holds them.
    for interval in [Interval::Min15, Interval::Hour1, Interval::Day1] {
        for t in [i64::MIN, i64::MIN + 1] {
            let (start, end) = bucket(t, interval, &ny());
            assert!(start <= t && t < end, "{interval:?} {t}: {start}..{end}");
        }
    }
}

/// The calendar's last days, whose local end lies past the latest
/// instant: still local days, each starting where the one before ends.
#[test]
fn the_calendars_last_local_days_are_local_days() {
    for zone in [
        "Pacific/Pago_Pago",
        "Pacific/Kiritimati",
        "America/New_York",
    ] {
        let tz = TimeZone::get(zone).unwrap();
        // 9999-12-30T06:00 in Pago Pago, and the day before it.
        for t in [253_402_189_200_000_i64, 253_402_163_999_000] {
            let (start, end) = bucket(t, Interval::Day1, &tz);
            assert!(start <= t && t < end, "{zone} {t}: {start}..{end}");
            let local = Timestamp::from_millisecond(t)
                .unwrap()
                .to_zoned_datetime(tz.clone());
            let midnight = local.start_of_day().unwrap().timestamp().as_millisecond();
            assert_eq!(start, midnight, "{zone} {t}");
            let before = bucket(start - 1, Interval::Day1, &tz);
            assert_eq!(before.1, start, "{zone} {t}: the day before overlaps");
        }
    }
}

#[test]
fn day_buckets_follow_local_midnight_across_dst() {
    let tz = ny();
    // 2025-11-02: EDT -> EST, a 25-hour day.
    let (start, end) = bucket(ms("2025-11-02T12:00:00Z"), Interval::Day1, &tz);
    assert_eq!(start, ms("2025-11-02T04:00:00Z")); // 00:00 EDT
    assert_eq!(end, ms("2025-11-03T05:00:00Z")); // 00:00 EST
    assert_eq!(end - start, 25 * 3_600_000);
    // Late evening local time is still that day.
    assert_eq!(
        bucket(ms("2025-11-03T04:59:59.999Z"), Interval::Day1, &tz).0,
        start
    );
    // 2025-03-09: EST -> EDT, a 23-hour day.
    let (start, end) = bucket(ms("2025-03-09T12:00:00Z"), Interval::Day1, &tz);
    assert_eq!(end - start, 23 * 3_600_000);
}

#[test]
fn hour_buckets_split_the_repeated_hour() {
    let tz = ny();
    // 01:30 EDT and 01:30 EST are different hours.
    assert_eq!(
        bucket(ms("2025-11-02T05:30:00Z"), Interval::Hour1, &tz),
        (ms("2025-11-02T05:00:00Z"), ms("2025-11-02T06:00:00Z"))
    );
    assert_eq!(
        bucket(ms("2025-11-02T06:30:00Z"), Interval::Hour1, &tz),
        (ms("2025-11-02T06:00:00Z"), ms("2025-11-02T07:00:00Z"))
    );
    // Spring forward: 01:00 EST runs straight into 03:00 EDT.
    assert_eq!(
        bucket(ms("2025-03-09T06:59:00Z"), Interval::Hour1, &tz),
        (ms("2025-03-09T06:00:00Z"), ms("2025-03-09T07:00:00Z"))
    );
    // A zone 45 minutes off the hour aligns to its own wall clock.
    let kathmandu = TimeZone::get("Asia/Kathmandu").unwrap();
    assert_eq!(
        bucket(ms("2025-11-23T12:13:00Z"), Interval::Hour1, &kathmandu),
        (ms("2025-11-23T11:15:00Z"), ms("2025-11-23T12:15:00Z"))
    );
}

#[test]
fn half_hour_offset_change_starts_a_bucket() {
    // Lord Howe shifts by 30 minutes: 2025-04-06 02:00 +11 -> 01:30 +10:30
    // at 2025-04-05T15:00Z. Buckets must not overlap across it.
    let tz = TimeZone::get("Australia/Lord_Howe").unwrap();
    let before = bucket(ms("2025-04-05T14:59:00Z"), Interval::Hour1, &tz);
    let after = bucket(ms("2025-04-05T15:00:00Z"), Interval::Hour1, &tz);
    assert_eq!(before.1, ms("2025-04-05T15:00:00Z"));
    assert_eq!(after.0, ms("2025-04-05T15:00:00Z"));
    assert!(before.0 < before.1 && after.0 < after.1);
}

#[test]
fn sample_report_by_hour() {
    let r = report_of(ReportOptions::default(), &sample_summaries());
    let json = serde_json::to_string(&r.rows()).unwrap();
    // All three offeredAt (12:13:22, 12:18:21, 12:21:40 UTC) are in 12:00-13:00.
    // Two inbound legs and an outbound call (not offered, not in service level).
    // serviceLevel = 0 in SLA / (1 answered + 1 abandoned - 0 short) = 0;
    // abandonRate = (1 - 0) / (2 offered - 0) = 0.5; maxWait = max(79000, 48000).
    let expected = concat!(
        r#"[{"intervalStart":1763899200000,"intervalEnd":1763902800000,"#,
        r#""offered":2,"contacts":2,"transferredIn":0,"answered":1,"abandoned":1,"#,
        r#""shortAbandoned":0,"answeredInSla":0,"serviceLevel":0.0,"abandonRate":0.5,"#,
        r#""asaMs":79000,"maxWaitMs":79000,"unqueued":0,"consults":0,"outbound":1,"#,
        r#""outboundConnected":0,"handled":1,"ahtMs":350000,"avgTalkMs":276000,"#,
        r#""avgHoldMs":45000,"avgWrapMs":29000,"holds":1,"maxHoldMs":45000,"rejects":1,"transfers":0}]"#
    );
    assert_eq!(json, expected);
    let text = render_text(&r.rows(), r.options());
    assert!(text.contains("2025-11-23T12:00:00.000Z"), "{text}");
}

#[test]
fn grouped_rows_carry_their_key_and_sort_by_interval_then_key() {
    let mut summaries = sample_summaries();
    summaries[0].offered_at = ms("2025-11-23T11:59:00Z");
    let opts = ReportOptions {
        by: GroupBy::QUEUE,
        ..ReportOptions::default()
    };
    let mut no_queue = base(ms("2025-11-23T12:30:00Z"));
    no_queue.queue_id = None;
    summaries.push(no_queue);
    let rows = report_of(opts, &summaries).rows();
    let keys: Vec<(i64, GroupKey)> = rows
        .iter()
        .map(|r| (r.interval_start, r.group.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (ms("2025-11-23T11:00:00Z"), GroupKey::queue(Some(311))),
            (ms("2025-11-23T12:00:00Z"), GroupKey::queue(None)),
            (ms("2025-11-23T12:00:00Z"), GroupKey::queue(Some(311))),
            (ms("2025-11-23T12:00:00Z"), GroupKey::queue(Some(312))),
        ]
    );
    let json = serde_json::to_value(&rows[1]).unwrap();
    assert_eq!(json["queueId"], serde_json::Value::Null);
    assert!(json.get("agentId").is_none());

    let opts = ReportOptions {
        by: GroupBy::AGENT,
        ..ReportOptions::default()
    };
    let rows = report_of(opts, &sample_summaries()).rows();
    let agents: Vec<_> = rows.iter().map(|r| r.group.clone()).collect();
    assert_eq!(
        agents,
        vec![
            GroupKey::agent(None),
            GroupKey::agent(Some("agH4s8KpWz1XcV6bNm2QrTa".into())),
            GroupKey::agent(Some("agR2t9LmQx7VbN3cZk5WpYe".into())),
        ]
    );
    let text = serde_json::to_string(&rows[2]).unwrap();
    assert!(text.starts_with(
        r#"{"intervalStart":1763899200000,"intervalEnd":1763902800000,"agentId":"agR2t9LmQx7VbN3cZk5WpYe","offered":1,"#
    ));
}

#[test]
fn service_level_and_abandon_rate() {
    let t = ms("2025-11-23T12:00:00Z");
    let summaries = vec![
        answered(t, 20_000), // in SLA (<=)
        answered(t, 20_001),
        answered(t, 3_000),
        // Answered without queuedAt (unqueued): not a service metric.
        Summary {
            outcome: Outcome::Answered,
            wait_ms: Some(1),
            ..base(t)
        },
        abandoned(t, 4_999), // short
        abandoned(t, 5_000), // not short
        abandoned(t, 60_000),
        outbound_unanswered(t),
    ];
    let rows = report_of(ReportOptions::default(), &summaries).rows();
    let r = &rows[0];
    assert_eq!((r.offered, r.answered), (6, 3));
    assert_eq!((r.abandoned, r.short_abandoned), (3, 1));
    assert_eq!((r.unqueued, r.outbound, r.outbound_connected), (1, 1, 0));
    assert_eq!(r.handled, 4); // the unqueued answer is handled work
    assert_eq!(r.contacts, 7); // every leg 0 but the outbound call
    assert_eq!(r.answered_in_sla, 2);
    // 2 / (3 answered + 3 abandoned - 1 short) = 0.4
    assert_eq!(r.service_level, Some(0.4));
    // (3 - 1) / (6 offered - 1 short) = 0.4
    assert_eq!(r.abandon_rate, Some(0.4));
    // asa over answered with waitMs: (20000 + 20001 + 3000) / 3 = 14333.67
    assert_eq!(r.asa_ms, Some(14_334));
    assert_eq!(r.max_wait_ms, Some(60_000)); // an abandon's abandonMs
    assert_eq!(r.aht_ms, None); // no handleMs anywhere

    // Options change the thresholds.
    let opts = ReportOptions {
        sla: Sla::uniform(3_000),
        short_abandon_ms: 10_000,
        ..ReportOptions::default()
    };
    let r = &report_of(opts, &summaries).rows()[0];
    assert_eq!((r.answered_in_sla, r.short_abandoned), (1, 2));

    // Null divisors: only outbound unanswered calls.
    let rows = report_of(ReportOptions::default(), &[outbound_unanswered(t)]).rows();
    assert_eq!((rows[0].service_level, rows[0].abandon_rate), (None, None));
    assert_eq!((rows[0].asa_ms, rows[0].max_wait_ms), (None, None));
    let json = serde_json::to_string(&rows[0]).unwrap();
    assert!(json.contains(r#""serviceLevel":null,"abandonRate":null"#));
    // Only short abandons: abandonRate's divisor is offered - short = 0.
    let rows = report_of(ReportOptions::default(), &[abandoned(t, 1_000)]).rows();
    assert_eq!((rows[0].service_level, rows[0].abandon_rate), (None, None));
}

#[test]
fn rounding_is_half_away_from_zero() {
    assert_eq!(mean_half_away(5, 2), Some(3)); // 2.5
    assert_eq!(mean_half_away(-5, 2), Some(-3));
    assert_eq!(mean_half_away(7, 3), Some(2)); // 2.33
    assert_eq!(mean_half_away(8, 3), Some(3)); // 2.67
    assert_eq!(mean_half_away(0, 0), None);
    assert_eq!(ratio4(1, 3), Some(0.3333));
    assert_eq!(ratio4(2, 3), Some(0.6667));
    assert_eq!(ratio4(1, 32), Some(0.0313)); // 0.03125
    assert_eq!(ratio4(3, 32), Some(0.0938)); // 0.09375
    assert_eq!(ratio4(0, 5), Some(0.0));
    assert_eq!(ratio4(1, 0), None);
    assert_eq!(serde_json::to_string(&ratio4(2, 3)).unwrap(), "0.6667");
    assert_eq!(serde_json::to_string(&ratio4(1, 32)).unwrap(), "0.0313");

    // Means in a report: talk 1000 and 1001 average to 1000.5 -> 1001.
    let t = ms("2025-11-23T12:00:00Z");
    let mut a = answered(t, 0);
    a.talk_ms = Some(1_000);
    let mut b = answered(t, 1);
    b.talk_ms = Some(1_001);
    let r = &report_of(ReportOptions::default(), &[a, b]).rows()[0];
    assert_eq!(r.avg_talk_ms, Some(1_001));
    assert_eq!(r.asa_ms, Some(1)); // 0.5 -> 1
}

#[test]
fn window_filters_by_offered_at() {
    let t = ms("2025-11-23T12:00:00Z");
    let opts = ReportOptions {
        from: Some(t),
        to: Some(t + 60_000),
        ..ReportOptions::default()
    };
    let mut r = Report::new(opts);
    assert!(r.add(&answered(t, 1)));
    assert!(!r.add(&answered(t - 1, 1)));
    assert!(!r.add(&answered(t + 60_000, 1)));
    assert_eq!(r.rows()[0].offered, 1);
}

#[test]
fn merging_partials_equals_one_pass() {
    let tz = ny();
    let opts = ReportOptions {
        interval: Interval::Min15,
        by: GroupBy::QUEUE,
        tz,
        ..ReportOptions::default()
    };
    let mut all = Vec::new();
    for i in 0..40i64 {
        let mut s = if i % 3 == 0 {
            abandoned(ms("2025-11-02T05:00:00Z") + i * 170_000, i * 500)
        } else {
            answered(ms("2025-11-02T05:00:00Z") + i * 170_000, i * 997)
        };
        s.queue_id = Some(i % 4);
        s.hold_count = (i % 2) as u64;
        s.max_hold_ms = (i % 2 == 1).then_some((i * 7_919) % 50_000);
        all.push(s);
    }
    let one = report_of(opts.clone(), &all);
    let mut left = report_of(opts.clone(), &all[..17]);
    let right = report_of(opts.clone(), &all[17..]);
    left.merge(right);
    let json = |r: &Report| serde_json::to_string(&r.rows()).unwrap();
    assert_eq!(json(&left), json(&one));
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(json(&report_of(opts, &reversed)), json(&one));
}

#[test]
fn rows_taken_as_complete_while_legs_come_equal_one_fold() {
    // Eight days around the fall-back of New York (a 25-hour day) and the
    // half-hour change of Lord Howe Island, in zones whose sub-day buckets
    // do not fall on UTC hours: every row taken early must be final, and
    // they must come in the order of the whole report.
    let start = ms("2025-11-01T00:00:00Z");
    let lord_howe = ms("2025-10-04T12:00:00Z");
    let zones = [
        (ny(), start),
        (TimeZone::get("Asia/Kathmandu").unwrap(), start),
        (TimeZone::get("Australia/Lord_Howe").unwrap(), lord_howe),
        (TimeZone::UTC, start),
    ];
    for (tz, start) in zones {
        let legs: Vec<Summary> = (0..8 * 24 * 60 / 7)
            .map(|i: i64| {
                let mut s = answered(start + i * 7 * 60_000, (i * 1_009) % 40_000);
                s.queue_id = Some(i % 3);
                s
            })
            .collect();
        for interval in [
            Interval::Min15,
            Interval::Min30,
            Interval::Hour1,
            Interval::Day1,
        ] {
            let opts = ReportOptions {
                interval,
                by: GroupBy::QUEUE,
                tz: tz.clone(),
                ..ReportOptions::default()
            };
            let one = report_of(opts.clone(), &legs).rows();
            // Taken before each leg, and before every 5th only.
            for every in [1, 5] {
                let mut report = Report::new(opts.clone());
                let (mut rows, mut batches) = (Vec::new(), 0);
                for (i, s) in legs.iter().enumerate() {
                    if i % every == 0 {
                        let done = report.take_complete(s.offered_at);
                        batches += usize::from(!done.is_empty());
                        rows.extend(done);
                    }
                    report.add(s);
                }
                rows.extend(report.take_complete(i64::MAX));
                assert_eq!(rows, one, "{tz:?} {interval} every {every}");
                assert!(batches > 2, "{tz:?} {interval}: rows came at the end only");
            }
        }
    }
}

#[test]
fn longest_hold_of_a_row_is_the_longest_hold_of_any_leg() {
    let at = ms("2025-11-23T12:05:00Z");
    let held = |s: Summary, count: u64, longest: i64| Summary {
        hold_count: count,
        max_hold_ms: Some(longest),
        ..s
    };
    let r = report_of(
        ReportOptions::default(),
        &[
            held(answered(at, 1_000), 2, 30_000),
            // Every kind counts, as for `holds`: an outbound call's hold too.
            held(outbound_unanswered(at + 60_000), 1, 95_000),
            answered(at + 120_000, 2_000),
            // A later hour without any hold: no longest hold.
            answered(at + 3_600_000, 3_000),
        ],
    );
    let rows = r.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].holds, rows[0].max_hold_ms), (3, Some(95_000)));
    assert_eq!((rows[1].holds, rows[1].max_hold_ms), (0, None));
    let text = render_text(&rows, r.options());
    assert!(text.contains("MAX HOLD"), "{text}");
    assert!(text.contains("1m 35s"), "{text}");
}

#[test]
fn human_table_names_the_zone() {
    let opts = ReportOptions {
        interval: Interval::Day1,
        tz: ny(),
        ..ReportOptions::default()
    };
    let r = report_of(opts, &sample_summaries());
    let text = render_text(&r.rows(), r.options());
    assert!(text.contains("America/New_York"), "{text}");
    assert!(text.contains("2025-11-23T00:00:00.000-05:00"), "{text}");
    assert!(text.contains("50.00%"), "{text}");
    let empty = render_text(&[], r.options());
    assert!(empty.contains("no interactions"));
}

#[test]
fn the_column_list_is_the_serde_field_list_for_every_grouping() {
    let mut summaries = sample_summaries();
    summaries.push(abandoned(ms("2025-11-23T12:40:00Z"), 2_000));
    for by in [GroupBy::ALL, GroupBy::QUEUE, GroupBy::AGENT] {
        let opts = ReportOptions {
            by,
            ..ReportOptions::default()
        };
        let rows = report_of(opts, &summaries).rows();
        assert!(!rows.is_empty());
        let cols: Vec<_> = report_columns(by).collect();
        for row in &rows {
            crate::columns::assert_columns_match_serde(&cols, row);
        }
    }
}

#[test]
fn csv_and_text_follow_the_column_list() {
    let opts = ReportOptions {
        by: GroupBy::QUEUE,
        ..ReportOptions::default()
    };
    let r = report_of(opts, &sample_summaries());
    let rows = r.rows();
    let mut w = crate::columns::CsvWriter::new(Vec::new(), report_columns(GroupBy::QUEUE)).unwrap();
    for row in &rows {
        w.write(row).unwrap();
    }
    let csv = String::from_utf8(w.finish().unwrap()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "intervalStart,intervalEnd,queueId,offered,contacts,transferredIn,answered,abandoned,\
         shortAbandoned,answeredInSla,serviceLevel,abandonRate,asaMs,maxWaitMs,unqueued,consults,\
         outbound,outboundConnected,handled,ahtMs,avgTalkMs,avgHoldMs,avgWrapMs,holds,maxHoldMs,\
         rejects,transfers"
    );
    // Queue 311 holds the answered and the abandoned sample: SL 0, abandon rate 0.5.
    assert_eq!(
        lines.next().unwrap(),
        "1763899200000,1763902800000,311,2,2,0,1,1,0,0,0.0,0.5,79000,79000,0,0,0,0,1,350000,276000,45000,29000,1,45000,1,0"
    );
    let text = render_text(&rows, r.options());
    let header = text.lines().nth(3).unwrap();
    let labels: Vec<String> = human_report_columns(GroupBy::QUEUE)
        .map(|c| c.label.unwrap().to_uppercase())
        .collect();
    assert_eq!(
        header
            .split("  ")
            .filter(|h| !h.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>(),
        labels
    );
}
