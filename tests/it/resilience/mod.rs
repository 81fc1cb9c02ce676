//! Resilience in front of a fragile backend (issue 22), through the real proxy.

mod deadline;
mod header_timeout;
mod health_check;
mod hop_by_hop;
mod pipelining;
mod rate_limit;
mod retry;
