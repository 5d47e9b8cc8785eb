//! The OAuthAppBinding reconcile: compute the status from the index and write it when it
//! changed. Triggered by the index whenever something the status depends on changes
//! (its KeyManager, its APIs, other bindings of its consumer key).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use outband_crds::OAuthAppBinding;
use serde_json::json;

use crate::conditions;
use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::index::ObjectKey;

use super::status;

/// The controller's name in metrics.
pub const CONTROLLER: &str = "oauthappbinding";

/// Reconciles one binding.
pub async fn reconcile(binding: Arc<OAuthAppBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = binding
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = binding
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let key = ObjectKey::new(&namespace, &name);
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let report = {
        let index = ctx.index();
        status::report(
            &index,
            &key,
            binding.metadata.generation,
            binding.status.as_ref(),
            now,
        )
    };
    let Some(report) = report else {
        return Ok(Action::await_change());
    };
    ctx.metrics.set_binding_state(&key, Some(&report.state));
    if binding.status.as_ref() == Some(&report.status) {
        return Ok(Action::await_change());
    }
    let patch = json!({
        "apiVersion": "outband.dev/v1alpha1",
        "kind": "OAuthAppBinding",
        "status": report.status,
    });
    Api::<OAuthAppBinding>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;

    let previous = binding.status.clone().unwrap_or_default();
    for condition in conditions::transitions(&previous.conditions, &report.status.conditions) {
        ctx.event(
            &binding.object_ref(&()),
            condition.status != "True",
            &condition.reason,
            condition.message.clone(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// What to do after a failed reconcile.
pub fn error_policy(binding: Arc<OAuthAppBinding>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
    tracing::warn!(binding = %format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any()),
        reason = error.reason(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
