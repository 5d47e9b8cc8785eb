//! Keeping the config current: an inotify watch on the mounted directory (the kubelet's
//! `..data` rename shows up as an event on it), plus a poll as a safety net for missed
//! events or a directory that appears late. A change is loaded, compiled and swapped in
//! atomically; a bad one is logged and counted, and the last good config stays in effect.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::compiled::CompiledConfig;
use super::source;
use crate::auth::Authenticator;
use crate::decision;
use crate::metrics::Metrics;

/// Watches `dir` and installs every valid new config into `auth`.
pub struct ConfigWatcher {
    dir: PathBuf,
    auth: Arc<Authenticator>,
    metrics: Metrics,
    poll_interval: Duration,
    last_marker: Option<Option<String>>,
    last_failure: Option<String>,
    loaded: u64,
}

/// What one look at the directory did.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Nothing changed since the last look.
    Unchanged,
    /// A new config is in effect.
    Loaded,
    /// The content changed but is the config already in effect.
    Same,
    /// The new content is unusable; the previous config (if any) stays.
    Refused(&'static str),
}

impl ConfigWatcher {
    /// A watcher of `dir` feeding `auth`.
    pub fn new(
        dir: PathBuf,
        auth: Arc<Authenticator>,
        metrics: Metrics,
        poll_interval: Duration,
    ) -> ConfigWatcher {
        ConfigWatcher {
            dir,
            auth,
            metrics,
            poll_interval,
            last_marker: None,
            last_failure: None,
            loaded: 0,
        }
    }

    /// Looks at the directory once and loads what changed. A failed load is retried on
    /// every look until it succeeds, but logged and counted only once per version.
    pub fn check(&mut self) -> Check {
        let marker = Some(source::version_marker(&self.dir));
        let changed = marker != self.last_marker;
        if !changed && self.last_failure.is_none() {
            return Check::Unchanged;
        }
        self.last_marker = marker;
        let outcome = source::load(&self.dir)
            .map_err(|err| (err.reason(), err.to_string()))
            .and_then(|loaded| {
                let current = self.auth.snapshot();
                if current
                    .as_ref()
                    .is_some_and(|s| s.config.generation == loaded.manifest.sha256)
                {
                    return Ok(None);
                }
                CompiledConfig::compile(
                    &loaded.config,
                    loaded.manifest.sha256.clone(),
                    self.auth.settings(),
                )
                .map(Some)
                .map_err(|err| (err.reason(), err.to_string()))
            });
        match outcome {
            Ok(None) => {
                self.last_failure = None;
                self.metrics.config_pending_failure.set(0);
                Check::Same
            }
            Ok(Some(config)) => {
                self.last_failure = None;
                self.metrics.config_pending_failure.set(0);
                self.install(config);
                Check::Loaded
            }
            Err((reason, message)) => {
                // Stuck on a refused version while the last good one serves (before the
                // first good config, `config_loaded` 0 says it).
                self.metrics
                    .config_pending_failure
                    .set(i64::from(self.auth.is_ready()));
                let repeated = !changed && self.last_failure.as_deref() == Some(reason);
                if !repeated {
                    self.metrics
                        .config_reloads
                        .with_label_values(&["failure"])
                        .inc();
                    self.metrics
                        .config_reload_failures
                        .with_label_values(&[reason])
                        .inc();
                    if self.auth.is_ready() {
                        tracing::warn!(dir = %self.dir.display(), reason, "config update refused; keeping the last good config: {message}");
                    } else {
                        tracing::warn!(dir = %self.dir.display(), reason, "no valid config yet; not ready: {message}");
                    }
                }
                self.last_failure = Some(reason.to_string());
                Check::Refused(reason)
            }
        }
    }

    fn install(&mut self, config: CompiledConfig) {
        for warning in &config.warnings {
            tracing::warn!(generation = %config.generation, "config: {warning}");
        }
        let generation = config.generation.clone();
        let subscriptions = config.subscription_count();
        let keys = config.key_count();
        let key_managers = config.key_managers.len();
        for km in config
            .key_managers
            .iter()
            .filter(|km| km.jwks_refresh.is_some())
        {
            self.metrics.prime_jwks_fetches(&km.name);
        }
        self.auth.install_config(config);
        self.loaded += 1;
        self.metrics
            .config_reloads
            .with_label_values(&["success"])
            .inc();
        self.metrics.config_generation.set(self.loaded as i64);
        self.metrics.config_info.reset();
        self.metrics
            .config_info
            .with_label_values(&[&generation])
            .set(1);
        self.metrics.config_loaded.set(1);
        self.metrics.config_last_success.set(decision::now() as f64);
        self.metrics.config_subscriptions.set(subscriptions as i64);
        self.metrics.config_keys.set(keys as i64);
        tracing::info!(%generation, key_managers, keys, subscriptions, "config loaded");
    }

    /// Watches until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (events_tx, mut events) = mpsc::channel::<()>(1);
        let mut watcher = None;
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if watcher.is_none() {
                watcher = start_watch(&self.dir, events_tx.clone());
            }
            self.check();
            tokio::select! {
                _ = events.recv() => {}
                _ = poll.tick() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn start_watch(
    dir: &std::path::Path,
    events: mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up; one is enough.
            let _ = events.try_send(());
        }
    })
    .ok()?;
    match watcher.watch(dir, RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(err) => {
            tracing::debug!(dir = %dir.display(), error = %err, "cannot watch the config directory yet; polling");
            None
        }
    }
}

#[cfg(test)]
mod tests;
