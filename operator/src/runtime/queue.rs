//! The work queue that drives every controller, and its one retry policy.
//!
//! A controller is a [`Reconciler`]: a function from a key (a KeyManager's name, a
//! binding's `namespace/name`, an API) to an [`Action`]. Keys enter a [`WorkQueue`] when the
//! index says that something they depend on changed; [`run`] takes them out through
//! kube-runtime's [`scheduler`], which delays and deduplicates them (a key waiting to run is
//! queued once however often it is marked, at the earliest time asked for), and reconciles
//! at most `concurrency` keys at a time, never one key twice at once: a key marked while it
//! runs runs again after.
//!
//! Every failure goes through the same policy: the failure is counted by controller and
//! [`Error::reason`], logged, reported as a Warning Event on the object when there is one,
//! and the key comes back after an exponential backoff ([`RetryPolicy`]) unless a change
//! brings it back sooner. A success forgets the failures.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::scheduler::{ScheduleRequest, Scheduler, scheduler};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::Error;

/// What to do with a key after its reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `delay`, or sooner if something changes.
    pub const fn requeue(delay: Duration) -> Action {
        Action {
            requeue_after: Some(delay),
        }
    }

    /// Reconcile again only when something changes.
    pub const fn await_change() -> Action {
        Action {
            requeue_after: None,
        }
    }

    /// When to reconcile again without a change.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// Exponential backoff after consecutive failures: `initial`, doubling, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1u32 << exponent)
            .min(self.max.max(self.initial))
    }
}

/// A controller: reconciles one key at a time.
pub trait Reconciler: Send + Sync + 'static {
    /// What it reconciles.
    type Key: Clone + Eq + Hash + Display + Send + Sync + Unpin + 'static;

    /// The controller's name in metrics and logs.
    const NAME: &'static str;

    /// The shared state (metrics, the Event recorder).
    fn context(&self) -> &Context;

    /// Brings `key` to its desired state.
    fn reconcile(
        self: Arc<Self>,
        key: Self::Key,
    ) -> impl Future<Output = Result<Action, Error>> + Send + 'static;

    /// The object a failure of `key` is reported on, if there is one.
    fn regarding(&self, key: &Self::Key) -> Option<ObjectReference>;
}

/// Keys waiting to be reconciled. Marking a key is cheap and never blocks; marks made while
/// no [`run`] takes from the queue (a standby replica) are dropped, since a leader starts
/// by marking everything.
pub struct WorkQueue<K> {
    sender: Mutex<Option<mpsc::UnboundedSender<ScheduleRequest<K>>>>,
    delay: Duration,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// A queue whose keys wait `delay` after their first mark (to batch bursts of changes).
    pub fn new(delay: Duration) -> WorkQueue<K> {
        WorkQueue {
            sender: Mutex::new(None),
            delay,
        }
    }

    /// Marks `key`.
    pub fn add(&self, key: K) {
        self.add_after(key, self.delay);
    }

    /// Marks each of `keys`.
    pub fn extend(&self, keys: impl IntoIterator<Item = K>) {
        let sender = self.sender();
        if let Some(sender) = sender {
            let run_at = Instant::now() + self.delay;
            for key in keys {
                let _ = sender.unbounded_send(ScheduleRequest {
                    message: key,
                    run_at,
                });
            }
        }
    }

    /// Marks `key` to run after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if let Some(sender) = self.sender() {
            let _ = sender.unbounded_send(ScheduleRequest {
                message: key,
                run_at: Instant::now() + delay,
            });
        }
    }

    /// Whether a [`run`] takes from the queue.
    pub fn is_open(&self) -> bool {
        self.sender().is_some()
    }

    fn sender(&self) -> Option<mpsc::UnboundedSender<ScheduleRequest<K>>> {
        self.sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn open(&self) -> mpsc::UnboundedReceiver<ScheduleRequest<K>> {
        let (sender, receiver) = mpsc::unbounded();
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        receiver
    }

    fn close(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// How [`run`] runs a controller.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Keys reconciled at the same time (at least 1).
    pub concurrency: usize,
    /// The backoff after failures.
    pub retry: RetryPolicy,
}

type Outcome<K> = (K, Result<Action, Error>);

/// Reconciles the keys of `queue` with `reconciler` until `cancel`, then lets the
/// reconciles in progress finish. The queue takes marks from the moment `run` is called,
/// before the returned future first runs.
pub fn run<R: Reconciler>(
    reconciler: Arc<R>,
    queue: Arc<WorkQueue<R::Key>>,
    settings: RunSettings,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let requests = queue.open();
    async move {
        let mut scheduler = std::pin::pin!(scheduler(requests));
        let concurrency = settings.concurrency.max(1);
        let mut running: JoinSet<Outcome<R::Key>> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, R::Key> = HashMap::new();
        let mut busy: HashSet<R::Key> = HashSet::new();
        let mut failures: HashMap<R::Key, u32> = HashMap::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    let (key, result) = match joined {
                        Ok((id, outcome)) => {
                            tasks.remove(&id);
                            outcome
                        }
                        Err(error) => match tasks.remove(&error.id()) {
                            Some(key) => (key, Err(Error::Panicked)),
                            None => continue,
                        },
                    };
                    busy.remove(&key);
                    let retry = &settings.retry;
                    if let Some(delay) = settle(&*reconciler, &key, result, &mut failures, retry) {
                        queue.add_after(key, delay);
                    }
                }
                key = next_key(scheduler.as_mut(), &busy, concurrency) => {
                    let Some(key) = key else { break };
                    busy.insert(key.clone());
                    let task = running.spawn(reconcile_one(reconciler.clone(), key.clone()));
                    tasks.insert(task.id(), key);
                }
            }
        }
        queue.close();
        while running.join_next().await.is_some() {}
    }
}

/// The next key that may start: none while `concurrency` keys run, and never a key that
/// is running (it is held until that run ends).
async fn next_key<K, S>(
    mut scheduler: Pin<&mut Scheduler<K, S>>,
    busy: &HashSet<K>,
    concurrency: usize,
) -> Option<K>
where
    K: Clone + Eq + Hash,
    S: futures::Stream<Item = ScheduleRequest<K>>,
{
    futures::future::poll_fn(|cx| {
        if busy.len() >= concurrency {
            // Keep taking marks (deduplicated), but start nothing.
            let _ = scheduler.as_mut().hold().poll_next_unpin(cx);
            return Poll::Pending;
        }
        scheduler
            .as_mut()
            .hold_unless(|key| !busy.contains(key))
            .poll_next_unpin(cx)
    })
    .await
}

/// One reconcile, timed and counted; a failure is reported on its object. A panic is a
/// failure like any other.
async fn reconcile_one<R: Reconciler>(reconciler: Arc<R>, key: R::Key) -> Outcome<R::Key> {
    let result = {
        let _timer = reconciler.context().metrics.reconcile(R::NAME);
        std::panic::AssertUnwindSafe(reconciler.clone().reconcile(key.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::Panicked))
    };
    if let Err(error) = &result
        && let Some(object) = reconciler.regarding(&key)
    {
        reconciler
            .context()
            .event(&object, true, error.reason(), error.to_string())
            .await;
    }
    (key, result)
}

/// Applies the outcome of a reconcile: the failure policy or the requested requeue.
/// Returns when the key should run again without a change.
fn settle<R: Reconciler>(
    reconciler: &R,
    key: &R::Key,
    result: Result<Action, Error>,
    failures: &mut HashMap<R::Key, u32>,
    retry: &RetryPolicy,
) -> Option<Duration> {
    match result {
        Ok(action) => {
            failures.remove(key);
            action.requeue_after()
        }
        Err(error) => {
            let count = failures.entry(key.clone()).or_default();
            *count = count.saturating_add(1);
            let delay = retry.delay(*count);
            reconciler
                .context()
                .metrics
                .reconcile_failed(R::NAME, error.reason());
            tracing::warn!(
                controller = R::NAME,
                key = %key,
                reason = error.reason(),
                failures = *count,
                retry_in = ?delay,
                %error,
                "reconcile failed"
            );
            Some(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    use super::*;
    use crate::metrics::Metrics;

    /// A controller whose reconciles are scripted per key.
    struct Scripted {
        ctx: Context,
        /// Outcomes per key, in order; the last repeats.
        script: Mutex<HashMap<&'static str, Vec<Result<Action, u16>>>>,
        /// Every reconcile: (key, virtual time since the start).
        seen: UnboundedSender<(&'static str, Duration)>,
        start: Instant,
        running: AtomicUsize,
        most_at_once: AtomicUsize,
        /// How long each reconcile takes.
        takes: Duration,
    }

    impl Reconciler for Scripted {
        type Key = &'static str;
        const NAME: &'static str = "test";

        fn context(&self) -> &Context {
            &self.ctx
        }

        async fn reconcile(self: Arc<Self>, key: &'static str) -> Result<Action, Error> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            let _ = self.seen.send((key, self.start.elapsed()));
            tokio::time::sleep(self.takes).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let outcome = {
                let mut script = self.script.lock().unwrap();
                let steps = script.entry(key).or_default();
                if steps.len() > 1 {
                    steps.remove(0)
                } else {
                    steps.first().cloned().unwrap_or(Ok(Action::await_change()))
                }
            };
            outcome.map_err(|code| {
                Error::Kube(kube::Error::Api(Box::new(
                    kube::core::Status::failure("scripted", "Scripted").with_code(code),
                )))
            })
        }

        fn regarding(&self, _: &&'static str) -> Option<ObjectReference> {
            None
        }
    }

    struct Harness {
        controller: Arc<Scripted>,
        queue: Arc<WorkQueue<&'static str>>,
        seen: tokio::sync::mpsc::UnboundedReceiver<(&'static str, Duration)>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(
        script: &[(&'static str, Vec<Result<Action, u16>>)],
        initial: &[&'static str],
        concurrency: usize,
        takes: Duration,
    ) -> Harness {
        let (seen_tx, seen) = unbounded_channel();
        let controller = Arc::new(Scripted {
            ctx: crate::context::tests::offline_context(Arc::new(Metrics::new())),
            script: Mutex::new(script.iter().cloned().collect()),
            seen: seen_tx,
            start: Instant::now(),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            takes,
        });
        let queue = Arc::new(WorkQueue::new(Duration::ZERO));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            controller.clone(),
            queue.clone(),
            RunSettings {
                concurrency,
                retry: RetryPolicy {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(4),
                },
            },
            cancel.clone(),
        ));
        queue.extend(initial.iter().copied());
        Harness {
            controller,
            queue,
            seen,
            cancel,
            task,
        }
    }

    impl Harness {
        async fn next(&mut self) -> (&'static str, Duration) {
            self.seen.recv().await.expect("the runner is running")
        }

        async fn stop(self) -> Arc<Scripted> {
            self.cancel.cancel();
            self.task.await.unwrap();
            self.controller
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        };
        let delays: Vec<_> = (1..=9).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff_and_a_success_resets_it() {
        let script = vec![(
            "km",
            vec![Err(500), Err(500), Err(409), Ok(Action::await_change())],
        )];
        let mut harness = start(&script, &["km"], 1, Duration::ZERO);
        let times: Vec<u64> = [
            harness.next().await,
            harness.next().await,
            harness.next().await,
            harness.next().await,
        ]
        .iter()
        .map(|(_, at)| at.as_secs())
        .collect();
        // Retried after 1 s, then 2 s, then 4 s.
        assert_eq!(times, [0, 1, 3, 7]);
        let metrics = &harness.controller.ctx.metrics;
        assert_eq!(metrics.reconcile_errors_of("test", "ApiServerError"), 2);
        assert_eq!(metrics.reconcile_errors_of("test", "Conflict"), 1);

        // After the success, a new failure starts the backoff over.
        harness
            .controller
            .script
            .lock()
            .unwrap()
            .insert("km", vec![Err(500), Ok(Action::await_change())]);
        harness.queue.add("km");
        let first = harness.next().await.1;
        let retried = harness.next().await.1;
        assert_eq!(retried - first, Duration::from_secs(1));
        harness.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_requeue_comes_back_after_its_delay_and_a_change_comes_sooner() {
        let script = vec![("api", vec![Ok(Action::requeue(Duration::from_secs(60)))])];
        let mut harness = start(&script, &["api"], 1, Duration::ZERO);
        assert_eq!(harness.next().await.1, Duration::ZERO);
        assert_eq!(harness.next().await.1, Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(10)).await;
        harness.queue.add("api");
        assert_eq!(harness.next().await.1, Duration::from_secs(70));
        harness.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_marked_many_times_runs_once_and_never_twice_at_once() {
        let mut harness = start(&[], &[], 4, Duration::from_secs(1));
        for _ in 0..5 {
            harness.queue.add("b");
        }
        assert_eq!(harness.next().await, ("b", Duration::ZERO));
        // Marked while it runs: it runs again once, after the first run.
        harness.queue.add("b");
        harness.queue.add("b");
        assert_eq!(harness.next().await, ("b", Duration::from_secs(1)));
        let controller = harness.stop().await;
        assert_eq!(controller.most_at_once.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_concurrency_keys_run_at_once() {
        let keys = ["a", "b", "c", "d", "e"];
        let mut harness = start(&[], &keys, 2, Duration::from_secs(1));
        let mut seen = Vec::new();
        for _ in keys {
            seen.push(harness.next().await);
        }
        let starts: Vec<u64> = seen.iter().map(|(_, at)| at.as_secs()).collect();
        assert_eq!(starts, [0, 0, 1, 1, 2]);
        let controller = harness.stop().await;
        assert_eq!(controller.most_at_once.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn marks_reach_only_an_open_queue() {
        let queue: WorkQueue<&str> = WorkQueue::new(Duration::ZERO);
        queue.add("dropped");
        assert!(!queue.is_open());
        let mut harness = start(&[], &[], 1, Duration::ZERO);
        assert!(harness.queue.is_open());
        harness.queue.add("kept");
        assert_eq!(harness.next().await.0, "kept");
        let queue = harness.queue.clone();
        harness.stop().await;
        assert!(!queue.is_open());
    }
}
