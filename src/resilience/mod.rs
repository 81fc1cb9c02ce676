//! Resilience decisions (issue 22) that need no Pingora: per-key rate limiting and the retry
//! policy's budget and backoff, with injected time. Pure: no clock (every `now` is passed in),
//! no I/O, no task; `proxy/` is the glue.

mod health;
mod rate_limit;
mod retry;

pub use health::{EndpointHealth, HealthRegistry};
pub use rate_limit::{Decision, RateLimiter, RateLimiters};
pub use retry::{backoff, RetryBudget, RetryBudgets, RetryReason, BUCKETS, MIN_RETRIES};
