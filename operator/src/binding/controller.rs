//! The OAuthAppBinding reconcile: compute the status from the index and write it when it
//! changed. Triggered by the index whenever something the status depends on changes (its
//! KeyManager, its APIs, other bindings of its consumer key), and every resync interval.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use outband_crds::OAuthAppBinding;

use crate::conditions::{self, Status};
use crate::context::{Context, apply_status, object_reference};
use crate::error::Error;
use crate::index::ObjectKey;
use crate::runtime::queue::{Action, Reconciler};

use super::status;

/// The controller's name in metrics.
pub const CONTROLLER: &str = "oauthappbinding";

/// The binding controller.
pub struct Bindings {
    ctx: Arc<Context>,
    resync: Duration,
}

impl Bindings {
    /// A controller that rechecks every binding each `resync` even without changes.
    pub fn new(ctx: Arc<Context>, resync: Duration) -> Bindings {
        Bindings { ctx, resync }
    }
}

impl Reconciler for Bindings {
    type Key = ObjectKey;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn reconcile(self: Arc<Self>, key: ObjectKey) -> Result<Action, Error> {
        reconcile(&self.ctx, &key, self.resync).await
    }

    fn regarding(&self, key: &ObjectKey) -> Option<ObjectReference> {
        let index = self.ctx.index();
        let entry = index.binding(key)?;
        Some(object_reference::<OAuthAppBinding>(
            &key.name,
            Some(&key.namespace),
            entry.uid.as_deref(),
        ))
    }
}

/// Reconciles binding `key`.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, resync: Duration) -> Result<Action, Error> {
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let (report, previous, uid) = {
        let index = ctx.index();
        let Some(entry) = index.binding(key) else {
            return Ok(Action::await_change());
        };
        let report = status::report(&index, key, entry.generation, &entry.status.conditions, now);
        (report, entry.status.clone(), entry.uid.clone())
    };
    let Some(report) = report else {
        // Its KeyManager has not been checked yet: the status stays as it is.
        return Ok(Action::requeue(resync));
    };
    ctx.metrics.set_binding_state(key, Some(&report.state));
    if previous.matches(&report.status) {
        return Ok(Action::requeue(resync));
    }
    let api = Api::<OAuthAppBinding>::namespaced(ctx.client.clone(), &key.namespace);
    let written = match apply_status(&api, &key.name, &report.status).await {
        Ok(written) => written,
        Err(error) if error.is_not_found() => return Ok(Action::await_change()),
        Err(error) => return Err(error),
    };
    ctx.index()
        .record_binding_status(key, written.status.as_ref().unwrap_or(&report.status));

    let reference =
        object_reference::<OAuthAppBinding>(&key.name, Some(&key.namespace), uid.as_deref());
    for condition in conditions::transitions(&previous.conditions, &report.status.conditions) {
        ctx.event(
            &reference,
            Status::of(condition) != Status::True,
            &condition.reason,
            condition.message.clone(),
        )
        .await;
    }
    Ok(Action::requeue(resync))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::fixtures::{self, ApiServerVerifier};
    use crate::index::tests::{key_manager, pod, ready, simple_binding};
    use crate::runtime::queue::{self, RetryPolicy, RunSettings};

    const RESYNC: Duration = Duration::from_secs(600);

    /// KeyManager `idp` Ready, API shop/orders served, binding shop/app subscribed to it.
    fn bound() -> (Arc<Context>, ApiServerVerifier, OAuthAppBinding, ObjectKey) {
        let (ctx, server) = fixtures::context();
        let binding = simple_binding("shop", "app", 1, "idp", "client-a", "orders");
        ctx.update(|index| {
            let mut changes = index.apply_key_manager(&key_manager("idp", json!({})));
            changes.extend(ready(index, "idp"));
            changes.extend(index.apply_pod(&pod("shop", "orders-1", "orders", &[])));
            changes.extend(index.apply_binding(&binding));
            changes
        });
        (ctx, server, binding, ObjectKey::new("shop", "app"))
    }

    #[tokio::test]
    async fn a_new_status_is_applied_once_with_an_event_for_its_transition() {
        let (ctx, server, binding, key) = bound();
        let (action, (server, status, event)) = fixtures::run(
            async move {
                let mut server = server;
                let status = server.apply_status(&binding).await;
                let event = server.event().await;
                (server, status, event)
            },
            reconcile(&ctx, &key, RESYNC),
        )
        .await;
        assert_eq!(action.unwrap(), Action::requeue(RESYNC));
        assert_eq!(status["conditions"][0]["type"], "Ready");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert_eq!(status["conditions"][0]["reason"], "Bound");
        assert_eq!(status["tokenEndpoint"], "https://idp.example/token");
        assert_eq!(status["subscriptions"][0]["effective"], true);
        assert_eq!(event["reason"], "Bound");
        assert_eq!(event["type"], "Normal");
        assert_eq!(event["regarding"]["kind"], "OAuthAppBinding");
        assert_eq!(event["regarding"]["name"], "app");

        // The written status is recorded: recomputing it sends nothing.
        let (action, server) =
            fixtures::run(async move { server }, reconcile(&ctx, &key, RESYNC)).await;
        assert_eq!(action.unwrap(), Action::requeue(RESYNC));
        assert!(
            ctx.metrics
                .render()
                .contains("outband_operator_bindings{state=\"Bound\"} 1")
        );
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn a_status_edited_by_someone_else_is_written_back() {
        let (ctx, server, mut binding, key) = bound();
        let (_, (server, written)) = fixtures::run(
            {
                let binding = binding.clone();
                async move {
                    let mut server = server;
                    let written = server.apply_status(&binding).await;
                    server.event().await;
                    (server, written)
                }
            },
            reconcile(&ctx, &key, RESYNC),
        )
        .await;
        // Someone edits the status; the watch brings the edit in.
        let mut edited: outband_crds::OAuthAppBindingStatus =
            serde_json::from_value(written.clone()).unwrap();
        edited.token_endpoint = Some("https://elsewhere.example/token".into());
        binding.status = Some(edited);
        let changes = ctx.index().apply_binding(&binding);
        assert_eq!(
            changes.bindings.into_iter().collect::<Vec<_>>(),
            std::slice::from_ref(&key)
        );
        assert!(
            changes.apis.is_empty(),
            "the config does not depend on statuses"
        );

        let (_, (server, repaired)) = fixtures::run(
            async move {
                let mut server = server;
                let repaired = server.apply_status(&binding).await;
                (server, repaired)
            },
            reconcile(&ctx, &key, RESYNC),
        )
        .await;
        assert_eq!(repaired, written, "no transition, so no Event either");
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn a_binding_of_a_key_manager_not_checked_yet_is_left_alone() {
        let (ctx, server) = fixtures::context();
        let key = ObjectKey::new("shop", "app");
        ctx.update(|index| {
            let mut changes = index.apply_key_manager(&key_manager("idp", json!({})));
            changes.extend(index.apply_binding(&simple_binding(
                "shop", "app", 1, "idp", "client-a", "orders",
            )));
            changes
        });
        let (action, server) =
            fixtures::run(async move { server }, reconcile(&ctx, &key, RESYNC)).await;
        assert_eq!(action.unwrap(), Action::requeue(RESYNC));
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn a_binding_deleted_meanwhile_is_no_failure() {
        let (ctx, server, binding, key) = bound();
        let (action, server) = fixtures::run(
            async move {
                let mut server = server;
                server.refuse_status(&binding, 404).await;
                server
            },
            reconcile(&ctx, &key, RESYNC),
        )
        .await;
        assert_eq!(action.unwrap(), Action::await_change());
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn a_refused_write_is_retried_with_a_warning_event_named_after_the_error() {
        let (ctx, server, binding, key) = bound();
        let cancel = CancellationToken::new();
        let runner = tokio::spawn(queue::run(
            Arc::new(Bindings::new(ctx.clone(), RESYNC)),
            ctx.queues.bindings.clone(),
            RunSettings {
                concurrency: 1,
                retry: RetryPolicy {
                    initial: Duration::from_millis(10),
                    max: Duration::from_millis(10),
                },
            },
            cancel.clone(),
        ));
        ctx.queues.bindings.add(key);
        let (server, warning, bound) = tokio::time::timeout(Duration::from_secs(5), async move {
            let mut server = server;
            server.refuse_status(&binding, 409).await;
            let warning = server.event().await;
            server.apply_status(&binding).await;
            let bound = server.event().await;
            (server, warning, bound)
        })
        .await
        .expect("the scenario finished");
        assert_eq!(warning["type"], "Warning");
        assert_eq!(warning["reason"], "Conflict");
        assert_eq!(warning["regarding"]["name"], "app");
        assert_eq!(bound["reason"], "Bound");
        cancel.cancel();
        runner.await.unwrap();
        assert_eq!(ctx.metrics.reconcile_errors_of(CONTROLLER, "Conflict"), 1);
        drop(ctx);
        server.done().await;
    }
}
