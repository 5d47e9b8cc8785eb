//! What every controller of the operator shares: the client, the index, the work queues,
//! metrics and the Event recorder.

use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use outband_crds::sidecar_config::ApiRef;

use crate::index::{Changes, Index, ObjectKey};
use crate::metrics::Metrics;
use crate::runtime::queue::WorkQueue;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "outband-operator";

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    index: Mutex<Index>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// APIs whose config must be recompiled.
    pub apis: Arc<WorkQueue<ApiRef>>,
    /// Bindings whose status must be recomputed.
    pub bindings: Arc<WorkQueue<ObjectKey>>,
    /// KeyManagers to refresh.
    pub key_managers: Arc<WorkQueue<String>>,
    recorder: Recorder,
}

impl Context {
    /// A context with an empty index.
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance,
            },
        );
        Context {
            client,
            index: Mutex::new(Index::new()),
            metrics,
            apis: Arc::new(WorkQueue::new()),
            bindings: Arc::new(WorkQueue::new()),
            key_managers: Arc::new(WorkQueue::new()),
            recorder,
        }
    }

    /// Locks the index. Hold it only for pure work, never across an `await`.
    pub fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the work that `changes` implies.
    pub fn dispatch(&self, changes: Changes) {
        if !changes.apis.is_empty() {
            self.apis.extend(changes.apis);
        }
        if !changes.bindings.is_empty() {
            self.bindings.extend(changes.bindings);
        }
        if !changes.key_managers.is_empty() {
            self.key_managers.extend(changes.key_managers);
        }
    }

    /// Mutates the index and queues the implied work.
    pub fn update(&self, mutate: impl FnOnce(&mut Index) -> Changes) {
        let changes = mutate(&mut self.index());
        self.dispatch(changes);
    }

    /// Publishes a Kubernetes Event about `object`; failures are logged, never fatal.
    pub async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::debug!(%error, reason, "cannot publish an Event");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}
