//! Wiring the sidecar together and running it until SIGTERM/SIGINT, then draining: not ready
//! at once, keep serving for `--shutdown-delay`, stop accepting, let connections finish their
//! requests for up to `--drain-timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::admin::{self, Admin};
use crate::auth::Authenticator;
use crate::cache::TokenCache;
use crate::cli::{RunArgs, UpstreamProtocol};
use crate::config::watch::ConfigWatcher;
use crate::metrics::Metrics;
use crate::proxy::server::{self, ConnectionLimits, Tracker};
use crate::proxy::{ForwardSettings, Proxy, Upstream};
use crate::refresh::{HttpSource, JwksRefresher};
use crate::settings::Settings;

/// Runs the proxy and admin servers until a termination signal, then drains.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = Arc::new(Settings::from_args(&args.decision).map_err(|err| anyhow!(err))?);
    let upstream = Upstream::parse(
        &args.pod.upstream,
        args.upstream_protocol == UpstreamProtocol::H2c,
    )
    .map_err(|err| anyhow!(err))?;
    let realm = args
        .realm
        .clone()
        .unwrap_or_else(|| match &settings.api_namespace {
            Some(namespace) => format!("{namespace}/{}", settings.api_name),
            None => settings.api_name.clone(),
        });

    let metrics = Metrics::new();
    let refresher = JwksRefresher::new(
        Arc::new(HttpSource::new()),
        args.jwks_min_interval,
        args.jwks_negative_ttl,
        metrics.clone(),
    );
    let auth = Arc::new(Authenticator::new(
        settings.clone(),
        TokenCache::new(args.token_cache_size, args.token_cache_ttl),
        refresher,
        metrics.clone(),
        args.jwks_keys_ttl,
    ));

    let listener = TcpListener::bind(args.pod.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.pod.listen))?;
    let admin_listener = TcpListener::bind(args.pod.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--admin-listen)",
                args.pod.admin_listen
            )
        })?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        upstream = %args.pod.upstream,
        api = %settings.api_name,
        key_type = settings.key_type.as_str(),
        route_rules = settings.routes.source().rules.len(),
        config_dir = %args.pod.config_dir.display(),
        "outband-sidecar started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_admin_tx, stop_admin_rx) = watch::channel(false);
    let watcher = ConfigWatcher::new(
        args.pod.config_dir.clone(),
        auth.clone(),
        metrics.clone(),
        args.config_poll_interval,
    );
    let watcher_task = tokio::spawn(watcher.run(stop_rx.clone()));

    let draining = Arc::new(AtomicBool::new(false));
    let admin = Arc::new(Admin {
        auth: auth.clone(),
        metrics: metrics.clone(),
        draining: draining.clone(),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin, stop_admin_rx));

    let tracker = Arc::new(Tracker::default());
    let proxy = Arc::new(Proxy::new(
        auth,
        ForwardSettings {
            upstream,
            realm,
            upstream_timeout: (!args.upstream_timeout.is_zero()).then_some(args.upstream_timeout),
            connect_timeout: args.upstream_connect_timeout,
            strip_authorization: args.strip_authorization,
        },
        metrics.clone(),
        tracker.clone(),
    ));
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_header_bytes: args.max_header_bytes,
        max_headers: args.max_headers,
        max_concurrent_streams: args.max_concurrent_streams,
    };
    let server_task = tokio::spawn(server::serve(
        listener,
        proxy,
        limits,
        tracker.clone(),
        metrics,
        stop_rx,
    ));

    let signal_name = termination_signal().await?;
    draining.store(true, Ordering::Release);
    tracing::info!(signal = signal_name, delay = ?args.shutdown_delay, "shutting down: not ready; draining after the delay");
    tokio::time::sleep(args.shutdown_delay).await;
    let _ = stop_tx.send(true);
    let _ = server_task.await;
    let left = tracker.wait_idle(args.drain_timeout).await;
    if left == 0 {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(open = left, "drain timeout reached; closing what is left");
    }
    let _ = stop_admin_tx.send(true);
    let _ = admin_task.await;
    let _ = watcher_task.await;
    Ok(())
}

async fn termination_signal() -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
