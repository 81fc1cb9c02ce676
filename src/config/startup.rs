//! The settings Pingora reads once at startup (listeners, threads, grace period, upgrade
//! socket, admin listener, log format, the shared cache tier): a reload cannot change them, so a new value is
//! reported as "needs restart" while the rest of the file still applies.

use super::policy::{LogFormat, ServerPolicy};
use super::Policy;

/// The settings fixed at startup, to tell what a reload cannot apply.
#[derive(Clone, Debug)]
pub struct Startup {
    policy_server: ServerPolicy,
    admin_listen: std::net::SocketAddr,
    log_format: LogFormat,
    cache_shared: Option<super::policy::SharedTierPolicy>,
}

impl Startup {
    pub(crate) fn of(policy: &Policy) -> Startup {
        Startup {
            policy_server: policy.server.clone(),
            admin_listen: policy.admin.listen,
            log_format: policy.log.format,
            cache_shared: policy.cache_store.shared.clone(),
        }
    }

    /// Reports what `new` changes that needs a restart, as `key: running → in file`, and puts
    /// the running values back into `new` so that the snapshot describes what is really in
    /// effect.
    pub(crate) fn pin(&self, new: &mut Policy) -> Vec<String> {
        let mut pending = Vec::new();
        let running = &self.policy_server;
        if new.server.listen != running.listen {
            pending.push(format!(
                "server.listen: {:?} → {:?}",
                running.listen, new.server.listen
            ));
            new.server.listen = running.listen.clone();
        }
        if new.server.threads != running.threads {
            pending.push(format!(
                "server.threads: {} → {}",
                running.threads, new.server.threads
            ));
            new.server.threads = running.threads;
        }
        if new.server.grace_period != running.grace_period {
            pending.push(format!(
                "server.grace_period: {} → {}",
                humantime::format_duration(running.grace_period),
                humantime::format_duration(new.server.grace_period)
            ));
            new.server.grace_period = running.grace_period;
        }
        if new.server.upgrade_sock != running.upgrade_sock {
            pending.push(format!(
                "server.upgrade_sock: {} → {}",
                running.upgrade_sock.display(),
                new.server.upgrade_sock.display()
            ));
            new.server.upgrade_sock = running.upgrade_sock.clone();
        }
        if new.admin.listen != self.admin_listen {
            pending.push(format!(
                "admin.listen: {} → {}",
                self.admin_listen, new.admin.listen
            ));
            new.admin.listen = self.admin_listen;
        }
        if new.log.format != self.log_format {
            pending.push(
                format!("log.format: {:?} → {:?}", self.log_format, new.log.format).to_lowercase(),
            );
            new.log.format = self.log_format;
        }
        if new.cache_store.shared != self.cache_shared {
            // The client, its subscription and the key prefix are set up once.
            pending.push("cache.shared: changed".to_string());
            new.cache_store.shared = self.cache_shared.clone();
        }
        pending
    }
}
