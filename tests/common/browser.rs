//! A real headless Chromium for the end-to-end tests, driven through
//! WebDriver (the Debian packages `chromium` and `chromium-driver`;
//! `scripts/test.sh` installs them when root).
//!
//! Invariants:
//! - Everything it starts, it stops: `chromedriver` runs in a process group
//!   of its own, with Chromium (and Chromium's helper processes) in it; on
//!   drop the whole group is SIGKILLed, so a failing test leaves no browser
//!   behind.
//! - Nothing is shared with another run or with the user's browser: the
//!   profile is a fresh temporary directory, chromedriver listens on a port
//!   the kernel picked (`--port=0`, read back from its first line), loopback
//!   only.
//! - Every WebDriver error is a test failure that names the command and
//!   carries chromedriver's message.
//!
//! Why plain WebDriver over HTTP rather than `fantoccini`/`thirtyfour`: the
//! tests need seven commands (new session, navigate, title, execute script,
//! window size, screenshot, console log), each one JSON request and one JSON
//! answer, which the tests' own HTTP client (`common::http`) sends; the
//! tests are synchronous. `fantoccini` would bring hyper's client, the
//! `webdriver` and `cookie` crates and an async runtime for no gain here.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The browser window's size in CSS pixels, for stable screenshots.
pub const WINDOW: (u32, u32) = (1280, 900);

fn find_binary(env: &str, candidates: &[&str], package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return p.to_path_buf();
        }
    }
    panic!(
        "{package} is not installed: the browser tests need it (run scripts/test.sh as root, or `apt-get install -y chromium chromium-driver`; or set {env})"
    );
}

/// A chromedriver with one Chromium session.
pub struct Browser {
    driver: Option<Child>,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a throw-away profile
    /// and a [`WINDOW`]-sized window.
    pub fn start() -> Browser {
        let driver_bin = find_binary(
            "CCVAULT_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromedriver (package chromium-driver)",
        );
        // The real binary, not Debian's /usr/bin/chromium shell wrapper,
        // which adds flags from /etc/chromium.d that a test should not get.
        let chromium = find_binary(
            "CCVAULT_CHROMIUM",
            &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
            "chromium",
        );
        let profile = tempfile::tempdir().expect("create a profile directory");
        let mut cmd = Command::new(&driver_bin);
        cmd.arg("--port=0")
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let port = read_port(&mut driver);
        let mut browser = Browser {
            driver: Some(driver),
            port,
            session: String::new(),
            _profile: profile,
        };
        let args = [
            "--headless=new".to_string(),
            // The tests run as root in a container: Chromium's sandbox needs
            // user namespaces it may not have there.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--hide-scrollbars".to_string(),
            "--no-first-run".to_string(),
            "--no-default-browser-check".to_string(),
            "--disable-extensions".to_string(),
            "--disable-background-networking".to_string(),
            "--force-device-scale-factor=1".to_string(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": args,
                    },
                    // Keep the console, for `console_log`.
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let answer = browser.call("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: no sessionId in {answer}"))
            .to_string();
        browser
    }

    /// One WebDriver command: its `value`, or a panic naming the command and
    /// chromedriver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let stream = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: cannot connect: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = match (method, body) {
            ("POST", None) => "{}".to_string(),
            (_, None) => String::new(),
            (_, Some(b)) => b.to_string(),
        };
        let response = super::http::exchange(
            stream,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let text = response.text();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON ({e}): {text}"));
        let value = json["value"].clone();
        if response.status != 200 || value.get("error").is_some_and(|e| !e.is_null()) {
            panic!(
                "WebDriver {method} {path}: {} {}: {}",
                response.status, value["error"], value["message"]
            );
        }
        value
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    pub fn title(&self) -> String {
        self.call("GET", &self.session_path("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body: `return …;`) in the page with
    /// `arguments` = `args`; its result as JSON.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` until it returns something other than `null`/`false`
    /// and returns that; panics with `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(script, args.clone());
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; the page says:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens the wallboard at `url` and waits until its script has applied
    /// the first `wallboard` message of `/events` (the status line says
    /// `live`; before that it shows the state the server rendered).
    pub fn open_wallboard(&self, url: &str) {
        self.goto(url);
        self.wait_for(
            "the wallboard's first message",
            Duration::from_secs(30),
            "var s = document.getElementById('status');
             return s && s.className === 'live';",
            json!([]),
        );
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.execute(
            "return document.body ? document.body.innerText : '';",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The browser console's entries since the last call (chromedriver's
    /// log endpoint): objects with `level` ("SEVERE", "WARNING", "INFO"…),
    /// `message` and `timestamp`.
    pub fn console_log(&self) -> Vec<Value> {
        match self.call(
            "POST",
            &self.session_path("/se/log"),
            Some(json!({ "type": "browser" })),
        ) {
            Value::Array(entries) => entries,
            other => panic!("the console log is not a list: {other}"),
        }
    }

    pub fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.session_path("/window/rect"),
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// A PNG of the viewport.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.call("GET", &self.session_path("/screenshot"), None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("the screenshot is not base64")
    }

    /// Writes a PNG of the whole page (the window grown to the page's height,
    /// at most `max_height`, then set back) to `path`.
    pub fn screenshot_page(&self, path: &Path, max_height: u32) {
        let height = self
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                json!([]),
            )
            .as_u64()
            .unwrap_or(WINDOW.1 as u64) as u32;
        self.set_window_size(WINDOW.0, height.clamp(WINDOW.1, max_height));
        let png = self.screenshot_png();
        self.set_window_size(WINDOW.0, WINDOW.1);
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// chromedriver's port, from its line "ChromeDriver was started
/// successfully on port N." (it chose N itself: `--port=0`).
fn read_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver's stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut seen = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(seen));
                    return;
                }
                Ok(_) => {}
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port = rest.trim().trim_end_matches('.').parse::<u16>();
                let _ = tx.send(port.map_err(|e| format!("{e}: {line}")));
                break;
            }
        }
        // Keep draining so chromedriver never blocks on a full pipe.
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(port)) => port,
        Ok(Err(said)) => panic!("chromedriver did not say its port; it said:\n{said}"),
        Err(_) => panic!("chromedriver did not start within 20 s"),
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            // The group: chromedriver and every Chromium process it started
            // (Chromium's crash handlers, in sessions of their own, exit when
            // the browser is gone). No DELETE of the session first: a drop
            // while a test panics must not risk a second panic.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", driver.id())])
                .stderr(Stdio::null())
                .status();
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }
}
