//! A long-running `ccvault` process under test (e.g. `ingest`): stdout
//! piped, stderr (its log) in a file the test can search, SIGKILLed on drop
//! so a failing test never leaves it behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ccvault_store::ArchiveReader;

pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` with logging at `info` into the file `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        cmd.env("CCVAULT_LOG", "info");
        Daemon::spawn_as_set(cmd, log)
    }

    /// Spawns `cmd` with the logging its environment and flags set.
    pub fn spawn_as_set(mut cmd: Command, log: PathBuf) -> Daemon {
        let stderr = std::fs::File::create(&log).expect("create the daemon's log file");
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot start ccvault");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// Everything the process logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `needle`; fails if the process exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(needle) {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "exited ({st}) before logging {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "did not log {needle:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the archive in `data` holds at least `n` records (read at
    /// library level while this process keeps writing it); fails with this
    /// process's log after `timeout`.
    pub fn wait_records(&self, data: &Path, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = ArchiveReader::open(data) {
                if r.stats().map(|s| s.counters.records).unwrap_or(0) >= n {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the archive did not reach {n} records:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The next line the process prints on stdout (blocking until it does).
    pub fn stdout_line(&mut self) -> String {
        let out = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.as_mut())
            .expect("stdout is piped");
        let mut line = String::new();
        let mut byte = [0u8; 1];
        // Byte by byte: a buffered reader would keep what follows the line.
        while out.read(&mut byte).unwrap_or(0) == 1 {
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0] as char);
        }
        line
    }

    /// Where a process that serves the web application (`serve`, `ingest
    /// --serve`) listens, from the line it prints first ("serving
    /// http://ADDR/" or "serving https://ADDR/"); whether it is HTTPS.
    pub fn serving_addr(&mut self) -> (std::net::SocketAddr, bool) {
        let line = self.stdout_line();
        let (rest, tls) = match line.strip_prefix("serving https://") {
            Some(rest) => (Some(rest), true),
            None => (line.strip_prefix("serving http://"), false),
        };
        let addr = rest
            .and_then(|a| a.strip_suffix('/'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "expected \"serving http(s)://ADDR/\" first, got {line:?}:\n{}",
                    self.stderr()
                )
            });
        (addr, tls)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself: its status and stdout.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let mut c = self.child.take().expect("not running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait().expect("wait for the daemon") {
                let mut out = String::new();
                if let Some(mut so) = c.stdout.take() {
                    let _ = so.read_to_string(&mut out);
                }
                return (st, out);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("did not exit within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then [`Daemon::wait_exit`] (30 s).
    pub fn terminate(&mut self) -> (ExitStatus, String) {
        let pid = self.child.as_ref().expect("not running").id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
