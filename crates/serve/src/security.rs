//! Who may ask, and what a response may do in the browser.
//!
//! Invariants:
//! - A bearer token is compared in constant time (both sides hashed first,
//!   so neither its content nor its length leaks through timing).
//! - A browser signed in at `/login` holds a session, never the token: a
//!   random value this process gave it, good for [`SESSION_LIFETIME`] and
//!   never after the server stops. Browsers send a host's cookies to every
//!   port of that host, so whatever else listens there sees the cookie; it
//!   must not be the lasting secret that also opens the API.
//! - Every response carries a strict Content-Security-Policy: scripts and
//!   styles only from this server, no inline script, nothing fetched from
//!   elsewhere. A page from crates/html keeps its one inline stylesheet,
//!   allowed by its hash and nothing else ([`csp_for_page`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The policy of every response that sets no other.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The name of the cookie a browser presents its session in (set by
/// `/login`).
pub const SESSION_COOKIE: &str = "ccvault_session";

/// How long a session lasts: a working day, then the browser signs in
/// again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Sessions open at once, at most: past it, signing in ends the one that
/// ends soonest (a form posted in a loop cannot grow memory).
const MAX_SESSIONS: usize = 10_000;

/// The secret clients must present, and the sessions of the browsers that
/// presented it at `/login`.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
    /// SHA-256 of each session's value, and when it ends.
    sessions: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token in the first line of a token file (surrounding whitespace
    /// ignored). One shorter than 16 characters is refused, and so is one
    /// holding a character that cannot travel in the `/login` cookie or the
    /// `Authorization` header (whitespace, `;`, control or non-ASCII
    /// characters): it would be accepted here and then never admit anyone.
    pub fn from_file_text(text: &str) -> Result<Token, String> {
        let t = text.lines().next().unwrap_or("").trim();
        if t.chars().count() < 16 {
            return Err("the token must be at least 16 characters on the file's first line".into());
        }
        // Said by kind and position, never shown: the token is a secret.
        if let Some((at, c)) = t.chars().enumerate().find(|(_, c)| !token_char(*c)) {
            let what = match c {
                ';' => "a `;`",
                ' ' => "a space",
                c if c.is_whitespace() => "a whitespace character",
                c if c.is_ascii_control() => "a control character",
                _ => "a non-ASCII character",
            };
            return Err(format!(
                "the token holds {what} (character {}): it may hold only visible ASCII characters (`!` to `~`) other than `;`, since it is sent in a cookie and in the Authorization header",
                at + 1
            ));
        }
        Ok(Token {
            digest: Sha256::digest(t.as_bytes()).into(),
            sessions: Arc::default(),
        })
    }

    /// A new session's cookie value (64 hex digits, 256 random bits), good
    /// for [`SESSION_LIFETIME`] from `now`.
    pub fn start_session(&self, now: Instant) -> String {
        let value: String = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, ends| *ends > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(soonest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                sessions.remove(&soonest);
            }
        }
        sessions.insert(
            Sha256::digest(value.as_bytes()).into(),
            now + SESSION_LIFETIME,
        );
        value
    }

    /// Whether `value` is a session this process started that has not ended.
    fn session_open(&self, value: &str, now: Instant) -> bool {
        let d: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(&d).is_some_and(|ends| *ends > now)
    }

    /// Whether `given` is the token, in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }

    /// Whether request headers carry the token, `Authorization: Bearer T`,
    /// or the cookie of an open session.
    pub fn admits(&self, authorization: Option<&str>, cookie: Option<&str>) -> bool {
        self.admits_at(authorization, cookie, Instant::now())
    }

    fn admits_at(&self, authorization: Option<&str>, cookie: Option<&str>, now: Instant) -> bool {
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer T` too.
        let bearer = authorization
            .and_then(|a| {
                let (scheme, token) = a.split_once(' ')?;
                scheme.eq_ignore_ascii_case("Bearer").then_some(token)
            })
            .is_some_and(|t| self.matches(t.trim()));
        let cookie = session_values(cookie).any(|v| self.session_open(v, now));
        bearer || cookie
    }

    /// Ends every session a `Cookie` header presents (`/logout`): its
    /// cookie admits no one after, whoever kept a copy of it.
    pub fn end_sessions(&self, cookie: Option<&str>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for v in session_values(cookie) {
            let d: [u8; 32] = Sha256::digest(v.as_bytes()).into();
            sessions.remove(&d);
        }
    }
}

/// The values of the session cookies in a `Cookie` header.
fn session_values(cookie: Option<&str>) -> impl Iterator<Item = &str> {
    cookie
        .into_iter()
        .flat_map(|c| c.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// Whether a token may hold `c`: a cookie value and a header value must be
/// visible ASCII, and `;` would end the cookie's value.
fn token_char(c: char) -> bool {
    c.is_ascii_graphic() && c != ';'
}

/// Whether a request addressed to `host` (a `Host` header's value, or the
/// authority of an absolute request target) names this machine's loopback:
/// `localhost` (or a name under `.localhost`, which browsers resolve to
/// loopback themselves), `127.0.0.0/8` or `[::1]`, with any port. A server
/// without a token answers only those: a web page whose own name was made
/// to resolve to 127.0.0.1 (DNS rebinding) then still sends its name, and
/// is refused rather than reading the archive through the user's browser.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || is_port(port) => ip,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `:PORT` after a host: digits only.
fn is_port(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .unwrap_or(colon_port)
        .bytes()
        .all(|b| b.is_ascii_digit())
}

/// The policy of a crates/html page: [`CSP`], with the page's one inline
/// `<style>` element allowed by its SHA-256.
pub fn csp_for_page(page: &str) -> String {
    let Some(css) = page
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(css, _)| css)
    else {
        return CSP.to_owned();
    };
    use base64::Engine as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css.as_bytes()));
    CSP.replace(
        "style-src 'self'",
        &format!("style-src 'self' 'sha256-{hash}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:8080",
            "localhost.",
            "app.localhost:80",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "0.0.0.0:8080",
            "[::2]:8080",
            "[::1]x",
            "localhost:80a",
            "",
            "::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_token_is_admitted_by_header_or_cookie_only_when_equal() {
        let t = Token::from_file_text("  s3cret-token-0123456789\n").unwrap();
        assert!(t.admits(Some("Bearer s3cret-token-0123456789"), None));
        assert!(!t.admits(Some("Bearer s3cret-token-012345678"), None));
        assert!(t.admits(Some("bearer s3cret-token-0123456789"), None));
        assert!(t.admits(Some("BEARER s3cret-token-0123456789"), None));
        assert!(!t.admits(Some("Basic s3cret-token-0123456789"), None));
        assert!(!t.admits(Some("s3cret-token-0123456789"), None));
        assert!(!t.admits(None, None));
        // Never the token itself in a cookie: a session's value.
        assert!(!t.admits(None, Some("ccvault_token=s3cret-token-0123456789")));
        assert!(!t.admits(None, Some("ccvault_session=s3cret-token-0123456789")));
        let now = Instant::now();
        let session = t.start_session(now);
        assert_eq!(session.len(), 64);
        assert_ne!(session, t.start_session(now));
        let cookie = format!("a=b; ccvault_session={session}");
        assert!(t.admits_at(None, Some(&cookie), now));
        assert!(t
            .clone()
            .admits_at(None, Some(&cookie), now + SESSION_LIFETIME / 2));
        assert!(!t.admits_at(None, Some(&cookie), now + SESSION_LIFETIME));
        assert!(!t.admits(None, Some("ccvault_session=nope")));
        // Another server's token knows none of this one's sessions.
        let other = Token::from_file_text("s3cret-token-0123456789").unwrap();
        assert!(!other.admits_at(None, Some(&cookie), now));
        // Signing out ends that session alone.
        let kept = format!("ccvault_session={}", t.start_session(now));
        t.end_sessions(Some(&cookie));
        assert!(!t.admits_at(None, Some(&cookie), now));
        assert!(t.admits_at(None, Some(&kept), now));
        assert!(Token::from_file_text("short\n").is_err());
        assert!(Token::from_file_text("").is_err());
    }

    #[test]
    fn a_token_that_cannot_travel_in_a_cookie_or_header_is_refused() {
        for (token, what) in [
            ("correct horse battery staple", "a space (character 8)"),
            ("correct-horse;battery-staple", "a `;` (character 14)"),
            ("correct-horse\tbattery-staple", "a whitespace character"),
            ("correct-horse\u{7}battery-staple", "a control character"),
            ("correct-horse-battery-st\u{e4}ple", "a non-ASCII character"),
            (
                "correct-horse\u{a0}battery-staple",
                "a whitespace character",
            ),
        ] {
            let e = Token::from_file_text(token).unwrap_err();
            assert!(e.contains(what), "{token:?}: {e}");
            assert!(e.contains("visible ASCII"), "{e}");
            assert!(!e.contains("horse"), "the token is not shown: {e}");
        }
        // Every visible ASCII character but `;` is fine, surrounding
        // whitespace is not part of the token.
        let all: String = ('!'..='~').filter(|c| *c != ';').collect();
        let t = Token::from_file_text(&format!(" {all}\t\nsecond line")).unwrap();
        assert!(t.admits(Some(&format!("Bearer {all}")), None));
        let session = t.start_session(Instant::now());
        assert!(t.admits(None, Some(&format!("ccvault_session={session}"))));
    }

    #[test]
    fn a_page_policy_allows_its_own_style_by_hash() {
        let csp = csp_for_page("<html><style>b{}</style></html>");
        assert!(csp.contains("style-src 'self' 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("script-src 'self';"));
        assert_eq!(csp_for_page("<html></html>"), CSP);
    }
}
