//! The reload history that `GET /config` shows: the running generation, the hash of the file it
//! came from, and the last rejected attempt with its errors. The reloader (`crate::reload`)
//! writes it; the admin plane reads it. It sits beside the reload counters because it is the
//! same outcome told in words instead of numbers.

use std::time::SystemTime;

use serde::Serialize;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Trigger {
    /// The file changed on disk (watch or poll). Skipped when the content did not change.
    File,
    /// SIGHUP. Always recompiles.
    Signal,
    /// `POST /reload`. Always recompiles.
    Admin,
}

/// The reload history that `GET /config` shows.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadStatus {
    pub(crate) generation: u64,
    pub(crate) source_sha256: String,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) loaded_at: SystemTime,
    pub(crate) last_error: Option<ReloadFailure>,
    /// Changed settings that only a restart applies, as `key: running → in file`.
    pub(crate) pending_restart: Vec<String>,
    /// Hash of the last content tried, so that an unchanged bad file is reported once.
    #[serde(skip)]
    pub(crate) last_attempt_sha256: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReloadFailure {
    #[serde(serialize_with = "rfc3339")]
    pub(crate) at: SystemTime,
    pub(crate) trigger: Trigger,
    pub(crate) errors: Vec<String>,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

impl ReloadStatus {
    pub(crate) fn initial(source_sha256: String) -> ReloadStatus {
        ReloadStatus {
            generation: 1,
            last_attempt_sha256: Some(source_sha256.clone()),
            source_sha256,
            loaded_at: SystemTime::now(),
            last_error: None,
            pending_restart: Vec::new(),
        }
    }
}
