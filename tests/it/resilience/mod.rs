//! Resilience in front of a fragile backend (issue 22), through the real proxy.

mod rate_limit;
