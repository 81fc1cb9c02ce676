//! Hot reload: read → parse → validate → compile → swap, from three triggers that share one code
//! path (file change, SIGHUP, `POST /reload`).
//!
//! Any failure leaves the running policy untouched and is kept for `GET /config`. Settings that
//! Pingora reads once at startup (listeners, threads, grace period, log format) cannot change
//! live: a new value is reported as "needs restart" while the rest of the file still applies,
//! and the running policy keeps showing the values actually in effect.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::config::{compile, sha256_hex, ConfigError};
pub(crate) use crate::metrics::reloads::{ReloadFailure, Trigger};
use crate::proxy::Shared;

#[derive(Debug)]
pub(crate) enum ReloadOutcome {
    Applied {
        generation: u64,
        pending_restart: Vec<String>,
    },
    Unchanged,
    Failed(Vec<ConfigError>),
}

/// Runs the reload pipeline once. Reloads are serialized, so generations never interleave.
pub(crate) fn reload(shared: &Shared, trigger: Trigger) -> ReloadOutcome {
    let mut status = shared.reload_status_lock();
    let Some(path) = shared.config_path.as_deref() else {
        let err = ConfigError {
            file: "-".into(),
            line: 1,
            column: 1,
            key: String::new(),
            message: "this policy was not loaded from a file; there is nothing to reload".into(),
        };
        return ReloadOutcome::Failed(vec![err]);
    };
    let file = path.display().to_string();
    let (text, sha) = match std::fs::read(path) {
        Ok(bytes) => {
            let sha = sha256_hex(&bytes);
            (
                String::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string()),
                sha,
            )
        }
        Err(e) => (Err(format!("cannot read: {e}")), "unreadable".to_string()),
    };
    if trigger == Trigger::File && status.last_attempt_sha256.as_deref() == Some(sha.as_str()) {
        return ReloadOutcome::Unchanged;
    }
    status.last_attempt_sha256 = Some(sha.clone());

    let compiled = text
        .map_err(|message| {
            vec![ConfigError {
                file: file.clone(),
                line: 1,
                column: 1,
                key: String::new(),
                message,
            }]
        })
        .and_then(|text| compile(&text, &file));
    let metrics = &shared.metrics.config;
    match compiled {
        Err(errors) => {
            for e in &errors {
                error!("reload ({trigger:?}) rejected, running policy kept: {e}");
            }
            status.last_error = Some(ReloadFailure {
                at: SystemTime::now(),
                trigger,
                errors: errors.iter().map(|e| e.to_string()).collect(),
            });
            metrics.reload_failure.inc();
            metrics.last_reload_successful.set(0);
            ReloadOutcome::Failed(errors)
        }
        Ok(mut policy) => {
            let mut pending_restart = shared.startup.pin(&mut policy);
            // Bucket boundaries are fixed when the histogram is created; a latency objective
            // without one would leave its alerts without a series, not wrong.
            for b in shared
                .metrics
                .missing_latency_buckets(&crate::slo::latency_boundaries(&policy))
            {
                pending_restart.push(format!(
                    "a latency objective of {b}s (outrider_request_duration_seconds has no bucket at it)"
                ));
            }
            for p in &pending_restart {
                warn!("reload: {p} needs a restart to apply; the rest of the policy is applied");
            }
            crate::logging::set_level(policy.log.level);
            shared.store_policy(policy);
            status.generation += 1;
            status.source_sha256 = sha;
            status.loaded_at = SystemTime::now();
            status.last_error = None;
            status.pending_restart = pending_restart.clone();
            metrics.reload_success.inc();
            metrics.last_reload_successful.set(1);
            metrics.generation.set(status.generation as i64);
            info!(
                "policy generation {} applied ({trigger:?})",
                status.generation
            );
            ReloadOutcome::Applied {
                generation: status.generation,
                pending_restart,
            }
        }
    }
}

/// How long a burst of file events must be quiet before reloading: editors and ConfigMap
/// updates touch several files in a row.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A safety net under the watcher: inotify can miss a change when the watched directory
/// itself is replaced. Hashing a small file every two seconds costs nothing.
const POLL: Duration = Duration::from_secs(2);

/// The directories to watch: the file's own, and its symlink target's (a ConfigMap mounts the
/// file as a link into a `..data` directory that is swapped atomically).
fn watch_dirs(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let parent = |p: &Path| match p.parent() {
        Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    dirs.push(parent(path));
    if let Ok(real) = std::fs::canonicalize(path) {
        let d = parent(&real);
        if !dirs.contains(&d) && std::fs::canonicalize(&dirs[0]).ok().as_ref() != Some(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The names in the watched directories whose changes can change the conf file: its own name,
/// its symlink target's, and Kubernetes' `..data` swaps of a mounted ConfigMap.
fn watched_names(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path.file_name().into_iter().map(Into::into).collect();
    if let Some(real) = std::fs::canonicalize(path)
        .ok()
        .and_then(|real| real.file_name().map(OsString::from))
    {
        if !names.contains(&real) {
            names.push(real);
        }
    }
    names
}

/// Whether a watch event can mean new conf contents. Reads are not changes: reloading opens
/// the file, which inotify reports as an access, so counting those would reload for ever. Nor
/// are writes to other files in the directory (a log file beside the conf).
fn is_conf_change(event: &notify::Event, names: &[OsString]) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name().is_some_and(|name| {
                names.iter().any(|n| n == name) || name.to_string_lossy().starts_with("..")
            })
        })
}

/// Watches the conf file and SIGHUP until `shutdown` resolves, reloading on each.
pub(crate) async fn watch(shared: Arc<Shared>, shutdown: impl std::future::Future<Output = ()>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    if hangup.is_none() {
        warn!("cannot install the SIGHUP handler; reload with POST /reload or by editing the file");
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    // Kept alive for the loop's lifetime; dropping it stops the watch.
    let _watcher = shared.config_path.as_deref().and_then(|path| {
        let tx = tx.clone();
        let names = watched_names(path);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| is_conf_change(&e, &names)) {
                    // A full channel already holds a pending wake-up; that is all we need.
                    let _ = tx.try_send(());
                }
            })
            .map_err(|e| warn!("file watch unavailable ({e}); polling every {POLL:?}"))
            .ok()?;
        for dir in watch_dirs(path) {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                warn!(
                    "cannot watch {} ({e}); polling every {POLL:?}",
                    dir.display()
                );
            }
        }
        Some(watcher)
    });
    let has_file = shared.config_path.is_some();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = rx.recv() => {
                // Debounce: wait until events stop for DEBOUNCE.
                while tokio::time::timeout(DEBOUNCE, rx.recv()).await.is_ok_and(|e| e.is_some()) {}
                reload(&shared, Trigger::File);
            }
            _ = poll.tick(), if has_file => {
                reload(&shared, Trigger::File);
            }
            Some(_) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                info!("SIGHUP: reloading {}", shared.config_path.as_deref().map_or("-".into(), |p| p.display().to_string()));
                reload(&shared, Trigger::Signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind};

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn reads_of_the_conf_file_are_not_changes() {
        let names = vec![OsString::from("outrider.toml")];
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!is_conf_change(
            &event(read, "/etc/o/outrider.toml"),
            &names
        ));
        assert!(!is_conf_change(
            &event(open, "/etc/o/outrider.toml"),
            &names
        ));
    }

    #[test]
    fn writes_renames_and_configmap_swaps_are_changes_other_files_are_not() {
        let names = vec![OsString::from("outrider.toml")];
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let create = EventKind::Create(CreateKind::Any);
        assert!(is_conf_change(
            &event(write, "/etc/o/outrider.toml"),
            &names
        ));
        assert!(is_conf_change(
            &event(create, "/etc/o/outrider.toml"),
            &names
        ));
        assert!(is_conf_change(&event(create, "/etc/o/..data"), &names));
        assert!(is_conf_change(
            &event(create, "/etc/o/..2026_12_07"),
            &names
        ));
        assert!(!is_conf_change(&event(write, "/etc/o/access.log"), &names));
        // An event without a path (an overflowed queue) may hide a change.
        assert!(is_conf_change(&notify::Event::new(write), &names));
    }
}
