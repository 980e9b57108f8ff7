//! The legs of one customer contact: shared with the server, which shows the
//! same contact on its page and in `/api/contact/{guid}`.

pub use ccvault_serve::contact::*;
