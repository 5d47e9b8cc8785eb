//! What every controller of the operator shares: the client, the index (the single source
//! of truth about the cluster), the work queues, metrics and the Event recorder; and the
//! two writes every controller makes the same way: a status by server-side apply, and an
//! Event.

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use outband_crds::sidecar_config::ApiRef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::index::{Changes, Index, ObjectKey};
use crate::metrics::Metrics;
use crate::runtime::queue::WorkQueue;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "outband-operator";

/// The work queues, one per controller.
pub struct Queues {
    /// KeyManagers to refresh.
    pub key_managers: Arc<WorkQueue<String>>,
    /// Bindings whose status must be recomputed.
    pub bindings: Arc<WorkQueue<ObjectKey>>,
    /// APIs whose config must be recompiled.
    pub apis: Arc<WorkQueue<ApiRef>>,
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    index: Mutex<Index>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The work queues.
    pub queues: Queues,
    recorder: Recorder,
}

impl Context {
    /// A context with an empty index. Config changes wait `config_debounce` before they are
    /// compiled, so that a burst of changes is written once.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        config_debounce: Duration,
    ) -> Context {
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
            queues: Queues {
                key_managers: Arc::new(WorkQueue::new(Duration::ZERO)),
                bindings: Arc::new(WorkQueue::new(Duration::ZERO)),
                apis: Arc::new(WorkQueue::new(config_debounce)),
            },
            recorder,
        }
    }

    /// Locks the index. Hold it only for pure work, never across an `await`.
    pub fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the work that `changes` implies.
    pub fn dispatch(&self, changes: Changes) {
        let Changes {
            apis,
            bindings,
            key_managers,
        } = changes;
        self.queues.apis.extend(apis);
        self.queues.bindings.extend(bindings);
        self.queues.key_managers.extend(key_managers);
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

/// A reference to the object of kind `K` named `name` (in `namespace`), for Events.
pub fn object_reference<K: Resource<DynamicType = ()>>(
    name: &str,
    namespace: Option<&str>,
    uid: Option<&str>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        uid: uid.map(str::to_string),
        ..ObjectReference::default()
    }
}

/// The body of a status write: the object's type and its status, nothing else.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: Cow<'static, str>,
    kind: Cow<'static, str>,
    status: &'a S,
}

/// Writes `status` of the object `name` served by `api`, by server-side apply under
/// [`FIELD_MANAGER`]; returns the object as stored.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + Debug,
{
    let patch = StatusPatch {
        api_version: K::api_version(&()),
        kind: K::kind(&()),
        status,
    };
    Ok(api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A context whose client reaches no API server (for tests that make no request).
    pub fn offline_context(metrics: Arc<Metrics>) -> Context {
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
            .expect("a client for an unused address");
        Context::new(client, metrics, None, Duration::ZERO)
    }

    #[test]
    fn object_references_carry_the_type_of_the_resource() {
        let reference =
            object_reference::<outband_crds::OAuthAppBinding>("app", Some("shop"), Some("u-1"));
        assert_eq!(
            reference.api_version.as_deref(),
            Some("outband.dev/v1alpha1")
        );
        assert_eq!(reference.kind.as_deref(), Some("OAuthAppBinding"));
        assert_eq!(reference.namespace.as_deref(), Some("shop"));
        assert_eq!(reference.uid.as_deref(), Some("u-1"));
    }
}
