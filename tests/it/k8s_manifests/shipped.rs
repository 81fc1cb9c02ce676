//! The tests: the shipped files pass every check, and every check catches its mistake.

use std::collections::BTreeSet;

use crate::k8s_manifests::checks::k8s_problems;
use crate::k8s_manifests::dockerfile::dockerfile_problems;
use crate::k8s_manifests::sources::{Exported, Sources};
use crate::k8s_manifests::world::parse_docs;
use crate::k8s_manifests::yaml::str_at;

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn k8s_manifests_agree_with_outrider() {
    let problems = k8s_problems(&Sources::from_repo());
    assert!(problems.is_empty(), "conf/k8s:\n{}", problems.join("\n"));
}

#[test]
fn every_k8s_file_is_parsed() {
    let src = Sources::from_repo();
    let docs = parse_docs(&src).expect("conf/k8s parses");
    let kinds: BTreeSet<&str> = docs
        .iter()
        .filter_map(|d| str_at(&d.value, &["kind"]))
        .collect();
    for kind in [
        "Deployment",
        "ConfigMap",
        "Service",
        "PodMonitor",
        "HorizontalPodAutoscaler",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in conf/k8s (have {kinds:?})"
        );
    }
    for (file, _) in &src.manifests {
        assert!(
            docs.iter().any(|d| &d.file == file),
            "{file} holds no document"
        );
    }
}

#[test]
fn dockerfile_agrees_with_the_repository() {
    let problems = dockerfile_problems(&Sources::from_repo());
    assert!(problems.is_empty(), "Dockerfile:\n{}", problems.join("\n"));
}

/// The source scan finds the registry's names and tells histograms apart, else the adapter
/// check would pass or fail for the wrong reason.
#[test]
fn exported_metric_names_are_found() {
    let exported = Exported::from_sources(&Sources::from_repo().metrics_rs);
    for name in [
        "outrider_requests_total",
        "outrider_request_duration_seconds",
        "outrider_config_reloads_total",
        "outrider_cache_objects",
    ] {
        assert!(exported.names.contains(name), "{name} not found");
    }
    assert!(exported.has_series("outrider_request_duration_seconds_bucket"));
    assert!(exported.has_series("outrider_upstream_duration_seconds_count"));
    assert!(!exported.has_series("outrider_requests_total_bucket"));
    assert!(!exported.has_series("outrider_requests"));
}

/// Each check catches the mistake it is there for: the shipped files, broken one way at a time.
#[test]
fn every_check_can_fail() {
    let src = Sources::from_repo();
    let k8s: &[(&str, &str, &str, &str)] = &[
        // (file, text, replacement, expected in a problem)
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:8080""#,
            r#"listen = "0.0.0.0:8081""#,
            "data port",
        ),
        (
            "deployment.yaml",
            "containerPort: 9901",
            "containerPort: 9902",
            "admin port (admin.listen)",
        ),
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:9901""#,
            r#"listen = "127.0.0.1:9901""#,
            "admin.listen 127.0.0.1:9901 is loopback",
        ),
        (
            "configmap.yaml",
            r#"listen = "0.0.0.0:8080""#,
            r#"listen = "127.0.0.1:8080""#,
            "server.listen 127.0.0.1:8080 is loopback",
        ),
        (
            "configmap.yaml",
            "threads = 2",
            r#"threads = "two""#,
            "does not compile",
        ),
        (
            "deployment.yaml",
            "path: /readyz",
            "path: /ready",
            "readinessProbe asks \"/ready\"",
        ),
        (
            "deployment.yaml",
            "path: /healthz\n              port: admin",
            "path: /healthz\n              port: http",
            "livenessProbe goes to port Some(8080)",
        ),
        (
            "deployment.yaml",
            "port: 8080",
            "port: 3000",
            "container app readinessProbe goes to port Some(3000)",
        ),
        (
            "deployment.yaml",
            "periodSeconds: 15",
            "periodSeconds: 5",
            "livenessProbe gives up",
        ),
        (
            "deployment.yaml",
            "mountPath: /etc/outrider\n",
            "mountPath: /etc/outrider/outrider.toml\n              subPath: outrider.toml\n",
            "subPath",
        ),
        (
            "deployment.yaml",
            "mountPath: /etc/outrider\n",
            "mountPath: /etc/conf\n",
            "no volume mounted at /etc/outrider",
        ),
        (
            "deployment.yaml",
            "mountPath: /tmp",
            "mountPath: /scratch",
            "without a volume at /tmp",
        ),
        (
            "deployment.yaml",
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 20",
            "terminationGracePeriodSeconds 20",
        ),
        (
            "configmap.yaml",
            r#"max_size = "48MiB""#,
            r#"max_size = "256MiB""#,
            "memory limit",
        ),
        (
            "service.yaml",
            "targetPort: http",
            "targetPort: admin",
            "exposes the admin port",
        ),
        (
            "service.yaml",
            "targetPort: http",
            "targetPort: 3000",
            "targets port Some(3000)",
        ),
        (
            "service.yaml",
            "  selector:\n    app.kubernetes.io/name: example-app",
            "  selector:\n    app.kubernetes.io/name: other-app",
            "selector does not match",
        ),
        (
            "podmonitor.yaml",
            "- port: admin",
            "- port: http",
            "scrapes port \"http\"",
        ),
        (
            "podmonitor.yaml",
            "path: /metrics",
            "path: /stats",
            "scrapes \"/stats\"",
        ),
        (
            "deployment.yaml",
            r#"prometheus.io/port: "9901""#,
            r#"prometheus.io/port: "8080""#,
            "prometheus.io/port is \"8080\"",
        ),
        (
            "hpa.yaml",
            "    kind: Deployment\n    name: example-app",
            "    kind: Deployment\n    name: other-app",
            "scaleTargetRef is Deployment other-app",
        ),
        (
            "hpa.yaml",
            "name: outrider_requests_per_second",
            "name: outrider_rps",
            "no adapter rule provides",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "rate(outrider_requests_total{",
            "rate(outrider_requests_count{",
            "outrider_requests_count is not a series",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "rate(outrider_requests_total{",
            "rate(outrider_requests_total_bucket{",
            "outrider_requests_total_bucket is not a series",
        ),
        (
            "prometheus-adapter-rules.yaml",
            "seriesQuery: 'outrider_request_duration_seconds_bucket",
            "seriesQuery: 'outrider_request_latency_seconds_bucket",
            "outrider_request_latency_seconds_bucket is not a series",
        ),
        (
            "configmap.yaml",
            r#"url = "redis://example-app-redis:6379/0""#,
            r#"url = "redis://example-redis:6379/0""#,
            "no Service example-redis",
        ),
        (
            "configmap.yaml",
            r#"url = "redis://example-app-redis:6379/0""#,
            r#"url = "redis://example-app-redis:6380/0""#,
            "has no port 6380",
        ),
        (
            "redis.yaml",
            "      targetPort: redis",
            "      targetPort: valkey",
            "selects no Deployment with a container port",
        ),
    ];
    for (file, from, to, expected) in k8s {
        let problems = k8s_problems(&src.edited(file, from, to));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{file}: {from:?} -> {to:?} should report {expected:?}; got {problems:#?}"
        );
    }

    let docker: &[(&str, &str, &str)] = &[
        ("EXPOSE 8080 9901", "EXPOSE 8080 9902", "Dockerfile exposes"),
        (
            "9901/healthz",
            "9901/health",
            "HEALTHCHECK asks \"/health\"",
        ),
        (
            "127.0.0.1:9901/",
            "127.0.0.1:9902/",
            "HEALTHCHECK goes to port",
        ),
        (
            "--profile dist",
            "--profile shipping",
            "--profile shipping, which Cargo.toml does not define",
        ),
        (
            "target/dist/outrider",
            "target/release/outrider",
            "target/dist/",
        ),
        (
            "COPY conf/outrider.toml",
            "COPY conf/absent.toml",
            "copies conf/absent.toml",
        ),
    ];
    for (from, to, expected) in docker {
        let problems = dockerfile_problems(&src.edited("Dockerfile", from, to));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "Dockerfile: {from:?} -> {to:?} should report {expected:?}; got {problems:#?}"
        );
    }
}
