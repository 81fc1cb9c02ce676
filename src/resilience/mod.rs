//! Resilience decisions (issue 22) that need no Pingora: per-key rate limiting with injected
//! time. Pure: no clock (every `now` is passed in), no I/O, no task; `proxy/` is the glue.

mod rate_limit;

pub use rate_limit::{Decision, RateLimiter, RateLimiters};
