//! `outrider check`: the real binary on real files, and the compiled values behind it.
//!
//! Every error test writes a small conf file, runs `outrider check --config FILE`, and asserts
//! the exit status and the exact `FILE:LINE:COL: key.path: ` prefix of each error line. The
//! line and column numbers were counted by hand from the TOML text in each test (1-based,
//! columns in characters), so a regression in error location fails here.
//!
//! Modules: [`errors`] (error classes and their locations) · [`valid`] (valid files, and the
//! reference config documenting every key at its default) · [`compiled`] (compiled values,
//! library level) · [`slo`] (objectives and the slow-request log). Helpers (running the binary, asserting its output) are in [`helpers`].

mod compiled;
mod conformance;
mod errors;
pub(crate) mod helpers;
mod resilience;
mod shared_tier;
mod slo;
mod valid;
