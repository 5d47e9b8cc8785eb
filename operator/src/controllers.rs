//! Wires the watches, the index and the three controllers (KeyManager, OAuthAppBinding,
//! config writer) together, under leader election.
//!
//! Every replica watches and keeps its index (so `/readyz` is meaningful and a standby takes
//! over warm); only the leader refreshes keys and writes. A replica that loses the lease
//! stops its controllers and exits with an error, so its pod restarts as a standby.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, applier};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use outband_crds::annotations;
use outband_crds::{KeyManager, OAuthAppBinding};
use tokio::task::JoinSet;

use crate::args::ControllerArgs;
use crate::binding;
use crate::config::{configmaps, writer};
use crate::context::Context;
use crate::error::Error;
use crate::index::ObjectKey;
use crate::key_manager::controller::{self as km_controller, KeyManagerController, Settings};
use crate::key_manager::source::Sources;
use crate::runtime::leader::Leadership;
use crate::runtime::readiness::Readiness;
use crate::runtime::shutdown::{Shutdown, ShutdownSignal};
use crate::watch;
use outband_idp::fetch::{FetchSettings, Fetcher};

type Reconciling = Pin<Box<dyn Future<Output = Result<Action, Error>> + Send>>;

/// Runs the controllers until `shutdown` (or the loss of the lease).
pub async fn run(
    ctx: Arc<Context>,
    args: ControllerArgs,
    readiness: Arc<Readiness>,
    mut leadership: Leadership,
    shutdown: ShutdownSignal,
) -> Result<(), Error> {
    let client = ctx.client.clone();
    let mut watches = JoinSet::new();
    let (km_store, km_writer) = reflector::store::<KeyManager>();
    let (binding_store, binding_writer) = reflector::store::<OAuthAppBinding>();
    {
        let events = reflector::reflector(
            km_writer,
            watcher(
                Api::<KeyManager>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        );
        let metrics = ctx.metrics.clone();
        watches.spawn(watch::feed(
            events,
            ctx.clone(),
            readiness.clone(),
            move |name: &String| metrics.forget_key_manager(name),
        ));
        let events = reflector::reflector(
            binding_writer,
            watcher(
                Api::<OAuthAppBinding>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff(),
        );
        let metrics = ctx.metrics.clone();
        watches.spawn(watch::feed(
            events,
            ctx.clone(),
            readiness.clone(),
            move |key: &ObjectKey| metrics.set_binding_state(key, None),
        ));
        let pods = watcher(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default().labels(&format!(
                "{}={}",
                annotations::INJECT_LABEL,
                annotations::INJECT_ENABLED
            )),
        )
        .default_backoff();
        watches.spawn(watch::feed(
            pods,
            ctx.clone(),
            readiness.clone(),
            |_: &ObjectKey| {},
        ));
        let configmaps = watcher(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().labels(&configmaps::selector()),
        )
        .default_backoff();
        watches.spawn(watch::feed(
            configmaps,
            ctx.clone(),
            readiness.clone(),
            |_: &ObjectKey| {},
        ));
    }

    // Never write from a partial picture: wait for every first list, then for the lease.
    tokio::select! {
        () = readiness.wait_for(&watch::WATCHES) => {}
        () = shutdown.clone().wait() => return Ok(()),
    }
    tracing::info!("every watch has listed; campaigning for leadership");
    tokio::select! {
        acquired = leadership.acquired() => acquired?,
        () = shutdown.clone().wait() => {
            leadership.release().await;
            return Ok(());
        }
    }
    tracing::info!("leading: starting the controllers");
    ctx.metrics.leader.set(1);
    {
        let index = ctx.index();
        ctx.key_managers.extend(index.key_manager_names());
        ctx.bindings.extend(index.binding_key_list());
        ctx.apis.extend(index.all_apis());
    }

    let stop = Shutdown::new();
    let key_managers = {
        let fetcher = Fetcher::new(FetchSettings {
            max_response_bytes: args.max_response_bytes,
            connect_timeout: args.connect_timeout,
            user_agent: concat!("outband-operator/", env!("CARGO_PKG_VERSION")).into(),
        });
        let controller = Arc::new(KeyManagerController::new(
            ctx.clone(),
            Sources::new(fetcher, client.clone()),
            Settings {
                backoff_initial: args.refresh_backoff_initial,
                backoff_max: args.refresh_backoff_max,
                refresh_cap: args.max_refresh_interval,
            },
        ));
        let queue = ctx
            .key_managers
            .clone()
            .stream(Duration::ZERO)
            .map(|name| Ok::<_, Infallible>(ObjectRef::<KeyManager>::new(&name)))
            .take_until(stop.signal().wait());
        applier(
            |km, this| -> Reconciling { Box::pin(km_controller::reconcile(km, this)) },
            km_controller::error_policy,
            controller,
            km_store,
            queue,
            controller::Config::default().concurrency(args.key_manager_concurrency),
        )
        .for_each(|result| async move { log_applier("keymanager", result.map(|_| ())) })
    };
    let bindings = {
        let queue = ctx
            .bindings
            .clone()
            .stream(Duration::ZERO)
            .map(|key| {
                Ok::<_, Infallible>(
                    ObjectRef::<OAuthAppBinding>::new(&key.name).within(&key.namespace),
                )
            })
            .take_until(stop.signal().wait());
        applier(
            |b, ctx| -> Reconciling { Box::pin(binding::controller::reconcile(b, ctx)) },
            binding::controller::error_policy,
            ctx.clone(),
            binding_store,
            queue,
            controller::Config::default().concurrency(args.binding_concurrency),
        )
        .for_each(|result| async move { log_applier("oauthappbinding", result.map(|_| ())) })
    };
    let configs = writer::run(ctx.clone(), args.config_debounce, stop.signal());
    let resync = {
        let ctx = ctx.clone();
        let stopped = stop.signal();
        async move {
            let mut ticker = tokio::time::interval(args.resync_interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stopped.clone().wait() => return,
                }
                let index = ctx.index();
                ctx.apis.extend(index.all_apis());
                ctx.bindings.extend(index.binding_key_list());
            }
        }
    };

    let running = futures::future::join4(key_managers, bindings, configs, resync);
    tokio::pin!(running);
    let lost = tokio::select! {
        _ = &mut running => false,
        () = shutdown.clone().wait() => false,
        () = leadership.lost() => true,
    };
    stop.trigger();
    running.await;
    ctx.metrics.leader.set(0);
    watches.abort_all();
    if lost {
        tracing::error!("lost the leader lease; stopping");
        return Err(Error::LeadershipLost);
    }
    leadership.release().await;
    Ok(())
}

fn log_applier<E: std::fmt::Display>(controller: &str, result: Result<(), E>) {
    if let Err(error) = result {
        let text = error.to_string();
        if text.contains("not found in local store") {
            tracing::debug!(controller, %error, "object gone before its reconcile");
        } else {
            tracing::debug!(controller, %error, "reconcile ended with an error");
        }
    }
}
