//! Wires the watches, the index and the three controllers (KeyManagers, OAuthAppBindings,
//! configs) together, under leader election.
//!
//! Every replica watches and keeps its index (so `/readyz` is meaningful and a standby takes
//! over warm); only the leader reconciles. A replica that loses the lease stops its
//! controllers and exits with an error, so its pod restarts as a standby.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::args::ControllerArgs;
use crate::binding::controller::Bindings;
use crate::config::controller::Configs;
use crate::context::Context;
use crate::error::Error;
use crate::key_manager::controller::{KeyManagers, Settings};
use crate::key_manager::source::Sources;
use crate::runtime::leader::Leadership;
use crate::runtime::queue::{self, RetryPolicy, RunSettings};
use crate::runtime::readiness::Readiness;
use crate::watch;
use outband_idp::fetch::{FetchSettings, Fetcher};

/// Runs the watches, and the controllers while this replica leads, until `cancel` (or the
/// loss of the lease).
pub async fn run(
    ctx: Arc<Context>,
    args: ControllerArgs,
    readiness: Arc<Readiness>,
    mut leadership: Leadership,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut watches = watch::start(ctx.clone(), readiness.clone());

    // Never write from a partial picture: wait for every first list, then for the lease.
    tokio::select! {
        () = readiness.wait_for(&watch::WATCHES) => {}
        () = cancel.cancelled() => return Ok(()),
    }
    tracing::info!("every watch has listed; campaigning for leadership");
    tokio::select! {
        acquired = leadership.acquired() => acquired?,
        () = cancel.cancelled() => {
            leadership.release().await;
            return Ok(());
        }
    }
    tracing::info!("leading: starting the controllers");
    ctx.metrics.leader.set(1);

    let stop = cancel.child_token();
    let retry = RetryPolicy {
        initial: args.backoff_initial,
        max: args.backoff_max,
    };
    let settings = |concurrency: u16| RunSettings {
        concurrency: usize::from(concurrency),
        retry,
    };
    let key_managers = KeyManagers::new(
        ctx.clone(),
        Sources::new(
            Fetcher::new(FetchSettings {
                max_response_bytes: args.max_response_bytes,
                connect_timeout: args.connect_timeout,
                user_agent: concat!("outband-operator/", env!("CARGO_PKG_VERSION")).into(),
            }),
            ctx.client.clone(),
        ),
        Settings {
            retry,
            refresh_cap: args.max_refresh_interval,
        },
    );
    // Each queue takes marks from here on; then everything the index holds is marked.
    let running = futures::future::join3(
        queue::run(
            Arc::new(key_managers),
            ctx.queues.key_managers.clone(),
            settings(args.key_manager_concurrency),
            stop.clone(),
        ),
        queue::run(
            Arc::new(Bindings::new(ctx.clone(), args.resync_interval)),
            ctx.queues.bindings.clone(),
            settings(args.binding_concurrency),
            stop.clone(),
        ),
        queue::run(
            Arc::new(Configs::new(ctx.clone(), args.resync_interval)),
            ctx.queues.apis.clone(),
            settings(args.config_concurrency),
            stop.clone(),
        ),
    );
    {
        let index = ctx.index();
        ctx.queues.key_managers.extend(index.key_manager_names());
        ctx.queues.bindings.extend(index.binding_key_list());
        ctx.queues.apis.extend(index.all_apis());
    }

    tokio::pin!(running);
    let lost = tokio::select! {
        _ = &mut running => false,
        () = leadership.lost() => true,
    };
    if lost {
        stop.cancel();
        running.await;
    }
    ctx.metrics.leader.set(0);
    watches.abort_all();
    if lost {
        tracing::error!("lost the leader lease; stopping");
        return Err(Error::LeadershipLost);
    }
    leadership.release().await;
    Ok(())
}
