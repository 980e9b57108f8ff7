//! The HTTP server: routes, authentication, headers, access log, TLS.
//!
//! Invariants:
//! - Read-only: no route changes the archive.
//! - A non-loopback address is refused without a token ([`check_exposure`]);
//!   with one, every route but `/login`, `/logout`, `/favicon.ico`,
//!   `/robots.txt` and `/assets/…` requires it.
//! - Every `/api/…` body is the bytes the CLI's `--format json` prints for
//!   the same question (the same library function and serialization).
//! - Work that reads files runs on the blocking pool, never on the async
//!   workers; the wallboard is computed once per change by [`Live`] and
//!   shared.
//! - The access log names the method, the route *pattern* (never the path,
//!   which holds GUIDs, nor the query string, which holds phone numbers),
//!   the status and the time taken.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Router};
use ccvault_projections::{NoEvents, Projections, UNREADABLE};
use serde::Deserialize;
use tokio_stream::wrappers::WatchStream;

use crate::contact::{contact_json, read_legs, timelines, write_raw, ShownLeg};
use crate::live::{is_no_archive, json_line, Live};
use crate::query::{
    only_known_params, only_utf8_values, InteractionsQuery, ReportQuery, INTERACTIONS_PARAMS,
    NO_PARAMS, REPORT_PARAMS,
};
use crate::security::{
    csp_for_page, is_loopback_host, Token, CSP, SESSION_COOKIE, SESSION_LIFETIME,
};
use crate::{gzip, pages, search};

const WALLBOARD_JS: &str = include_str!("../assets/wallboard.js");
const SERVE_CSS: &str = include_str!("../assets/serve.css");
/// The icon browsers ask for by themselves: a 32x32 PNG in an ICO
/// container, kept in the binary like every other asset.
const FAVICON: &[u8] = include_bytes!("../assets/favicon.ico");

/// How the server is reached.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Required of every client when set.
    pub token: Option<Token>,
    /// Certificate chain and private key (PEM): HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often the archive is looked at.
    pub poll: Duration,
    /// How long a client may take to send a request's headers (and, over
    /// TLS, its handshake), or to send the next request on a kept-alive
    /// connection, before the connection is closed: idle sockets must not
    /// exhaust the process's file descriptors. Responses are not bounded.
    /// A request body (the sign-in form, the one route that reads one)
    /// must arrive within it too.
    pub header_timeout: Duration,
}

/// The default [`ServeOptions::header_timeout`].
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses to expose the archive beyond this machine without a token.
pub fn check_exposure(opts: &ServeOptions) -> Result<()> {
    if !opts.addr.ip().is_loopback() && opts.token.is_none() {
        bail!(
            "refusing to serve on {} without a token (`serve --token-file`, `ingest --serve-token-file`): only a loopback address (127.0.0.1, ::1) may be served without one",
            opts.addr
        );
    }
    Ok(())
}

/// Requests by route pattern and status, for `/metrics`.
#[derive(Debug, Default)]
struct RequestCounts(Mutex<BTreeMap<(String, u16), u64>>);

#[derive(Clone)]
struct AppState {
    live: Arc<Live>,
    token: Option<Token>,
    secure_cookie: bool,
    requests: Arc<RequestCounts>,
    /// How long the sign-in form's body may take to arrive
    /// ([`ServeOptions::header_timeout`]).
    body_timeout: Duration,
    /// Answers being built whole ([`WHOLE_AT_ONCE`]).
    whole: Arc<tokio::sync::Semaphore>,
}

/// Answers built whole at once, contacts and reports; the others wait
/// their turn. A contact is read and rendered whole (every event of every
/// leg: ~90 MB of HTML for 40,000 events), so eight at once took 1.8 GB;
/// a report's rows are computed whole (27 MB of JSON by queue and agent
/// over 1M events), and twenty at once took 1.24 GB (an outside audit).
/// With this bound the server's memory follows the largest answers, not
/// the requests.
const WHOLE_AT_ONCE: usize = 2;

impl AppState {
    /// A turn to build an answer whole, held until it is built (and
    /// spilled, [`spilled`]), not while it is sent.
    async fn turn_to_build_whole(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
        self.whole
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| internal(e.into()))
    }

    /// Whether the pages show a sign-out button: a server with a token,
    /// whose browsers sign in.
    fn sign_out(&self) -> bool {
        self.token.is_some()
    }
}

/// A failure shown to the client: a status and a message.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = (self.0, format!("{}\n", self.1)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

fn internal(e: anyhow::Error) -> Problem {
    if is_no_archive(&e) {
        return Problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"));
    }
    tracing::warn!("request failed: {e:#}");
    Problem(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

fn bad_request(e: impl std::fmt::Display) -> Problem {
    Problem(StatusCode::BAD_REQUEST, e.to_string())
}

fn body(content_type: &'static str, bytes: impl Into<Body>) -> Response {
    let mut r = Response::new(bytes.into());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(page: String) -> Response {
    body("text/html; charset=utf-8", page)
}

/// A crates/html page, its inline stylesheet allowed by hash.
fn html_page(page: String) -> Response {
    let csp = csp_for_page(&page);
    with_csp(html(page), &csp)
}

/// `r` with the Content-Security-Policy `csp`.
fn with_csp(mut r: Response, csp: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// Runs blocking work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn index(State(s): State<AppState>) -> Response {
    let snapshot = s.live.latest();
    html(pages::wallboard(
        snapshot.board.as_deref(),
        s.live.clock().now_ms(),
        &s.live.options().tz,
        s.sign_out(),
    ))
}

async fn asset_js() -> Response {
    body("text/javascript; charset=utf-8", WALLBOARD_JS)
}

async fn asset_css() -> Response {
    body("text/css; charset=utf-8", SERVE_CSS)
}

async fn favicon() -> Response {
    body("image/x-icon", FAVICON)
}

/// Nothing here is for a search engine: an archive of callers' names and
/// numbers that somebody served on a public address.
async fn robots() -> Response {
    body("text/plain; charset=utf-8", "User-agent: *\nDisallow: /\n")
}

async fn api_wallboard(State(s): State<AppState>) -> Result<Response, Problem> {
    match &s.live.latest().wallboard {
        Ok(json) => Ok(body(JSON, json.clone())),
        Err(e) => Err(Problem(StatusCode::SERVICE_UNAVAILABLE, e.clone())),
    }
}

/// `/events`: the current wallboard at once, then each new one. A client
/// that falls behind gets the latest, never a backlog. Every client is sent
/// the bytes of the snapshot's one [`Snapshot::message`](crate::live::Snapshot),
/// or, when its `Accept-Encoding` admits gzip, of its one compressed piece
/// (a stream of ~10× fewer bytes: the wallboard is sent whole).
async fn events(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let gzip = gzip::accepts_gzip(headers.get_all(header::ACCEPT_ENCODING));
    let mut r = body(
        "text/event-stream",
        Body::from_stream(Messages {
            snapshots: WatchStream::new(s.live.subscribe()),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
            gzip: gzip.then(|| (false, gzip::Sent::default())),
            live: Arc::clone(&s.live),
            credentials: s.token.clone().map(|token| Credentials {
                token,
                authorization: text_header(&headers, header::AUTHORIZATION),
                cookie: text_header(&headers, header::COOKIE),
            }),
        }),
    );
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// How long `/events` stays silent before a comment line, so proxies and
/// browsers keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The comment line sent after [`KEEP_ALIVE`] of silence.
const KEEP_ALIVE_LINE: &[u8] = b":\n\n";

/// [`KEEP_ALIVE_LINE`] compressed, once.
static KEEP_ALIVE_GZIP: std::sync::LazyLock<gzip::Piece> =
    std::sync::LazyLock::new(|| gzip::Piece::of(KEEP_ALIVE_LINE));

/// The body of `/events`: each snapshot's message, and a comment after
/// [`KEEP_ALIVE`] without one; it ends when the watcher stops, or, on a
/// server with a token, when what the stream was opened with no longer
/// admits (its session signed out or over). In gzip (`gzip` is `Some`:
/// whether its header went out, and what was sent), the stream's header
/// first and its trailer at the end.
struct Messages {
    snapshots: WatchStream<Arc<crate::live::Snapshot>>,
    keep_alive: std::pin::Pin<Box<tokio::time::Sleep>>,
    gzip: Option<(bool, gzip::Sent)>,
    /// For the count of bytes sent.
    live: Arc<Live>,
    credentials: Option<Credentials>,
}

/// What a request presented to a server with a token, asked again before
/// each message of a stream it opened: a session signed out (or over)
/// sends nothing more (until 2026-12-07 a stream opened before the
/// sign-out went on: an outside audit).
struct Credentials {
    token: Token,
    authorization: Option<String>,
    cookie: Option<String>,
}

impl Credentials {
    fn admit(&self) -> bool {
        self.token
            .admits(self.authorization.as_deref(), self.cookie.as_deref())
    }
}

/// A header's value as text, if it is some.
fn text_header(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl tokio_stream::Stream for Messages {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future as _;
        use std::task::Poll;
        let this = &mut *self;
        if let Some((header_sent @ false, _)) = &mut this.gzip {
            *header_sent = true;
            let c = &this.live.counters;
            c.event_bytes_gzip
                .fetch_add(gzip::HEADER.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Bytes::from_static(&gzip::HEADER))));
        }
        let next = match std::pin::Pin::new(&mut this.snapshots).poll_next(cx) {
            Poll::Ready(Some(snapshot)) => match &mut this.gzip {
                Some((_, sent)) => sent.add(&snapshot.message_gzip),
                None => snapshot.message.clone(),
            },
            Poll::Ready(None) => {
                return Poll::Ready(this.gzip.take().map(|(_, sent)| Ok(sent.trailer())))
            }
            Poll::Pending => match this.keep_alive.as_mut().poll(cx) {
                Poll::Ready(()) => match &mut this.gzip {
                    Some((_, sent)) => sent.add(&KEEP_ALIVE_GZIP),
                    None => Bytes::from_static(KEEP_ALIVE_LINE),
                },
                Poll::Pending => return Poll::Pending,
            },
        };
        if this.credentials.as_ref().is_some_and(|c| !c.admit()) {
            return Poll::Ready(this.gzip.take().map(|(_, sent)| Ok(sent.trailer())));
        }
        let deadline = tokio::time::Instant::now() + KEEP_ALIVE;
        this.keep_alive.as_mut().reset(deadline);
        let c = &this.live.counters;
        let sent = match this.gzip {
            Some(_) => &c.event_bytes_gzip,
            None => &c.event_bytes_identity,
        };
        sent.fetch_add(next.len() as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(next)))
    }
}

/// How a route answers: an HTML page (with the sign-out button when
/// `sign_out`), or data (JSON, NDJSON).
#[derive(Clone, Copy)]
enum Answer {
    Page { sign_out: bool },
    Data,
}

/// A 404 saying `message`, as a page or as text.
fn not_found(answer: Answer, message: String) -> Response {
    match answer {
        Answer::Page { sign_out } => (
            StatusCode::NOT_FOUND,
            html(pages::problem("Not found", &message, sign_out)),
        )
            .into_response(),
        Answer::Data => Problem(StatusCode::NOT_FOUND, message).into_response(),
    }
}

/// The header of a contact answer that left records out because they are
/// in damaged places of the log: how many (the CLI says so on stderr; the
/// page says it in words too).
pub const LEFT_OUT_HEADER: &str = "ccvault-records-left-out";

/// The header of a contact answer read through an index that was built
/// around damaged places of the log: how many places (whatever records
/// were there are in no answer; the page says it in words too).
pub const INDEX_DAMAGE_HEADER: &str = "ccvault-index-damaged-places";

/// The step every contact route shares: on the blocking pool, reads the
/// records of every leg of `guid`'s contact and their timelines, answers
/// 404 when the asked leg has no event, else `f(tz, legs, note)`, `note`
/// saying which records were left out for damage. Either answer counts
/// them in [`LEFT_OUT_HEADER`] (and [`INDEX_DAMAGE_HEADER`]), and the 404's
/// message says it in words.
async fn with_contact(
    s: &AppState,
    guid: String,
    answer: Answer,
    f: impl FnOnce(&jiff::tz::TimeZone, &[ShownLeg<'_>], Option<&str>) -> Result<Response, Problem>
        + Send
        + 'static,
) -> Result<Response, Problem> {
    let live = s.live.clone();
    let _turn = s.turn_to_build_whole().await?;
    blocking(move || {
        let mut reader = live.reader().map_err(internal)?;
        let legs = live
            .with_projections(|p| read_legs(&mut reader, Some(p), &guid))
            .map_err(internal)?;
        let shown = timelines(&legs);
        // What the lookups met, and what the index was built around.
        let notes: Vec<String> = [reader.damage_note(), reader.index_damage_note()]
            .into_iter()
            .flatten()
            .collect();
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let mut r = if shown.iter().any(|l| l.asked) {
            f(&live.options().tz, &shown, note.as_deref())?
        } else {
            // A leg whose records all lie in damaged places of the log is
            // not absent: the 404 says so (as `show` warns on stderr) and
            // carries the same headers as an answer would.
            // A contactId whose first leg never reached the archive: name
            // the legs that did (as `show` does), and link them on a page.
            // One whose own records are all in damaged places says so.
            let known = if reader.damage_met().is_empty() {
                live.with_projections(|p| Ok(p.no_events_of(&guid, None)?))
                    .unwrap_or(NoEvents::Unknown)
            } else {
                NoEvents::Unreadable
            };
            let mut message = match known {
                NoEvents::Unreadable => {
                    format!("no readable events of interaction {guid:?} in the archive: {UNREADABLE}")
                }
                _ => format!("no events of interaction {guid:?} in the archive"),
            };
            if let Some(unseen) = reader.not_searched() {
                message = format!("{message} as far as it is indexed: {unseen}");
            }
            if let Some(note) = note {
                message = format!("{message} ({note})");
            }
            let legs = match known {
                NoEvents::OtherLegs(legs) => legs,
                NoEvents::Unreadable | NoEvents::Unknown => Vec::new(),
            };
            if legs.is_empty() {
                not_found(answer, message)
            } else {
                message = format!(
                    "{message}; it names a contact whose first leg was never archived, and these legs of it were: {} (open any of them)",
                    legs.join(", ")
                );
                match answer {
                    Answer::Page { sign_out } => (
                        StatusCode::NOT_FOUND,
                        html(pages::problem_with_legs(
                            "Not found", &message, &legs, sign_out,
                        )),
                    )
                        .into_response(),
                    Answer::Data => not_found(answer, message),
                }
            }
        };
        let left_out = reader.damage_met().len();
        if left_out > 0 {
            r.headers_mut()
                .insert(LEFT_OUT_HEADER, HeaderValue::from(left_out));
        }
        let skipped = reader.index_damaged_places();
        if skipped > 0 {
            r.headers_mut()
                .insert(INDEX_DAMAGE_HEADER, HeaderValue::from(skipped));
        }
        Ok(r)
    })
    .await
}

/// The contact of `guid` as the page and the API show it.
async fn contact_page(
    State(s): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Response, Problem> {
    let download = format!("/contact/{}/events.ndjson", pages::percent_encode(&guid));
    let dir = s.live.dir().to_path_buf();
    let sign_out = s.sign_out();
    with_contact(
        &s,
        guid,
        Answer::Page { sign_out },
        move |tz, shown, note| {
            let mut page = if shown.len() > 1 {
                let views: Vec<_> = shown.iter().map(|l| l.view()).collect();
                ccvault_html::render_contact(&views, tz)
            } else {
                let leg = &shown[0];
                ccvault_html::render_timeline(&leg.timeline, &leg.inputs, tz)
            };
            let mut nav = pages::nav_for_page(Some(&download), sign_out);
            if let Some(note) = note {
                nav.push_str(&pages::warning(note));
            }
            pages::after_body_tag(&mut page, &nav);
            let provenance: Vec<(&str, &[ccvault_store::Record])> = shown
                .iter()
                .map(|l| {
                    (
                        l.timeline.interaction_guid.as_deref().unwrap_or(""),
                        l.records,
                    )
                })
                .collect();
            pages::before_footer(&mut page, &pages::provenance(&provenance, tz));
            let csp = csp_for_page(&page);
            let spilled = spilled(&dir, "the contact's page", |out| {
                Ok(out.write_all(page.as_bytes())?)
            })
            .map_err(internal)?;
            Ok(with_csp(body("text/html; charset=utf-8", spilled), &csp))
        },
    )
    .await
}

async fn contact_ndjson(
    State(s): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Response, Problem> {
    let name = format!(
        "attachment; filename=\"contact-{}.ndjson\"",
        pages::percent_encode(&guid)
    );
    let dir = s.live.dir().to_path_buf();
    with_contact(&s, guid, Answer::Data, move |_, shown, _| {
        let raw = spilled(&dir, "the contact's events", |out| {
            for leg in shown {
                write_raw(leg.records, &mut &mut *out, true)?;
            }
            Ok(())
        })
        .map_err(internal)?;
        let mut r = body(NDJSON, raw);
        if let Ok(v) = HeaderValue::from_str(&name) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(r)
    })
    .await
}

async fn api_contact(
    State(s): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Response, Problem> {
    let dir = s.live.dir().to_path_buf();
    with_contact(&s, guid, Answer::Data, move |_, shown, _| {
        let Some(v) = contact_json(shown) else {
            return Err(internal(anyhow::anyhow!("the asked leg has no timeline")));
        };
        let json = spilled(&dir, "the contact", |out| {
            serde_json::to_writer(&mut *out, &v)?;
            out.write_all(b"\n")?;
            Ok(())
        })
        .map_err(internal)?;
        Ok(body(JSON, json))
    })
    .await
}

async fn api_interactions(
    State(s): State<AppState>,
    Query(q): Query<InteractionsQuery>,
) -> Result<Response, Problem> {
    let live = s.live.clone();
    blocking(move || {
        let filter = q.filter(&live.options().tz).map_err(bad_request)?;
        // Written to an unlinked file beside the archive, then streamed
        // from it: a listing of a whole archive (~1 GB at 10M events) held
        // in memory, once per request, could take the server's memory with
        // a few requests; the projections' lock is held only while the
        // file is written, not while a slow client reads.
        let listing = spilled(live.dir(), "the listing", |out| {
            live.with_projections(|p| {
                p.for_each_interaction(&filter, |s| {
                    if let Ok(line) = json_line(&s) {
                        out.write_all(line.as_bytes()).map_err(|source| {
                            ccvault_projections::ProjectionError::Io {
                                path: "the listing's scratch file".into(),
                                source,
                            }
                        })?;
                    }
                    Ok(true)
                })?;
                Ok(())
            })
        })
        .map_err(internal)?;
        Ok(body(NDJSON, listing))
    })
    .await
}

/// A response body written by `write` to an unlinked scratch file beside
/// the archive (in the temporary directory when that one is not writable
/// here), then streamed from it ([`streamed`]): a slow or stalled client
/// holds a file, not the answer in the server's memory (a whole archive's
/// listing is ~1 GB at 10M events; six clients that read nothing of a
/// 72 MB contact held 615 MB until they went).
///
/// Reads work on a full disk: where the file system refuses the scratch
/// file's writes, `write` runs again for the next place, and where both
/// refuse, into memory, as answers were built before they were spilled.
fn spilled(
    dir: &std::path::Path,
    what: &str,
    mut write: impl FnMut(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<Body> {
    let temp = std::env::temp_dir();
    // Why each place refused, for the warning: a full disk, or as often
    // no descriptor left (an audit met "a full disk?" with 19 GB free).
    let mut refused = Vec::new();
    for place in [dir, temp.as_path()] {
        let file = match tempfile::tempfile_in(place) {
            Ok(file) => file,
            Err(e) => {
                refused.push(format!("{}: {e}", place.display()));
                continue;
            }
        };
        match spill_into(file, &mut write) {
            Ok(body) => return Ok(body),
            Err(e) if refuses_writes(&e) => {
                tracing::debug!("{what}'s scratch file: {e:#}; trying the next place");
                refused.push(format!("{}: {e:#}", place.display()));
            }
            Err(e) => return Err(e),
        }
    }
    tracing::warn!(
        "no scratch file could be created or written for {what} ({}): it is held in memory while it is sent",
        refused.join("; ")
    );
    let mut bytes = Vec::new();
    write(&mut bytes)?;
    Ok(Body::from(bytes))
}

/// [`spilled`]'s answer written into `file`.
fn spill_into(
    file: std::fs::File,
    write: &mut impl FnMut(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<Body> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    write(&mut out)?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    std::io::Seek::rewind(&mut file)?;
    Ok(streamed(file))
}

/// Whether `e` comes from the file system refusing a write (a full disk).
fn refuses_writes(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(|e| e.kind())
            .or_else(|| {
                // serde_json keeps the writer's error to itself, but its kind.
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        io.is_some_and(|kind| ccvault_store::is_write_refusal(&kind.into()))
    })
}

/// The bytes of `file`, from where it stands, as a response body read a
/// block at a time on the blocking pool: the server holds a few blocks,
/// whatever the file's size, and stops reading when the client goes.
fn streamed(mut file: std::fs::File) -> Body {
    const BLOCK: usize = 64 << 10;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut block = vec![0u8; BLOCK];
        let read = std::io::Read::read(&mut file, &mut block);
        let sent = match read {
            Ok(0) => break,
            Ok(n) => {
                block.truncate(n);
                tx.blocking_send(Ok(block))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        };
        if sent.is_err() {
            break; // the client went away
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn report_rows(
    p: &Projections,
    opts: ccvault_projections::ReportOptions,
) -> Result<Vec<ccvault_projections::ReportRow>> {
    Ok(p.report(opts)?)
}

async fn api_report(
    State(s): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let live = s.live.clone();
    let _turn = s.turn_to_build_whole().await?;
    blocking(move || {
        let opts = q.options(live.options()).map_err(bad_request)?;
        let rows = live
            .with_projections(|p| report_rows(p, opts))
            .map_err(internal)?;
        // Sent from a file, as a listing is: a slow client holds no copy.
        let report = spilled(live.dir(), "the report", |out| {
            for r in &rows {
                out.write_all(json_line(r)?.as_bytes())?;
            }
            Ok(())
        })
        .map_err(internal)?;
        Ok(body(NDJSON, report))
    })
    .await
}

async fn report_page(
    State(s): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let live = s.live.clone();
    let sign_out = s.sign_out();
    let _turn = s.turn_to_build_whole().await?;
    blocking(move || {
        let form = pages::report_form(&[
            ("from", "from", q.from.as_deref()),
            ("to", "to", q.to.as_deref()),
            ("interval", "interval", q.interval.as_deref()),
            ("by", "by", q.by.as_deref()),
            ("SLA", "sla", q.sla.as_deref()),
            ("short abandon", "short_abandon", q.short_abandon.as_deref()),
        ]);
        let opts = match q.options(live.options()) {
            Ok(o) => o,
            Err(e) => {
                let mut page = pages::problem("Report", &e.to_string(), sign_out);
                pages::after_body_tag(&mut page, &form);
                return Ok((StatusCode::BAD_REQUEST, html(page)).into_response());
            }
        };
        let rows = live
            .with_projections(|p| report_rows(p, opts.clone()))
            .map_err(internal)?;
        let mut page = ccvault_html::render_report(&rows, &opts);
        let nav = pages::nav_for_page(None, sign_out);
        pages::after_body_tag(&mut page, &format!("{nav}{form}"));
        Ok(html_page(page))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    #[serde(flatten)]
    filter: InteractionsQuery,
}

async fn search_page(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Problem> {
    let live = s.live.clone();
    let sign_out = s.sign_out();
    blocking(move || {
        let tz = live.options().tz.clone();
        let f = &q.filter;
        let params = [
            ("GUID, phone or attached value", "q", q.q.as_deref()),
            ("agent", "agent", f.agent.as_deref()),
            ("queue", "queue", f.queue.as_deref()),
            ("outcome", "outcome", f.outcome.as_deref()),
            ("channel", "channel", f.channel.as_deref()),
            ("from", "from", f.from.as_deref()),
            ("to", "to", f.to.as_deref()),
        ];
        let asked = params
            .iter()
            .any(|(_, _, v)| v.is_some_and(|v| !v.trim().is_empty()));
        if !asked {
            return Ok(html(pages::search(&params, None, &tz, sign_out)));
        }
        if let Err(e) = only_utf8_values(&uri) {
            let page = pages::search(&params, Some(Err(e)), &tz, sign_out);
            return Ok((StatusCode::BAD_REQUEST, html(page)).into_response());
        }
        let filter = match f.filter(&tz) {
            Ok(filter) => filter,
            Err(e) => {
                let page = pages::search(&params, Some(Err(e.to_string())), &tz, sign_out);
                return Ok((StatusCode::BAD_REQUEST, html(page)).into_response());
            }
        };
        let mut reader = live.reader().map_err(internal)?;
        let found = live
            .with_projections(|p| search::search(p, &mut reader, &filter, q.q.as_deref()))
            .map_err(internal)?;
        Ok(html(pages::search(
            &params,
            Some(Ok((&found.legs, found.truncated))),
            &tz,
            sign_out,
        )))
    })
    .await
}

async fn metrics(State(s): State<AppState>) -> Response {
    let c = &s.live.counters;
    let mut out = String::new();
    out.push_str("# HELP ccvault_serve_requests_total HTTP requests by route pattern and status.\n# TYPE ccvault_serve_requests_total counter\n");
    if let Ok(map) = s.requests.0.lock() {
        for ((route, code), n) in map.iter() {
            out.push_str(&format!(
                "ccvault_serve_requests_total{{route=\"{}\",code=\"{code}\"}} {n}\n",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
    }
    out.push_str("# HELP ccvault_serve_event_bytes_total Bytes of /events bodies sent, by content encoding.\n# TYPE ccvault_serve_event_bytes_total counter\n");
    for (encoding, n) in [
        ("gzip", &c.event_bytes_gzip),
        ("identity", &c.event_bytes_identity),
    ] {
        out.push_str(&format!(
            "ccvault_serve_event_bytes_total{{encoding=\"{encoding}\"}} {}\n",
            n.load(Ordering::Relaxed)
        ));
    }
    let gauges = [
        (
            "ccvault_serve_event_clients",
            "Clients following /events now.",
            "gauge",
            s.live.subscribers() as u64,
        ),
        (
            "ccvault_serve_refreshes_total",
            "Wallboard computations (one per archive change, shared by every client).",
            "counter",
            c.refreshes.load(Ordering::Relaxed),
        ),
        (
            "ccvault_serve_wallboard_builds_total",
            "Wallboard states built from scratch; the other computations updated the last state from the legs the new records touched.",
            "counter",
            c.builds.load(Ordering::Relaxed),
        ),
        (
            "ccvault_serve_refresh_errors_total",
            "Wallboard computations that failed.",
            "counter",
            c.refresh_errors.load(Ordering::Relaxed),
        ),
        (
            "ccvault_serve_last_refresh_microseconds",
            "Duration of the last wallboard computation.",
            "gauge",
            c.last_refresh_us.load(Ordering::Relaxed),
        ),
        (
            "ccvault_serve_archive_records",
            "Archive records the last wallboard includes.",
            "gauge",
            c.records.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, kind, v) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    body("text/plain; version=0.0.4; charset=utf-8", out)
}

/// `/login`'s one parameter: the page to go back to once signed in.
#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query that does not read is no page to go back to, not an error.
    let next = q.ok().and_then(|Query(q)| q.next);
    html(pages::login(false, local_page(next.as_deref())))
}

/// `next` if it names a page of this server (a path beginning with one
/// `/`, in visible ASCII: what a request's target is once percent-encoded),
/// else none: a sign-in form must not send a browser to another site.
fn local_page(next: Option<&str>) -> Option<&str> {
    let next = next?;
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 4096
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    local.then_some(next)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    /// The page the browser was sent to sign in from.
    next: Option<String>,
}

async fn login(State(s): State<AppState>, req: Request) -> Response {
    // Open without the token: a body that never ends would hold its
    // connection (a file descriptor) for good, as unfinished headers would.
    let f = match tokio::time::timeout(s.body_timeout, Form::<LoginForm>::from_request(req, &()))
        .await
    {
        Ok(Ok(Form(f))) => f,
        Ok(Err(rejection)) => return rejection.into_response(),
        Err(_) => {
            let mut r = Problem(
                StatusCode::REQUEST_TIMEOUT,
                format!("the form did not arrive within {:?}", s.body_timeout),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    match &s.token {
        Some(t) if t.matches(f.token.trim()) => {
            let secure = if s.secure_cookie { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                t.start_session(Instant::now()),
                SESSION_LIFETIME.as_secs()
            );
            let back = local_page(f.next.as_deref()).unwrap_or("/");
            let mut r = Redirect::to(back).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            html(pages::login(true, local_page(f.next.as_deref()))),
        )
            .into_response(),
        None => Redirect::to("/").into_response(),
    }
}

/// `/logout` (a POST, so that no link or prefetch signs anyone out): ends
/// the session the browser's cookie names, on this server, whoever else
/// holds a copy of the cookie, clears the cookie and goes to the sign-in
/// page. Open without the token, as `/login` is: it needs the session's
/// value, and a browser whose session ended may still clear its cookie.
async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(t) = &s.token else {
        // Nobody signs in to a server without a token.
        return Redirect::to("/").into_response();
    };
    // A form of another site's page, posted by the browser, would sign
    // its user out (clear the cookie) against their will.
    if posted_from_elsewhere(&headers) {
        return Problem(
            StatusCode::FORBIDDEN,
            "a sign-out comes from a page of this server".into(),
        )
        .into_response();
    }
    t.end_sessions(headers.get(header::COOKIE).and_then(|v| v.to_str().ok()));
    let secure = if s.secure_cookie { "; Secure" } else { "" };
    let cleared =
        format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}");
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&cleared) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Whether a browser says the request comes from a page of another site:
/// `Sec-Fetch-Site: cross-site`, or an `Origin` whose host and port are
/// not the `Host` asked for. `Origin: null` says nothing: this server's
/// own pages send it, under their `Referrer-Policy: no-referrer` (a real
/// Chromium did, `tests/browser.rs`). A client that sends neither (curl,
/// a script) is taken at its word.
fn posted_from_elsewhere(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|v| v.eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    let Some((scheme, authority)) = text("origin").and_then(|o| o.split_once("://")) else {
        return false;
    };
    // The scheme's own port may be written or not on either side (a proxy
    // that sets `Host: $host:$server_port`, a browser that leaves `:80`
    // out of `Origin`: an outside audit).
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    let bare = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        a.strip_suffix(default).map_or(a.clone(), str::to_owned)
    };
    text("host").is_none_or(|h| bare(h) != bare(authority))
}

/// Refuses (400, naming it) a query parameter the route does not take,
/// before the route runs ([`only_known_params`]).
async fn known_params(
    State(known): State<&'static [&'static str]>,
    req: Request,
    next: Next,
) -> Response {
    match only_known_params(req.uri(), known) {
        Ok(()) => next.run(req).await,
        Err(e) => bad_request(e).into_response(),
    }
}

/// `route`, taking the query parameters `known` and no other: every data
/// route (`/api/…`, the raw events) is declared through it.
fn taking(known: &'static [&'static str], route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(middleware::from_fn_with_state(known, known_params))
}

/// Token check, security headers, access log and request counts.
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", |m| m.as_str())
        .to_owned();
    let method = req.method().clone();
    let open = route == "/login"
        || route == "/logout"
        || route == "/favicon.ico"
        || route == "/robots.txt"
        || route.starts_with("/assets/");
    // RFC 9112 §3.2; and the loopback rule below reads the one header.
    if req.version() == axum::http::Version::HTTP_11
        && req.headers().get_all(header::HOST).iter().count() != 1
    {
        return secured(
            Problem(
                StatusCode::BAD_REQUEST,
                "an HTTP/1.1 request names its host in exactly one Host header".into(),
            )
            .into_response(),
            &s,
            &route,
            &method,
            started,
        );
    }
    let admitted = match &s.token {
        None if !addressed_to_loopback(&req) => {
            return secured(
                Problem(
                    StatusCode::FORBIDDEN,
                    "without a token this server answers only requests addressed to localhost, 127.0.0.1 or [::1] (a page of another site must not read the archive through your browser); serve with --token-file to be reached under other names".into(),
                )
                .into_response(),
                &s,
                &route,
                &method,
                started,
            );
        }
        None => true,
        Some(t) => {
            open || {
                let h: &HeaderMap = req.headers();
                let auth = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let cookie = h.get(header::COOKIE).and_then(|v| v.to_str().ok());
                t.admits(auth, cookie)
            }
        }
    };
    // A browser opening a page without the token is sent to sign in;
    // the data routes answer 401, as a client of an API expects.
    let page = matches!(
        route.as_str(),
        "/" | "/search" | "/report" | "/contact/{guid}"
    );
    let response = if admitted {
        next.run(req).await
    } else if page && (method == axum::http::Method::GET || method == axum::http::Method::HEAD) {
        // Back to that page once signed in (a link to a contact from a
        // ticket, say).
        let asked = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let login = match asked {
            "/" => "/login".to_owned(),
            asked => format!("/login?next={}", pages::percent_encode(asked)),
        };
        Redirect::to(&login).into_response()
    } else {
        let mut r = Problem(
            StatusCode::UNAUTHORIZED,
            "a token is required: send `Authorization: Bearer TOKEN`, or sign in at /login".into(),
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ccvault\""),
        );
        r
    };
    secured(response, &s, &route, &method, started)
}

/// Whether the request names a loopback host, in its `Host` header and in
/// an absolute request target alike (either may be absent).
fn addressed_to_loopback(req: &Request) -> bool {
    let header_ok = req
        .headers()
        .get_all(header::HOST)
        .iter()
        .all(|h| h.to_str().is_ok_and(is_loopback_host));
    header_ok
        && req
            .uri()
            .authority()
            .is_none_or(|a| is_loopback_host(a.as_str()))
}

/// `response` with the headers every response carries, counted for
/// `/metrics` and written to the access log.
fn secured(
    mut response: Response,
    s: &AppState,
    route: &str,
    method: &axum::http::Method,
    started: Instant,
) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = response.status().as_u16();
    if let Ok(mut map) = s.requests.0.lock() {
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }
    tracing::info!(
        target: "ccvault::access",
        method = %method,
        route = %route,
        status,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// The application, for any listener.
fn app(live: Arc<Live>, opts: &ServeOptions) -> Router {
    let state = AppState {
        live,
        token: opts.token.clone(),
        secure_cookie: opts.tls.is_some(),
        requests: Arc::new(RequestCounts::default()),
        body_timeout: opts.header_timeout,
        whole: Arc::new(tokio::sync::Semaphore::new(WHOLE_AT_ONCE)),
    };
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/assets/wallboard.js", get(asset_js))
        .route("/assets/serve.css", get(asset_css))
        .route("/favicon.ico", get(favicon))
        .route("/robots.txt", get(robots))
        .route("/contact/{guid}", get(contact_page))
        .route(
            "/contact/{guid}/events.ndjson",
            taking(NO_PARAMS, get(contact_ndjson)),
        )
        .route("/search", get(search_page))
        .route("/report", get(report_page))
        .route("/api/wallboard", taking(NO_PARAMS, get(api_wallboard)))
        .route("/api/contact/{guid}", taking(NO_PARAMS, get(api_contact)))
        .route(
            "/api/interactions",
            taking(INTERACTIONS_PARAMS, get(api_interactions)),
        )
        .route("/api/report", taking(REPORT_PARAMS, get(api_report)))
        .route("/metrics", get(metrics))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .fallback(|| async { Problem(StatusCode::NOT_FOUND, "no such page".into()) })
        // A layer, not a route layer: 404s and 405s get the token check and
        // the security headers too.
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves until `shutdown` completes. The watcher runs on its own thread;
/// when `shutdown` completes it is stopped, which ends every `/events`
/// stream, and the server drains.
pub async fn serve(
    live: Arc<Live>,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    check_exposure(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .with_context(|| format!("cannot listen on {}", opts.addr))?;
    let local = listener.local_addr()?;
    let tls = match &opts.tls {
        Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
        None => None,
    };
    // The first document before the address is announced: a client that
    // connects once it is told where gets the wallboard, not "not yet".
    {
        let live = live.clone();
        tokio::task::spawn_blocking(move || live.publish())
            .await
            .context("the first wallboard computation failed")?;
    }
    let watcher = {
        let live = live.clone();
        let poll = opts.poll;
        std::thread::Builder::new()
            .name("ccvault-serve-watch".into())
            .spawn(move || live.run(poll))
            .context("cannot start the archive watcher")?
    };
    let router = app(live.clone(), &opts);
    let stopping = {
        let live = live.clone();
        async move {
            shutdown.await;
            live.stop();
        }
    };
    on_ready(local);
    // Not `axum::serve`: it sets no header timeout, and its graceful
    // shutdown waits for every connection, however long a client takes.
    let served = match tls {
        None => {
            crate::accept::serve(listener, router, opts.header_timeout, stopping, |tcp| {
                std::future::ready(Some(tcp))
            })
            .await
        }
        Some(acceptor) => {
            crate::tls::serve(listener, acceptor, router, opts.header_timeout, stopping).await
        }
    };
    live.stop();
    let _ = watcher.join();
    served
}
