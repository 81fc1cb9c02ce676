//! Conditional requests and generated ETags through the real proxy: a real Outrider in-process
//! (and the built binary, for restarts), a real HTTP/1.1 origin, a real client.
//!
//! Sections, grouped into modules: [`etags`] (generated ETags · the upstream's own ETag ·
//! bodies that are not held · HEAD · compression · streaming) · [`preconditions`]
//! (If-None-Match · If-Modified-Since · 412 · unsafe methods · If-Range · metrics). Helpers
//! are in [`helpers`].

mod etags;
mod helpers;
mod preconditions;
