//! The Kubernetes example (`conf/k8s/*.yaml`) and the Dockerfile, checked against what Outrider
//! really listens on, serves and exports.
//!
//! Nothing is started: the manifests are parsed, the ConfigMap's policy is compiled with the
//! same `config::compile` the binary uses, and the admin endpoints and metric names are read
//! from the sources that define them. So a renamed endpoint, a metric dropped from the
//! registry, or a port changed on one side only fails here instead of in a cluster.
//!
//! Every check reports a problem rather than panicking, so that `every_check_can_fail` can
//! break the shipped files one way at a time and see each check catch it.
//!
//! Modules: [`sources`] (the texts read, and what Outrider serves and exports) · [`yaml`]
//! (YAML access) · [`world`] (the manifests, resolved) · [`checks`] (the manifest checks) ·
//! [`dockerfile`] (the Dockerfile checks) · [`shipped`] (the tests).

mod checks;
mod dockerfile;
mod shared_cache;
mod shipped;
pub(crate) mod sources;
mod world;
mod yaml;
