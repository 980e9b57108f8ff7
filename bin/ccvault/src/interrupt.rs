//! SIGINT and SIGTERM during a command that can stop cleanly (`import`):
//! the first asks it to stop (it finishes making durable what it appended
//! and says what it did); a second ends the process at once, as the
//! signal's default action would, in case the stop waits on something
//! that never comes (a quiet pipe).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

pub struct Interrupt {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Interrupt {
    pub fn install() -> anyhow::Result<Interrupt> {
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            // The default action first: it runs only once `stop` is set,
            // which the handler registered after it does.
            signal_hook::flag::register_conditional_default(signal, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
                .and_then(|_| {
                    signal_hook::flag::register_usize(signal, Arc::clone(&which), signal as usize)
                })
                .context("cannot handle SIGINT and SIGTERM")?;
        }
        Ok(Interrupt { stop, which })
    }

    /// From now on the first signal ends the process at once, as its
    /// default action does (for work past the point a stop could
    /// shorten, which loses nothing when ended).
    pub fn end_at_once(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Turns true at the first signal.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The signal that asked to stop, by name, and the exit code that says
    /// it (128 + its number, as a shell reports a process it ended).
    pub fn received(&self) -> Option<(&'static str, u8)> {
        match self.which.load(Ordering::Relaxed) {
            0 => None,
            s if s == SIGINT as usize => Some(("SIGINT", 128 + SIGINT as u8)),
            _ => Some(("SIGTERM", 128 + SIGTERM as u8)),
        }
    }
}
