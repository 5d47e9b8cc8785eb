//! Readiness: the process is ready once every watch has listed its resources once.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::watch;

/// Tracks which watches have completed their first list.
pub struct Readiness {
    pending: Mutex<BTreeSet<&'static str>>,
    ready: watch::Sender<bool>,
}

impl Readiness {
    /// Expects a first list from each of `watches`.
    pub fn new(watches: &[&'static str]) -> Readiness {
        Readiness {
            pending: Mutex::new(watches.iter().copied().collect()),
            ready: watch::channel(watches.is_empty()).0,
        }
    }

    /// Records that `watch` has listed once.
    pub fn listed(&self, watch: &'static str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.remove(watch);
        if pending.is_empty() {
            self.ready.send_replace(true);
        }
    }

    /// Whether every watch has listed once.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The watches that have not listed yet.
    pub fn pending(&self) -> Vec<&'static str> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Waits until every watch has listed once.
    pub async fn wait(&self) {
        let mut receiver = self.ready.subscribe();
        let _ = receiver.wait_for(|ready| *ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_after_every_watch_listed() {
        let readiness = Readiness::new(&["pods", "bindings"]);
        assert!(!readiness.is_ready());
        readiness.listed("pods");
        assert_eq!(readiness.pending(), ["bindings"]);
        readiness.listed("bindings");
        readiness.listed("bindings");
        assert!(readiness.is_ready());
        readiness.wait().await;
    }
}
