//! Response compression policy: which coding a client gets (`negotiate`) and whether a
//! response may be compressed at all (`decide`, `could_compress`).
//!
//! Pure: plain values in, decisions out. No Pingora, no I/O, no clock; `proxy/` wires it in.

mod decide;
mod negotiate;

pub use decide::{
    could_compress, decide, decide_with_length, media_type_matches, Decision, ResponseFacts,
    SkipReason,
};
pub use negotiate::negotiate;
