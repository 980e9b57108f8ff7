//! `ccvault serve`: a read-only web application over the archive — the live
//! wallboard, the dispute view of a contact, search, the report — and the
//! shared producers of the documents the CLI prints too (docs/SERVE.md).
//!
//! Guarantees:
//! - Read-only: the server opens the archive as a reader beside the writer
//!   (another process, or the ingest process it runs in) and writes nothing
//!   but the derived projections.
//! - One producer per output: the wallboard ([`wallboard::compute`]), the
//!   contact document ([`contact::contact_json`]), the raw events
//!   ([`contact::write_raw`]) and the query grammar ([`query`]) are used by
//!   the CLI and by the server alike, so `/api/…` answers with the bytes the
//!   CLI's `--format json` prints for the same question.
//! - Live: a change of the archive reaches every `/events` client within a
//!   poll interval plus one computation, shared by all clients ([`live`]).
//! - Safe by default: loopback only unless a token is configured; strict
//!   Content-Security-Policy; every data value HTML-escaped; access logs
//!   without GUIDs, phone numbers or query strings ([`server`], [`security`]).
//! - Nothing here panics on input: bad parameters are 400s naming them,
//!   missing data 404s, failures 5xx with the reason.

mod accept;
pub mod contact;
pub mod gzip;
pub mod live;
pub mod pages;
pub mod query;
pub mod search;
pub mod security;
pub mod server;
mod tls;
pub mod wallboard;

pub use live::{Clock, Live};
pub use security::Token;
pub use server::{check_exposure, serve, ServeOptions, HEADER_TIMEOUT};
pub use wallboard::{Wallboard, WallboardOptions};
