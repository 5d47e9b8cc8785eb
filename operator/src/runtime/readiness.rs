//! Readiness: the process is ready once every watch has listed its resources once and, when
//! the injection webhook is served, once its serving certificate is loaded. Each of these
//! is an item that is pending until it reports.

use std::collections::BTreeSet;

use tokio::sync::watch;

/// Tracks the items the process waits for.
pub struct Readiness {
    pending: watch::Sender<BTreeSet<&'static str>>,
}

impl Readiness {
    /// Expects each of `items` (watch names, [`crate::webhook::CERTIFICATE_READY`]) to report.
    pub fn new(items: &[&'static str]) -> Readiness {
        Readiness {
            pending: watch::channel(items.iter().copied().collect()).0,
        }
    }

    /// Records that `item` is done (a watch has listed once, the certificate is loaded).
    pub fn listed(&self, item: &'static str) {
        self.pending
            .send_if_modified(|pending| pending.remove(item));
    }

    /// Whether every item is done.
    pub fn is_ready(&self) -> bool {
        self.pending.borrow().is_empty()
    }

    /// The items not done yet.
    pub fn pending(&self) -> Vec<&'static str> {
        self.pending.borrow().iter().copied().collect()
    }

    /// Waits until none of `items` is pending (the others may still be).
    pub async fn wait_for(&self, items: &[&'static str]) {
        let mut receiver = self.pending.subscribe();
        let _ = receiver
            .wait_for(|pending| items.iter().all(|item| !pending.contains(item)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_after_every_item_reported() {
        let readiness = Readiness::new(&["pods", "bindings"]);
        assert!(!readiness.is_ready());
        readiness.listed("pods");
        assert_eq!(readiness.pending(), ["bindings"]);
        readiness.listed("bindings");
        readiness.listed("bindings");
        assert!(readiness.is_ready());
        readiness.wait_for(&["pods", "bindings"]).await;
    }

    #[tokio::test]
    async fn waiting_for_some_items_ignores_the_others() {
        let readiness = Readiness::new(&["pods", "webhook-certificate"]);
        readiness.listed("pods");
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            readiness.wait_for(&["pods"]),
        )
        .await
        .expect("pods has listed");
        assert!(!readiness.is_ready());
        assert_eq!(readiness.pending(), ["webhook-certificate"]);
    }
}
