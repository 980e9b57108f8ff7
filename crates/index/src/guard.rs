//! redb trusts the bytes of its file: some damaged index files make it panic
//! (e.g. a slice index out of range in a B-tree page). The index is derived
//! data, so damage must surface as an error that says "rebuild it"
//! (`ccvault reindex`), never as a panic. Every entry point of this crate
//! that reads or writes redb runs inside [`guarded`]: a panic raised while it
//! runs is caught, kept off stderr, and returned as [`IndexError::Corrupt`].
//! Caller code run from inside a guarded call (a visitor callback) runs
//! [`unguarded`], so a bug there still panics as usual.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use crate::{IndexError, Result};

thread_local! {
    /// Depth of `guarded` calls on this thread (0 inside `unguarded`).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message of the panic caught by the innermost `guarded` call.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that stays silent for panics
/// inside `guarded` and defers to the previous hook for all others.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Restores the guard depth when dropped (also while unwinding).
struct Depth(u32);

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

/// Runs `f`, turning a panic inside it (from redb reading a damaged file)
/// into an error naming the index file.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    let outer = DEPTH.with(|d| d.replace(d.get() + 1));
    let result = {
        let _restore = Depth(outer);
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    match result {
        Ok(r) => r,
        Err(payload) => match CAUGHT.with(|c| c.borrow_mut().take()) {
            Some(msg) => Err(IndexError::Corrupt {
                path: path.display().to_string(),
                what: format!("the index file is damaged (reading it failed: {msg})"),
            }),
            // A panic of caller code run `unguarded`: not ours to hide.
            None => panic::resume_unwind(payload),
        },
    }
}

/// Runs caller code from inside a guarded call: its panics are not caught.
pub(crate) fn unguarded<T>(f: impl FnOnce() -> T) -> T {
    let outer = DEPTH.with(|d| d.replace(0));
    let _restore = Depth(outer);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(guarded(p, || Ok(7)).unwrap(), 7);
        let bug = panic::catch_unwind(|| guarded::<()>(p, || unguarded(|| panic!("caller bug"))));
        assert!(bug.is_err(), "a caller's panic must propagate");
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
