//! A minimal HTTP/1.1 client for the server tests (and benchmarks): one
//! request per connection, `Content-Length` or chunked bodies, and a reader
//! of Server-Sent Events. Blocking std sockets; loopback only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

fn head(stream: &mut impl BufRead) -> (u16, BTreeMap<String, String>) {
    let mut line = String::new();
    stream.read_line(&mut line).expect("read the status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).expect("read a header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    (status, headers)
}

fn read_body(stream: &mut impl BufRead, headers: &BTreeMap<String, String>) -> Vec<u8> {
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).expect("read a chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            stream.read_exact(&mut chunk).expect("read a chunk");
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers.get("content-length") {
        let n: usize = n.parse().expect("content-length");
        body.resize(n, 0);
        stream.read_exact(&mut body).expect("read the body");
    } else {
        stream.read_to_end(&mut body).expect("read the body");
    }
    body
}

/// The request's bytes; a `Host: localhost` header unless `headers` name
/// the host (a `Host` of [`NO_HOST`]: none at all).
fn request_text(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("host") && *v == NO_HOST {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A `Host` header value that sends no `Host` header.
pub const NO_HOST: &str = "(none)";

/// Sends one request over any stream and reads the response.
pub fn exchange(
    stream: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(&request_text(method, path, headers, body))
        .expect("send the request");
    let (status, headers) = head(&mut stream);
    let body = read_body(&mut stream, &headers);
    Response {
        status,
        headers,
        body,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(connect(addr), "GET", path, &[], b"")
}

pub fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    exchange(connect(addr), "GET", path, headers, b"")
}

pub fn post_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    exchange(connect(addr), "POST", path, headers, b"")
}

pub fn post_form(addr: SocketAddr, path: &str, form: &str) -> Response {
    exchange(
        connect(addr),
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
}

/// A Server-Sent Events stream being read.
pub struct Events {
    stream: BufReader<TcpStream>,
    chunked: bool,
    /// The body's decoder when it is sent in gzip.
    gunzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
    /// Bytes of the body received (de-chunked, before any decoding).
    pub wire_bytes: usize,
    pending: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
}

/// One event: its name and data.
#[derive(Debug, Clone)]
pub struct Message {
    pub event: String,
    pub data: String,
}

impl Events {
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut s = connect(addr);
        s.write_all(&request_text("GET", path, headers, b""))
            .expect("send the request");
        let mut stream = BufReader::new(s);
        let (status, headers) = head(&mut stream);
        let chunked = headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"));
        let gunzip = (headers.get("content-encoding").map(String::as_str) == Some("gzip"))
            .then(|| flate2::write::GzDecoder::new(Vec::new()));
        Events {
            stream,
            chunked,
            gunzip,
            wire_bytes: 0,
            pending: String::new(),
            status,
            headers,
        }
    }

    /// More of the body, de-chunked; `false` at its end.
    fn fill(&mut self) -> bool {
        if self.chunked {
            let mut size = String::new();
            if self.stream.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return false;
            };
            if n == 0 {
                return false;
            }
            let mut chunk = vec![0; n + 2];
            if self.stream.read_exact(&mut chunk).is_err() {
                return false;
            }
            chunk.truncate(n);
            self.received(&chunk);
        } else {
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.received(&buf[..n]),
            }
        }
        true
    }

    /// Takes bytes of the body, decoding them if it is in gzip: whatever
    /// they complete is readable at once (the server flushes each message).
    fn received(&mut self, bytes: &[u8]) {
        self.wire_bytes += bytes.len();
        match &mut self.gunzip {
            Some(d) => {
                d.write_all(bytes).expect("a valid gzip stream");
                d.flush().expect("a valid gzip stream");
                let plain = std::mem::take(d.get_mut());
                self.pending.push_str(&String::from_utf8_lossy(&plain));
            }
            None => self.pending.push_str(&String::from_utf8_lossy(bytes)),
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the
    /// stream ends.
    pub fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut msg = Message {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        msg.event = v.trim_start().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !msg.data.is_empty() {
                            msg.data.push('\n');
                        }
                        msg.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(msg);
                }
                continue;
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads events until `want` accepts one; fails after `timeout`.
    pub fn until(&mut self, timeout: Duration, mut want: impl FnMut(&Message) -> bool) -> Message {
        let deadline = Instant::now() + timeout;
        self.stream
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        loop {
            assert!(
                Instant::now() < deadline,
                "no wanted event within {timeout:?}"
            );
            match self.next() {
                Some(m) if want(&m) => return m,
                Some(_) => {}
                None => panic!("the event stream ended"),
            }
        }
    }
}
