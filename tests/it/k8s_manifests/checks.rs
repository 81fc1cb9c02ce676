//! The manifest checks, each returning the first problem it finds.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde_yaml_ng::Value;

use crate::k8s_manifests::sources::Sources;
use crate::k8s_manifests::world::{of_kind, only, Doc, World};
use crate::k8s_manifests::yaml::{
    at, named, quantity_bytes, resolve_port, selects, seq_at, str_at, whole_seconds,
    FINAL_STOP_SECONDS,
};

// ---------------------------------------------------------------------------------------------
// The checks. Each returns the first problem it finds.

type Check = Result<(), String>;

fn container_ports(w: &World) -> Check {
    let data = w.data_port()?;
    match w.port_named("http") {
        Some(p) if p == data => {}
        other => {
            return Err(format!(
                "outrider container port `http` is {other:?}, the policy's data port (server.listen) is {data}"
            ))
        }
    }
    match w.port_named("admin") {
        Some(p) if p == w.admin_port() => Ok(()),
        other => Err(format!(
            "outrider container port `admin` is {other:?}, the policy's admin port (admin.listen) is {}",
            w.admin_port()
        )),
    }
}

fn listeners_reachable(w: &World) -> Check {
    // The kubelet and Prometheus connect to the pod IP, never to the container's loopback.
    if w.policy.admin.listen.ip().is_loopback() {
        return Err(format!(
            "admin.listen {} is loopback: probes and scrapes on the pod IP cannot reach it",
            w.policy.admin.listen
        ));
    }
    match w.policy.server.listen.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Err(format!(
            "server.listen {a} is loopback: the Service cannot reach it"
        )),
        None => Ok(()),
    }
}

fn probes(w: &World) -> Check {
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = at(&w.outrider, &[probe, "httpGet"])
            .ok_or_else(|| format!("outrider has no {probe}.httpGet"))?;
        let got = str_at(get, &["path"]).unwrap_or_default();
        if got != path {
            return Err(format!("outrider {probe} asks {got:?}, expected {path:?}"));
        }
        if !w.serves_get(got) {
            return Err(format!(
                "outrider {probe} asks {got:?}, which is not a GET endpoint in src/admin/endpoints.rs"
            ));
        }
        let port = at(get, &["port"]).and_then(|p| resolve_port(&w.outrider, p));
        if port != Some(w.admin_port()) {
            return Err(format!(
                "outrider {probe} goes to port {port:?}, the admin port is {}",
                w.admin_port()
            ));
        }
    }
    Ok(())
}

fn app_probes_through_outrider(w: &World) -> Check {
    // The app binds loopback, so a probe of it on the pod IP must come through the data port.
    let data = w.data_port()?;
    for c in seq_at(&w.pod, &["containers"]) {
        let name = str_at(c, &["name"]).unwrap_or_default();
        if name == "outrider" {
            continue;
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let Some(port) = at(c, &[probe, "httpGet", "port"]) else {
                continue;
            };
            let resolved = resolve_port(c, port);
            if resolved != Some(data) {
                return Err(format!(
                    "container {name} {probe} goes to port {resolved:?}, Outrider's data port is {data}"
                ));
            }
        }
    }
    Ok(())
}

fn liveness_outlasts_drain(w: &World) -> Check {
    // The admin listener closes with the data listeners when a drain starts; the liveness
    // probe must not give up on the container before the drain can end.
    let live = at(&w.outrider, &["livenessProbe"]).ok_or("outrider has no livenessProbe")?;
    let period = at(live, &["periodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let failures = at(live, &["failureThreshold"])
        .and_then(Value::as_u64)
        .unwrap_or(3);
    let drain = whole_seconds(w.policy.server.grace_period) + FINAL_STOP_SECONDS;
    if period * failures > drain {
        Ok(())
    } else {
        Err(format!(
            "livenessProbe gives up after {period}s x {failures} = {}s, within a drain of up to {drain}s",
            period * failures
        ))
    }
}

fn config_mount(w: &World) -> Check {
    let dir = w.config_path.parent().unwrap_or(Path::new("/"));
    let mounts = seq_at(&w.outrider, &["volumeMounts"]);
    if let Some(m) = mounts.iter().find(|m| str_at(m, &["subPath"]).is_some()) {
        let path = str_at(m, &["mountPath"]).unwrap_or_default();
        return Err(format!(
            "outrider mounts {path} with subPath: such a mount never sees a ConfigMap update"
        ));
    }
    let mount = mounts
        .iter()
        .find(|m| str_at(m, &["mountPath"]).map(Path::new) == Some(dir))
        .ok_or_else(|| {
            format!(
                "no volume mounted at {} (the directory of --config {})",
                dir.display(),
                w.config_path.display()
            )
        })?;
    let volume = str_at(mount, &["name"]).unwrap_or_default();
    let source =
        named(seq_at(&w.pod, &["volumes"]), volume).and_then(|v| str_at(v, &["configMap", "name"]));
    if source != Some(w.config_map.as_str()) {
        return Err(format!(
            "the mount at {} is volume {volume:?} from ConfigMap {source:?}, expected {}",
            dir.display(),
            w.config_map
        ));
    }
    Ok(())
}

fn writable_tmp(w: &World) -> Check {
    // Pingora keeps its upgrade socket in /tmp, and the root filesystem is read-only.
    let read_only = at(&w.outrider, &["securityContext", "readOnlyRootFilesystem"])
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let tmp = seq_at(&w.outrider, &["volumeMounts"])
        .iter()
        .find(|m| str_at(m, &["mountPath"]) == Some("/tmp"));
    match tmp {
        None if read_only => Err("readOnlyRootFilesystem without a volume at /tmp".into()),
        Some(m) if at(m, &["readOnly"]).and_then(Value::as_bool) == Some(true) => {
            Err("/tmp is mounted read-only".into())
        }
        _ => Ok(()),
    }
}

fn termination_grace(w: &World) -> Check {
    let grace = at(&w.pod, &["terminationGracePeriodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(30);
    let drain = whole_seconds(w.policy.server.grace_period) + FINAL_STOP_SECONDS;
    if grace > drain {
        Ok(())
    } else {
        Err(format!(
            "terminationGracePeriodSeconds {grace} does not exceed server.grace_period {:?} \
             (+{FINAL_STOP_SECONDS}s final stop): SIGKILL would cut the drain short",
            w.policy.server.grace_period
        ))
    }
}

fn cache_fits_memory_limit(w: &World) -> Check {
    let limit = str_at(&w.outrider, &["resources", "limits", "memory"])
        .ok_or("outrider has no memory limit")?;
    let bytes = quantity_bytes(limit).ok_or_else(|| format!("unreadable quantity {limit:?}"))?;
    let cache = w.policy.cache_store.max_size;
    if cache < bytes {
        Ok(())
    } else {
        Err(format!(
            "[cache] max_size {cache} bytes does not fit the {limit} memory limit"
        ))
    }
}

fn service(w: &World) -> Check {
    let data = w.data_port()?;
    for doc in of_kind(&w.docs, "Service") {
        let name = str_at(&doc.value, &["metadata", "name"]).unwrap_or_default();
        let selector = at(&doc.value, &["spec", "selector"]);
        let other_workload = crate::k8s_manifests::world::workloads(&w.docs)
            .iter()
            .any(|(labels, _)| labels != &w.pod_labels && selects(selector, labels));
        if other_workload && !selects(selector, &w.pod_labels) {
            continue; // another workload's Service (the shared cache's Redis)
        }
        if !selects(selector, &w.pod_labels) {
            return Err(format!(
                "Service {name}: its selector does not match the pod"
            ));
        }
        let ports = seq_at(&doc.value, &["spec", "ports"]);
        if ports.is_empty() {
            return Err(format!("Service {name} has no ports"));
        }
        for p in ports {
            // Kubernetes defaults targetPort to port.
            let target = at(p, &["targetPort"]).or_else(|| at(p, &["port"]));
            let resolved = target.and_then(|t| resolve_port(&w.outrider, t));
            if resolved == Some(w.admin_port()) {
                return Err(format!("Service {name} exposes the admin port"));
            }
            if resolved != Some(data) {
                return Err(format!(
                    "Service {name} targets port {resolved:?}, the data port is {data}"
                ));
            }
        }
    }
    Ok(())
}

fn pod_monitor(w: &World) -> Check {
    let pm = &only(&w.docs, "PodMonitor")?.value;
    if str_at(pm, &["apiVersion"]) != Some("monitoring.coreos.com/v1") {
        return Err("PodMonitor: apiVersion is not monitoring.coreos.com/v1".into());
    }
    if !selects(at(pm, &["spec", "selector", "matchLabels"]), &w.pod_labels) {
        return Err("PodMonitor: its selector does not match the pod".into());
    }
    let endpoints = seq_at(pm, &["spec", "podMetricsEndpoints"]);
    if endpoints.is_empty() {
        return Err("PodMonitor: no podMetricsEndpoints".into());
    }
    for e in endpoints {
        let port = str_at(e, &["port"]).unwrap_or_default();
        if w.port_named(port) != Some(w.admin_port()) {
            return Err(format!(
                "PodMonitor scrapes port {port:?}, not the outrider container's admin port"
            ));
        }
        let path = str_at(e, &["path"]).unwrap_or("/metrics");
        if path != "/metrics" || !w.serves_get(path) {
            return Err(format!("PodMonitor scrapes {path:?}, not /metrics"));
        }
    }
    Ok(())
}

fn scrape_annotations(w: &World) -> Check {
    let get = |k: &str| {
        w.pod_annotations
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if get("prometheus.io/scrape") != "true" {
        return Err("pod annotation prometheus.io/scrape is not \"true\"".into());
    }
    if get("prometheus.io/port") != w.admin_port().to_string() {
        return Err(format!(
            "pod annotation prometheus.io/port is {:?}, the admin port is {}",
            get("prometheus.io/port"),
            w.admin_port()
        ));
    }
    let path = get("prometheus.io/path");
    if path != "/metrics" || !w.serves_get(path) {
        return Err(format!("pod annotation prometheus.io/path is {path:?}"));
    }
    Ok(())
}

/// The adapter's rules: the parsed `rules` of the ConfigMap holding `config.yaml`.
fn adapter_rules(w: &World) -> Result<Vec<Value>, String> {
    let holders: Vec<&Doc> = of_kind(&w.docs, "ConfigMap")
        .into_iter()
        .filter(|d| at(&d.value, &["data", "config.yaml"]).is_some())
        .collect();
    let [doc] = holders.as_slice() else {
        return Err(format!(
            "expected one prometheus-adapter ConfigMap (key config.yaml), found {}",
            holders.len()
        ));
    };
    let text = str_at(&doc.value, &["data", "config.yaml"]).unwrap_or_default();
    let config: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{}: config.yaml: {e}", doc.file))?;
    let rules = seq_at(&config, &["rules"]).to_vec();
    if rules.is_empty() {
        return Err(format!("{}: config.yaml has no rules", doc.file));
    }
    Ok(rules)
}

fn adapter_metrics_exist(w: &World) -> Check {
    let name = Regex::new(r"\boutrider_[A-Za-z0-9_]+").expect("regex");
    for rule in adapter_rules(w)? {
        let mut seen = 0;
        for field in [
            &["seriesQuery"][..],
            &["metricsQuery"],
            &["name", "matches"],
        ] {
            for m in name.find_iter(str_at(&rule, field).unwrap_or_default()) {
                seen += 1;
                if !w.exported.has_series(m.as_str()) {
                    return Err(format!(
                        "adapter rule {}: {} is not a series Outrider exports",
                        field.join("."),
                        m.as_str()
                    ));
                }
            }
        }
        if seen == 0 {
            return Err("an adapter rule names no outrider_ series".into());
        }
    }
    Ok(())
}

fn hpa(w: &World) -> Check {
    let h = &only(&w.docs, "HorizontalPodAutoscaler")?.value;
    let target = at(h, &["spec", "scaleTargetRef"]).ok_or("HPA: no scaleTargetRef")?;
    let (kind, name) = (
        str_at(target, &["kind"]).unwrap_or_default(),
        str_at(target, &["name"]).unwrap_or_default(),
    );
    if kind != "Deployment" || name != w.deployment_name {
        return Err(format!(
            "HPA scaleTargetRef is {kind} {name}, the Deployment is {}",
            w.deployment_name
        ));
    }
    let provided: BTreeSet<String> = adapter_rules(w)?
        .iter()
        .filter_map(|r| str_at(r, &["name", "as"]).map(str::to_string))
        .collect();
    let metrics = seq_at(h, &["spec", "metrics"]);
    if metrics.is_empty() {
        return Err("HPA: no metrics".into());
    }
    for m in metrics {
        if let Some(metric) = str_at(m, &["pods", "metric", "name"]) {
            if !provided.contains(metric) {
                return Err(format!(
                    "HPA scales on {metric}, which no adapter rule provides (have {provided:?})"
                ));
            }
        }
    }
    Ok(())
}

type CheckFn = fn(&World) -> Check;

const K8S_CHECKS: &[(&str, CheckFn)] = &[
    ("container ports", container_ports),
    ("reachable listeners", listeners_reachable),
    ("probes", probes),
    ("app probes", app_probes_through_outrider),
    ("liveness vs drain", liveness_outlasts_drain),
    ("config mount", config_mount),
    ("writable /tmp", writable_tmp),
    ("termination grace", termination_grace),
    ("cache vs memory limit", cache_fits_memory_limit),
    ("service", service),
    ("pod monitor", pod_monitor),
    ("scrape annotations", scrape_annotations),
    ("adapter metrics", adapter_metrics_exist),
    ("hpa", hpa),
    (
        "shared cache service",
        crate::k8s_manifests::shared_cache::shared_cache_service,
    ),
];

pub(crate) fn k8s_problems(src: &Sources) -> Vec<String> {
    match World::resolve(src) {
        Err(e) => vec![e],
        Ok(w) => K8S_CHECKS
            .iter()
            .filter_map(|(what, check)| check(&w).err().map(|e| format!("{what}: {e}")))
            .collect(),
    }
}
