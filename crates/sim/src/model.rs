//! The simulator's own record of an interaction: its legs' fixed attributes and the
//! list of events it will emit, in intended (= canonical, see `finalize`) order.

use std::cell::{Cell, RefCell};

use crate::Truth;

pub(crate) const NO_AGENT: u32 = u32::MAX;

/// A queue of the simulated center: its 8x8 identity and the means that drive its load.
pub(crate) struct QueueDef {
    pub id: i64,
    pub name: &'static str,
    pub channel: &'static str,
    pub media: &'static str,
    /// The `resourceType` codes 8x8 normalizes to `media` (one is picked per leg).
    pub resource_types: &'static [i64],
    /// Mean handling time (talk for a call, reply for a chat or an email).
    pub talk_mean_s: f64,
    pub patience_mean_s: f64,
    /// Nobody waits longer than this before giving up.
    pub patience_max_s: i64,
    pub hold_p: f64,
    /// Share of the inbound load that arrives as this channel's contacts.
    pub load: f64,
}

pub(crate) const QUEUES: [QueueDef; 5] = [
    QueueDef {
        id: 311,
        name: "Billing",
        channel: "Billing Line",
        media: "phone",
        resource_types: &[0, 0, 4],
        talk_mean_s: 240.0,
        patience_mean_s: 150.0,
        patience_max_s: 1800,
        hold_p: 0.25,
        load: 0.93,
    },
    QueueDef {
        id: 313,
        name: "Support",
        channel: "Support Line",
        media: "phone",
        resource_types: &[0, 0, 4],
        talk_mean_s: 330.0,
        patience_mean_s: 200.0,
        patience_max_s: 1800,
        hold_p: 0.3,
        load: 0.93,
    },
    QueueDef {
        id: 314,
        name: "Chat Support",
        channel: "Web Chat",
        media: "chat",
        resource_types: &[2, 3],
        talk_mean_s: 420.0,
        patience_mean_s: 300.0,
        patience_max_s: 1800,
        hold_p: 0.0,
        load: 0.93,
    },
    QueueDef {
        id: 315,
        name: "Email Support",
        channel: "Support Mailbox",
        media: "email",
        resource_types: &[1],
        talk_mean_s: 480.0,
        // A mail is rarely withdrawn: hours, not minutes.
        patience_mean_s: 4.0 * 3600.0,
        patience_max_s: 3 * 3600,
        hold_p: 0.0,
        load: 0.5,
    },
    QueueDef {
        id: 312,
        name: "Sales",
        channel: "Sales Outbound",
        media: "phone",
        resource_types: &[0],
        talk_mean_s: 180.0,
        patience_mean_s: 0.0,
        patience_max_s: 0,
        hold_p: 0.1,
        load: 0.0,
    },
];
pub(crate) const Q_BILLING: u8 = 0;
pub(crate) const Q_SUPPORT: u8 = 1;
pub(crate) const Q_CHAT: u8 = 2;
pub(crate) const Q_EMAIL: u8 = 3;
pub(crate) const Q_SALES: u8 = 4;
/// The inbound queues; their index here is their queue index.
pub(crate) const INBOUND: [u8; 4] = [Q_BILLING, Q_SUPPORT, Q_CHAT, Q_EMAIL];

/// docs/METRICS.md §3: the channel 8x8 normalizes a `resourceType` code to.
pub(crate) fn media_of_resource_type(code: i64) -> Option<&'static str> {
    match code {
        0 | 4 => Some("phone"),
        1 => Some("email"),
        2 | 3 => Some("chat"),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Created,
    Queued,
    Assigned,
    Rejected,
    Deassigned,
    Accepted,
    CustomerAccepted,
    LineHold,
    Recording,
    TransferRequest,
    FutureThing,
    PostProcess,
    EndPostProcess,
    Unqueued,
    Deleted,
}

impl Kind {
    /// docs/METRICS.md §2 lifecycle rank (v2: Deassigned after EndPostProcess).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Kind::Created => 0,
            Kind::Queued => 1,
            Kind::Assigned => 2,
            Kind::Rejected => 3,
            Kind::Accepted => 4,
            Kind::CustomerAccepted => 5,
            Kind::LineHold => 6,
            Kind::Recording | Kind::TransferRequest | Kind::FutureThing => 7,
            Kind::PostProcess => 8,
            Kind::EndPostProcess => 9,
            Kind::Deassigned => 10,
            Kind::Unqueued => 11,
            Kind::Deleted => 12,
        }
    }

    /// Events of this kind carry `queueId` (unless the leg is a consultation).
    pub(crate) fn carries_queue_id(self) -> bool {
        matches!(
            self,
            Kind::Queued
                | Kind::Assigned
                | Kind::Accepted
                | Kind::CustomerAccepted
                | Kind::Unqueued
        )
    }

    /// Events of this kind carry `mediaType` (unless the leg has only `resourceType`).
    pub(crate) fn carries_media_type(self) -> bool {
        matches!(
            self,
            Kind::Queued
                | Kind::Assigned
                | Kind::Accepted
                | Kind::CustomerAccepted
                | Kind::LineHold
                | Kind::TransferRequest
                | Kind::Deleted
        )
    }

    /// Events of this kind carry `resourceType`.
    pub(crate) fn carries_resource_type(self) -> bool {
        matches!(
            self,
            Kind::Created | Kind::Queued | Kind::Assigned | Kind::Rejected | Kind::Deleted
        )
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Created => "InteractionCreated",
            Kind::Queued => "InteractionQueued",
            Kind::Assigned => "InteractionAssigned",
            Kind::Rejected => "InteractionRejected",
            Kind::Deassigned => "InteractionDeassigned",
            Kind::Accepted => "InteractionAccepted",
            Kind::CustomerAccepted => "InteractionCustomerAccepted",
            Kind::LineHold => "LineHoldStatus",
            Kind::Recording => "RecordingStatus",
            Kind::TransferRequest => "InteractionTransferRequest",
            Kind::FutureThing => "InteractionFutureThing",
            Kind::PostProcess => "InteractionPostProcess",
            Kind::EndPostProcess => "InteractionEndPostProcess",
            Kind::Unqueued => "InteractionUnqueued",
            Kind::Deleted => "InteractionDeleted",
        }
    }
}

pub(crate) const INITIATORS: [&str; 3] = ["CUSTOMER", "AGENT", "SYSTEM"];
pub(crate) const INIT_CUSTOMER: u8 = 0;
pub(crate) const INIT_AGENT: u8 = 1;
pub(crate) const INIT_SYSTEM: u8 = 2;

pub(crate) const HANGUP_REASONS: [&str; 3] = [
    "CEC_DISCONNECT_NORMAL",
    "CEC_DISCONNECT_NOANSWER",
    "CEC_DISCONNECT_BUSY",
];
pub(crate) const REASON_NORMAL: u8 = 0;
pub(crate) const REASON_NOANSWER: u8 = 1;
pub(crate) const REASON_BUSY: u8 = 2;

/// Disposition: 0 none, > 0 a numeric code, < 0 the text `DISP_TEXT[-d - 1]`.
pub(crate) const DISP_TEXT: [&str; 5] = ["NO_ANSWER", "BUSY", "SALE", "NO_SALE", "CALLBACK"];
pub(crate) const DISP_NO_ANSWER: i64 = -1;
pub(crate) const DISP_BUSY: i64 = -2;

pub(crate) fn disposition_text(d: i64) -> Option<String> {
    if d > 0 {
        Some(d.to_string())
    } else if d < 0 {
        DISP_TEXT.get((-d - 1) as usize).map(|s| (*s).to_string())
    } else {
        None
    }
}

/// One planned event of an interaction.
#[derive(Clone, Debug)]
pub(crate) struct PlannedEvent {
    /// When it happened (ms). `interactionEventTS` is `r / 1000`.
    pub r: i64,
    /// Publish delay: `msgInfo.timestamp = r + d`.
    pub d: i64,
    pub kind: Kind,
    pub agent: u32,
    /// Kind-specific: rejectReason; hold/recording status (1/0); hangup initiator.
    pub a: i64,
    /// Kind-specific: disposition; hangup reason; transfer target queue index.
    pub b: i64,
    /// `interactionEventTS` emitted (quirk: missing on some events).
    pub has_ts: bool,
    /// `msgInfo` filled (quirk: `{}` on some events).
    pub has_msg: bool,
    /// Only `eventTS` in the body (quirk): no `interactionEventTS`, `msgInfo` `{}`,
    /// always inside a Pulsar envelope whose `publishTime` is `r + d`.
    pub weak: bool,
    /// Bits choosing text/number variants of typed fields (quirk: mixed types).
    pub mix: u8,
}

impl PlannedEvent {
    pub(crate) fn new(r: i64, d: i64, kind: Kind, agent: u32) -> Self {
        PlannedEvent {
            r,
            d,
            kind,
            agent,
            a: 0,
            b: 0,
            has_ts: true,
            has_msg: true,
            weak: false,
            mix: 0,
        }
    }

    /// True when docs/METRICS.md §2 canonical order is sure to put `self` before `next`
    /// (`next` later in the list, so with a larger `sequenceId` when both have one).
    pub(crate) fn surely_before(&self, next: &PlannedEvent) -> bool {
        let (ta, tb) = (self.t(), next.t());
        if ta != tb {
            return ta < tb;
        }
        match (self.has_msg, next.has_msg) {
            (true, _) => true,
            (false, true) => false,
            // Version 1 of the contract ranked Deassigned with Rejected: a tie that
            // involves it is left alone, so the order holds under either ranking.
            (false, false) if self.kind == Kind::Deassigned || next.kind == Kind::Deassigned => {
                false
            }
            (false, false) => self.kind.rank() < next.kind.rank(),
        }
    }

    pub(crate) fn with(mut self, a: i64, b: i64) -> Self {
        self.a = a;
        self.b = b;
        self
    }

    /// docs/METRICS.md §2 event time of this event as it will be rendered (a weak
    /// event's `publishTime` is `r + d`, like a `msgInfo.timestamp`).
    pub(crate) fn t(&self) -> i64 {
        if self.has_ts {
            self.r.div_euclid(1000) * 1000
        } else {
            self.r + self.d
        }
    }
}

/// Fixed attributes of one interaction leg, shared by all its queued output events.
pub(crate) struct LegAttrs {
    pub guid: String,
    pub queue: u8,
    pub outbound: bool,
    /// An agent consulting another agent: never queued.
    pub consult: bool,
    /// The leg this one was transferred from or consults for
    /// (`originalInteractionGuid`).
    pub parent: Option<String>,
    /// The first leg of the customer's contact (it may never be in the stream).
    pub contact: String,
    /// Legs between this one and `contact`.
    pub leg_index: u8,
    /// `resourceType` written on this leg's events.
    pub resource_type: i64,
    /// Quirk: no `mediaType` on any event of this leg, only `resourceType`.
    pub no_media: bool,
    /// `eventTS`: second of the offer; constant on every event that carries it.
    pub offer_sec: Cell<i64>,
    pub instance: u8,
    pub caller: String,
    pub phone: u64,
    pub txn: u64,
    pub priority: i64,
    /// Lines of this interaction not yet written; the truth is released at 0.
    pub remaining: Cell<u32>,
    pub truth: RefCell<Option<Truth>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_follows_the_rendered_fields() {
        let mut e = PlannedEvent::new(1_763_900_002_999, 40, Kind::Queued, NO_AGENT);
        assert_eq!(e.t(), 1_763_900_002_000);
        e.has_ts = false;
        assert_eq!(e.t(), 1_763_900_003_039);
    }

    #[test]
    fn guard_refuses_quirks_that_would_reorder() {
        // Without its interactionEventTS the Assigned reads as 11.040 s, after an
        // Accepted that reads as 11.000 s.
        let mut asg = PlannedEvent::new(10_990, 50, Kind::Assigned, 0);
        let acc = PlannedEvent::new(11_995, 5, Kind::Accepted, 0);
        assert!(asg.surely_before(&acc));
        asg.has_ts = false;
        assert!(!asg.surely_before(&acc));
        // Same second: an empty msgInfo sorts after one with a sequenceId.
        let del = PlannedEvent::new(20_100, 5, Kind::Deleted, NO_AGENT);
        let mut pp = PlannedEvent::new(20_120, 5, Kind::PostProcess, 0);
        assert!(del.surely_before(&pp));
        let mut del2 = del.clone();
        del2.has_msg = false;
        assert!(!del2.surely_before(&pp));
        // Both empty: lifecycle rank decides.
        pp.has_msg = false;
        assert!(!del2.surely_before(&pp));
        let mut pp2 = PlannedEvent::new(20_100, 5, Kind::PostProcess, 0);
        pp2.has_msg = false;
        assert!(pp2.surely_before(&del2));
    }
}
