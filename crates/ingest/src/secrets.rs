//! Secrets (MQTT password, Pulsar API key): read from a file or an
//! environment variable, never from a flag value (which shows in `ps`), and
//! never printed: [`Secret`]'s `Debug` and `Display` are redacted.

use std::path::Path;

use crate::{IngestError, Result};

/// A secret value. Formatting it prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Query parameters that carry a credential (compared case-insensitively,
/// with `-` and `_` ignored): their values never reach an error or a log.
const SECRET_QUERY_KEYS: &[&str] = &[
    "xapikey",
    "apikey",
    "token",
    "accesstoken",
    "password",
    "passwd",
    "secret",
    "auth",
];

/// Whether the query parameter `key` carries a credential.
pub fn is_secret_query_key(key: &str) -> bool {
    // As the server reads it: `x-api%2Dkey` is `x-api-key`.
    let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    let folded: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_QUERY_KEYS.contains(&folded.as_str())
}

/// `url` fit to print: a user-info part (`user:password@`) becomes `***@` and
/// the value of every credential query parameter becomes `***`. Every error
/// that quotes a URL the operator gave goes through this.
///
/// A password may be typed with any character unencoded (`/`, `?`, `#`,
/// `@`), so the user-info part runs to the last `@` after the scheme: in
/// doubt, more of the URL is hidden, never less.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            match rest.rfind('@') {
                Some(at) => {
                    out.push_str("***@");
                    let host = rest.get(at + 1..).unwrap_or("");
                    if rest.find('?').is_some_and(|q| q < at) {
                        // The cut went past the '?': what is left may be
                        // query parameters.
                        push_params(&mut out, host);
                        return out;
                    }
                    host
                }
                None => rest,
            }
        }
        None => url,
    };
    match rest.split_once('?') {
        Some((before_query, query)) => {
            out.push_str(before_query);
            out.push('?');
            push_params(&mut out, query);
        }
        None => out.push_str(rest),
    }
    out
}

/// Appends the `&`-separated `query`, credential values as `***`.
fn push_params(out: &mut String, query: &str) {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_secret_query_key(key) => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
}

/// Loads a secret: from `file` when given (surrounding whitespace and the
/// trailing newline trimmed; `-` is standard input, read to its end, so a
/// secret can come from a password manager's pipe without touching disk),
/// else from the environment variable `env_var` when set and non-empty,
/// else `None`. `what` names the secret in errors.
pub fn load(file: Option<&Path>, env_var: &str, what: &str) -> Result<Option<Secret>> {
    if let Some(path) = file {
        let from_stdin = path == Path::new("-");
        let (text, source) = if from_stdin {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            (read.map(|_| text), "from standard input".to_owned())
        } else {
            (
                std::fs::read_to_string(path),
                format!("file {}", path.display()),
            )
        };
        let text =
            text.map_err(|e| IngestError::Config(format!("cannot read {what} {source}: {e}")))?;
        if !from_stdin {
            warn_if_others_may_read(path, what);
        }
        let value = text.trim();
        if value.is_empty() {
            return Err(IngestError::Config(format!("{what} {source} is empty")));
        }
        return Ok(Some(Secret::new(value)));
    }
    match std::env::var(env_var) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
        _ => Ok(None),
    }
}

/// Warns when the file of a secret (`what`: "API key", "TLS key", …) at
/// `path` is open to its group or others: a secret is meant for its owner.
/// A warning, not a refusal: the operator may share it on purpose. Said
/// once a process for each file, however often it is read (a client key
/// was warned of three times at start: an outside audit).
pub fn warn_if_others_may_read(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    static WARNED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        let first = || match WARNED.lock() {
            Ok(mut warned) if !warned.iter().any(|p| p == path) => {
                warned.push(path.to_path_buf());
                true
            }
            Ok(_) => false,
            Err(_) => true,
        };
        if mode & 0o077 != 0 && first() {
            tracing::warn!(
                "{what} file {} is open to other users (mode {mode:03o}; chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_wins_and_is_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "s3cret\n").unwrap();
        let s = load(Some(&f), "CCVAULT_TEST_NO_SUCH_VAR", "API key")
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        std::fs::write(&f, "\n").unwrap();
        assert!(load(Some(&f), "X", "API key").is_err());
        assert!(load(None, "CCVAULT_TEST_NO_SUCH_VAR", "API key")
            .unwrap()
            .is_none());
    }

    #[test]
    fn urls_are_printed_without_their_credentials() {
        assert_eq!(
            redact_url("mqtts://alice:hunter2@broker:8883/x"),
            "mqtts://***@broker:8883/x"
        );
        assert_eq!(
            redact_url(
                "wss://h/ws/v2/reader/persistent/t/n/x?X-API-Key=k3y&receiverQueueSize=5&token=t0k"
            ),
            "wss://h/ws/v2/reader/persistent/t/n/x?X-API-Key=***&receiverQueueSize=5&token=***"
        );
        assert_eq!(redact_url("ws://p@ss@host/a?b=c"), "ws://***@host/a?b=c");
        assert_eq!(redact_url("not a url"), "not a url");
        assert!(is_secret_query_key("x_api_key") && !is_secret_query_key("messageId"));
    }
}
