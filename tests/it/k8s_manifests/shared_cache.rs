//! `[cache.shared] url` in the ConfigMap's policy names a Service in conf/k8s, on one of its
//! ports, whose selector reaches a Deployment with a container listening on its target port.

use serde_yaml_ng::Value;

use crate::k8s_manifests::world::{of_kind, workloads, World};
use crate::k8s_manifests::yaml::{at, resolve_port, selects, seq_at, str_at};

pub(crate) fn shared_cache_service(w: &World) -> Result<(), String> {
    let Some(shared) = &w.policy.cache_store.shared else {
        return Ok(());
    };
    let url = shared.url.as_str();
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{url}: no scheme"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u64>().map_err(|e| format!("{url}: {e}"))?,
        ),
        None => (host_port, 6379),
    };
    // `name`, `name.namespace`, `name.namespace.svc.cluster.local`: the Service's name first.
    let service_name = host.split('.').next().unwrap_or_default();
    let service = of_kind(&w.docs, "Service")
        .into_iter()
        .find(|d| str_at(&d.value, &["metadata", "name"]) == Some(service_name))
        .ok_or_else(|| format!("{url}: no Service {service_name} in conf/k8s"))?;
    let ports = seq_at(&service.value, &["spec", "ports"]);
    let target = ports
        .iter()
        .find(|p| at(p, &["port"]).and_then(Value::as_u64) == Some(port))
        .map(|p| at(p, &["targetPort"]).or_else(|| at(p, &["port"])).cloned())
        .ok_or_else(|| format!("{url}: Service {service_name} has no port {port}"))?
        .ok_or_else(|| format!("Service {service_name}: a port without a target"))?;
    let selector = at(&service.value, &["spec", "selector"]);
    let reached = workloads(&w.docs).into_iter().any(|(labels, containers)| {
        selects(selector, &labels)
            && containers
                .iter()
                .any(|c| resolve_port(c, &target).is_some())
    });
    if !reached {
        return Err(format!(
            "{url}: Service {service_name} selects no Deployment with a container port {target:?}"
        ));
    }
    Ok(())
}
