//! The ccvault event model: what one 8x8 message is, read the way the
//! contract (docs/OPERATIONS.md, input shapes; docs/METRICS.md §1–2) says.
//!
//! Guarantees:
//! - [`decode_message`] accepts any bytes and never fails: an event, a Pulsar
//!   envelope (decoded to its payload) or a quarantine reason.
//! - Reading a field never fails an event: [`Lenient`] values answer "as a
//!   number / flag / text" by docs/METRICS.md §1 and are absent otherwise;
//!   a value JSON can hold but `f64`/UTF-8 cannot (`1e400`, a lone
//!   surrogate `"\ud800"`) is absent too, and the event is still an event.
//! - [`parse_event`] reads the plain shape of an archived event without
//!   serde ([`scan_event`]) and anything else with serde
//!   ([`parse_event_serde`]); both give the same event, so which one read
//!   it never shows. [`parse_event_into`] gives the same as [`parse_event`]
//!   into an event of the caller's, whatever that held before.
//! - [`CanonicalKey`] orders any set of distinct events the same way whatever
//!   their arrival order.

mod event;
mod input;
mod order;
mod scan;
mod time;
mod topic;
mod unrepresentable;
mod value;

pub use event::{
    ndjson_line, parse_event, parse_event_into, parse_event_serde, Event, EventBody, MsgInfo,
    NotAnEvent, OriginalGuids,
};
pub use input::{decode_message, Decoded, Keys, NameSpans};
pub use order::{event_time, lifecycle_rank, CanonicalKey};
pub use scan::scan_event;
pub use time::{
    parse_publish_time, payload_instant, payload_time_ms, resolve_time, timestamp_of, Arrival,
    EventTime, PayloadTimes, TimeSource, LATEST_MS,
};
pub use topic::{parse_topic, Topic, TopicKind};
pub use value::Lenient;
