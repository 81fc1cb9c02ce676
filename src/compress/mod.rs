//! Response compression: which coding a client gets (`negotiate`), whether a response may be
//! compressed at all (`decide`, `could_compress`), and the streaming `Encoder`.
//!
//! Pure: plain values and bytes in, decisions and bytes out. No Pingora, no I/O, no clock;
//! `proxy/` wires it in.

mod decide;
mod encoder;
mod negotiate;

pub use decide::{
    could_compress, decide, decide_with_length, has_directive, media_type_matches, Decision,
    ResponseFacts, SkipReason,
};
pub use encoder::Encoder;
pub use negotiate::negotiate;
