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
    pub talk_mean_s: f64,
    pub patience_mean_s: f64,
    pub hold_p: f64,
}

pub(crate) const QUEUES: [QueueDef; 4] = [
    QueueDef {
        id: 311,
        name: "Billing",
        channel: "Billing Line",
        media: "phone",
        talk_mean_s: 240.0,
        patience_mean_s: 150.0,
        hold_p: 0.25,
    },
    QueueDef {
        id: 313,
        name: "Support",
        channel: "Support Line",
        media: "phone",
        talk_mean_s: 330.0,
        patience_mean_s: 200.0,
        hold_p: 0.3,
    },
    QueueDef {
        id: 314,
        name: "Chat Support",
        channel: "Web Chat",
        media: "chat",
        talk_mean_s: 420.0,
        patience_mean_s: 300.0,
        hold_p: 0.0,
    },
    QueueDef {
        id: 312,
        name: "Sales",
        channel: "Sales Outbound",
        media: "phone",
        talk_mean_s: 180.0,
        patience_mean_s: 0.0,
        hold_p: 0.1,
    },
];
pub(crate) const Q_BILLING: u8 = 0;
pub(crate) const Q_SUPPORT: u8 = 1;
pub(crate) const Q_CHAT: u8 = 2;
pub(crate) const Q_SALES: u8 = 3;
pub(crate) const INBOUND: [u8; 3] = [Q_BILLING, Q_SUPPORT, Q_CHAT];

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
    /// METRICS.md §2 lifecycle rank.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Kind::Created => 0,
            Kind::Queued => 1,
            Kind::Assigned => 2,
            Kind::Rejected | Kind::Deassigned => 3,
            Kind::Accepted => 4,
            Kind::CustomerAccepted => 5,
            Kind::LineHold => 6,
            Kind::Recording | Kind::TransferRequest | Kind::FutureThing => 7,
            Kind::PostProcess => 8,
            Kind::EndPostProcess => 9,
            Kind::Unqueued => 10,
            Kind::Deleted => 11,
        }
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
pub(crate) struct Ev {
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
    /// Bits choosing text/number variants of typed fields (quirk: mixed types).
    pub mix: u8,
}

impl Ev {
    pub(crate) fn new(r: i64, d: i64, kind: Kind, agent: u32) -> Self {
        Ev {
            r,
            d,
            kind,
            agent,
            a: 0,
            b: 0,
            has_ts: true,
            has_msg: true,
            mix: 0,
        }
    }

    /// True when METRICS §2 canonical order is sure to put `self` before `next`
    /// (`next` later in the list, so with a larger `sequenceId` when both have one).
    pub(crate) fn surely_before(&self, next: &Ev) -> bool {
        let (ta, tb) = (self.t(), next.t());
        if ta != tb {
            return ta < tb;
        }
        match (self.has_msg, next.has_msg) {
            (true, _) => true,
            (false, true) => false,
            (false, false) => self.kind.rank() < next.kind.rank(),
        }
    }

    pub(crate) fn with(mut self, a: i64, b: i64) -> Self {
        self.a = a;
        self.b = b;
        self
    }

    /// METRICS.md §2 event time of this event as it will be rendered.
    pub(crate) fn t(&self) -> i64 {
        if self.has_ts {
            self.r.div_euclid(1000) * 1000
        } else {
            self.r + self.d
        }
    }
}

/// Fixed attributes of one interaction leg, shared by all its queued output events.
pub(crate) struct Ix {
    pub guid: String,
    pub queue: u8,
    pub outbound: bool,
    /// `eventTS`: second of the offer; constant on every event that carries it.
    pub offer_sec: Cell<i64>,
    pub instance: u8,
    pub caller: String,
    pub phone: u64,
    pub original: Option<String>,
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
        let mut e = Ev::new(1_763_900_002_999, 40, Kind::Queued, NO_AGENT);
        assert_eq!(e.t(), 1_763_900_002_000);
        e.has_ts = false;
        assert_eq!(e.t(), 1_763_900_003_039);
    }

    #[test]
    fn guard_refuses_quirks_that_would_reorder() {
        // Without its interactionEventTS the Assigned reads as 11.040 s, after an
        // Accepted that reads as 11.000 s.
        let mut asg = Ev::new(10_990, 50, Kind::Assigned, 0);
        let acc = Ev::new(11_995, 5, Kind::Accepted, 0);
        assert!(asg.surely_before(&acc));
        asg.has_ts = false;
        assert!(!asg.surely_before(&acc));
        // Same second: an empty msgInfo sorts after one with a sequenceId.
        let del = Ev::new(20_100, 5, Kind::Deleted, NO_AGENT);
        let mut pp = Ev::new(20_120, 5, Kind::PostProcess, 0);
        assert!(del.surely_before(&pp));
        let mut del2 = del.clone();
        del2.has_msg = false;
        assert!(!del2.surely_before(&pp));
        // Both empty: lifecycle rank decides.
        pp.has_msg = false;
        assert!(!del2.surely_before(&pp));
        let mut pp2 = Ev::new(20_100, 5, Kind::PostProcess, 0);
        pp2.has_msg = false;
        assert!(pp2.surely_before(&del2));
    }
}
