//! redb trusts the bytes of its file: some damaged index files make it panic
//! (e.g. a slice index out of range in a B-tree page). The index is derived
//! data, so damage must surface as an error that says "rebuild it"
//! (`ccvault reindex`), never as a panic. Every entry point of this crate
//! that reads or writes redb runs inside [`guarded`]: a panic raised while it
//! runs is caught and returned as [`IndexError::Corrupt`]. Caller code run
//! from inside a guarded call (a visitor callback) runs [`unguarded`], so a
//! bug there still panics as usual.
//!
//! Which panics are redb's is decided by the payload, not by a panic hook:
//! [`unguarded`] wraps a caller's panic in a [`CallerPanic`] marker on its
//! way out, and [`guarded`] re-raises exactly those (with their original
//! payload) and turns every other one into an error. A panic hook is
//! installed to keep redb's panic messages off stderr (if the program
//! replaces it, the messages show but the outcome is the same), and to end
//! the process with a plain error when a thread cannot be started, which
//! the standard library raises as a panic and a guard would otherwise
//! report as damage.
//!
//! Limits:
//! - The guard needs unwinding. Built with `panic = "abort"` it could not
//!   catch anything, so this crate refuses to build that way.
//! - A damaged page that makes redb overflow its stack, or abort, ends the
//!   process: that is not a panic and cannot be caught.
//! - State redb held while it panicked is dropped with the failed call; the
//!   caller treats the index as damaged (`ccvault reindex`), never retries on it.

#[cfg(panic = "abort")]
compile_error!(
    "ccvault-index needs panic = \"unwind\": its guard turns redb panics on a damaged index into errors"
);

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use crate::{IndexError, Result};

thread_local! {
    /// Depth of `guarded` calls on this thread (0 inside `unguarded`).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic silenced by the hook was raised (a detail for
    /// the error message; classification never depends on it).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The payload of a panic raised by caller code inside [`unguarded`]: it
/// passes through every [`guarded`] call and leaves the outermost one as the
/// original payload.
struct CallerPanic(Box<dyn Any + Send>);

/// Installs (once per process) the panic hook: a thread the system will
/// not start ends the process with an error (`out_of_threads`); other
/// panics stay silent inside `guarded` and go to the previous hook
/// elsewhere. The CLI installs it first thing, so that it sees the panics
/// raised before any guarded call too.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            out_of_threads(&message(info.payload()));
            if DEPTH.with(Cell::get) > 0 {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", source_file(l.file()), l.line()));
                LOCATION.with(|c| *c.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// A panic's file as its reader can place it: a dependency's path from its
/// crate's directory (`redb-4.6.0/src/…`), without the building machine's
/// cargo registry (`/root/.cargo/registry/src/index.crates.io-…/`), which
/// an outside audit found in a damaged index's message.
fn source_file(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    match file.find(REGISTRY) {
        Some(i) => {
            let index_dir_on = &file[i + REGISTRY.len()..];
            index_dir_on
                .split_once('/')
                .map_or(index_dir_on, |(_, crate_path)| crate_path)
        }
        None => file,
    }
}

/// Ends the process with exit 1 and one line on stderr when `panic` is the
/// standard library's or tokio's failure to start a thread (`ulimit -u`, a
/// cgroup's `pids.max`, systemd's `TasksMax`): caught by a guard, it read as
/// a damaged file, and elsewhere it was a panic, exit 101 (outside audit,
/// 2026-12-07). Ending there is what a crash is, which every file of the
/// archive survives: what was durable stays so.
fn out_of_threads(panic: &str) {
    if !(panic.starts_with("failed to spawn thread") || panic.contains("can't spawn worker thread"))
    {
        return;
    }
    // The OS's words, from the `io::Error`'s debug form, when it has them.
    let why = panic
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(panic, |(why, _)| why);
    let _ = writeln!(
        std::io::stderr(),
        "ccvault: error: cannot start a thread ({why}): the process or its user is out of threads \
         (ulimit -u, a cgroup's pids.max, systemd's TasksMax); nothing durable is lost: \
         run the command again once threads are free"
    );
    std::process::exit(1);
}

/// Restores the guard depth when dropped (also while unwinding).
struct Depth(u32);

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f`, turning a panic inside it (from redb reading a damaged file)
/// into an error naming the index file.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    guard_redb(f, |why| IndexError::Corrupt {
        path: path.display().to_string(),
        what: format!("the index file is damaged (reading it failed: {why})"),
    })
}

/// Runs `f`, turning a panic inside it (redb reading a damaged file) into
/// the error `damaged` makes of the panic's message and place; a panic of
/// caller code inside [`unguarded`] passes through unchanged. The guard of
/// every redb file ccvault derives (the index here, `projections.redb`).
pub fn guard_redb<T, E>(
    f: impl FnOnce() -> std::result::Result<T, E>,
    damaged: impl FnOnce(String) -> E,
) -> std::result::Result<T, E> {
    install_hook();
    let outer = DEPTH.with(|d| d.replace(d.get() + 1));
    let result = {
        let _restore = Depth(outer);
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    let payload = match result {
        Ok(r) => return r,
        Err(payload) => payload,
    };
    match payload.downcast::<CallerPanic>() {
        // A panic of caller code: not ours to hide. Nested in another guarded
        // call it stays marked, so that call re-raises it too.
        Ok(caller) if outer > 0 => panic::resume_unwind(caller),
        Ok(caller) => panic::resume_unwind(caller.0),
        Err(payload) => {
            let at = LOCATION
                .with(|c| c.borrow_mut().take())
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            Err(damaged(format!("{}{at}", message(payload.as_ref()))))
        }
    }
}

/// What makes a redb error the sign of a damaged file rather than of the
/// machine: a file redb finds corrupted, shorter than its own structures
/// say (redb reads past its end), or without redb's header ("Not a redb
/// database"). The file is derived, so the caller says which command
/// replaces it.
pub fn redb_damage(e: &redb::Error) -> Option<String> {
    match e {
        redb::Error::Corrupted(why) => Some(why.clone()),
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Some(format!("it ends before its last page ({io})"))
        }
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Some(io.to_string()),
        _ => None,
    }
}

/// Runs caller code from inside a guarded call: its panics are not caught.
pub fn unguarded<T>(f: impl FnOnce() -> T) -> T {
    let outer = DEPTH.with(|d| d.replace(0));
    let _restore = Depth(outer);
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => panic::resume_unwind(Box::new(CallerPanic(payload))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panics_file_is_named_from_its_crate_not_the_build_machine() {
        assert_eq!(
            source_file("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redb-4.6.0/src/tree_store/btree_cursor.rs"),
            "redb-4.6.0/src/tree_store/btree_cursor.rs"
        );
        assert_eq!(
            source_file("crates/index/src/guard.rs"),
            "crates/index/src/guard.rs"
        );
        assert_eq!(source_file("/x/registry/src/"), "");
    }

    #[test]
    fn a_panic_inside_becomes_an_error_and_others_propagate() {
        let p = Path::new("/x/index.redb");
        let r: Result<()> = guarded(p, || {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            let _ = v[i];
            Ok(())
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("/x/index.redb") && e.contains("damaged"), "{e}");
        assert!(e.contains("index out of bounds"), "{e}");
        assert_eq!(guarded(p, || Ok(7)).unwrap(), 7);
        let bug = panic::catch_unwind(|| guarded::<()>(p, || unguarded(|| panic!("caller bug"))))
            .unwrap_err();
        assert_eq!(message(bug.as_ref()), "caller bug", "the original payload");
        assert_eq!(DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn a_callers_panic_passes_nested_guards_and_a_replaced_hook_changes_nothing() {
        let p = Path::new("/x/index.redb");
        install_hook();
        // Another part of the program takes the hook over (and puts a
        // silent one in its place): classification does not need ours.
        let ours = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let bug = panic::catch_unwind(|| {
            guarded::<()>(p, || {
                guarded(p, || unguarded(|| panic!("nested caller bug")))
            })
        })
        .unwrap_err();
        let redb: Result<()> = guarded(p, || guarded(p, || panic!("redb: bad page")));
        panic::set_hook(ours);
        assert_eq!(message(bug.as_ref()), "nested caller bug");
        let e = redb.unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("redb: bad page"), "{e}");
    }
}
