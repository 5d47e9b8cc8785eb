//! A deduplicating work queue: keys marked dirty, taken in batches. Bounded by the number
//! of distinct keys, however often they are marked.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tokio::sync::Notify;

/// Dirty keys waiting for a worker.
pub struct WorkQueue<K> {
    dirty: Mutex<BTreeSet<K>>,
    notify: Notify,
}

impl<K: Ord + Clone + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            dirty: Mutex::new(BTreeSet::new()),
            notify: Notify::new(),
        }
    }
}

impl<K: Ord + Clone + Send + 'static> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> WorkQueue<K> {
        WorkQueue::default()
    }

    /// Marks `keys` dirty.
    pub fn extend(&self, keys: impl IntoIterator<Item = K>) {
        let added = {
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            let before = dirty.len();
            dirty.extend(keys);
            dirty.len() > before
        };
        if added {
            self.notify.notify_one();
        }
    }

    /// Marks `key` dirty.
    pub fn add(&self, key: K) {
        self.extend([key]);
    }

    /// Takes every dirty key, if any.
    pub fn drain(&self) -> Vec<K> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *dirty).into_iter().collect()
    }

    /// Waits until some key is dirty, waits `debounce` more to coalesce, and takes them all.
    pub async fn next_batch(&self, debounce: Duration) -> Vec<K> {
        loop {
            let pending = !self
                .dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if pending {
                if !debounce.is_zero() {
                    tokio::time::sleep(debounce).await;
                }
                let batch = self.drain();
                if !batch.is_empty() {
                    return batch;
                }
            }
            self.notify.notified().await;
        }
    }

    /// The queue as an endless stream of keys (for kube's applier).
    pub fn stream(self: std::sync::Arc<Self>, debounce: Duration) -> impl Stream<Item = K> + Send {
        futures::stream::unfold(self, move |queue| async move {
            let batch = queue.next_batch(debounce).await;
            Some((futures::stream::iter(batch), queue))
        })
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn keys_marked_many_times_are_taken_once() {
        let queue = WorkQueue::new();
        queue.add(2);
        queue.extend([1, 2, 3, 1]);
        assert_eq!(queue.next_batch(Duration::ZERO).await, [1, 2, 3]);
        assert!(queue.drain().is_empty());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_up_when_a_key_is_added() {
        let queue = Arc::new(WorkQueue::new());
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next_batch(Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.add("api");
        assert_eq!(worker.await.unwrap(), ["api"]);
    }

    #[tokio::test]
    async fn the_stream_yields_each_key() {
        let queue = Arc::new(WorkQueue::new());
        queue.extend(["a", "b"]);
        let items: Vec<_> = queue.clone().stream(Duration::ZERO).take(2).collect().await;
        assert_eq!(items, ["a", "b"]);
    }
}
