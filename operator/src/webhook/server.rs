//! The webhook's HTTPS server and the task that runs it: the serving certificate (kept by
//! [`keeper`] or read from cert-manager's [`files`](super::tls::files)), readiness, and two
//! routes on the operator's [HTTP server](crate::runtime::http).
//!
//! - `POST /mutate`: an AdmissionReview for a Pod (see [`review`](super::review)).
//! - `GET /healthz`: 200 once a serving certificate is loaded.

use std::sync::Arc;
use std::time::Duration;

use ::http::StatusCode;
use kube::Client;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::WebhookArgs;
use super::metrics::WebhookMetrics;
use super::review;
use super::settings::InjectorSettings;
use super::tls::{self, CertStore, keeper};
use crate::runtime::http::{self, Routes, ServerOptions};
use crate::runtime::readiness::Readiness;

/// Largest AdmissionReview accepted (the API server's own object limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What every request needs.
pub struct Webhook {
    /// Injector settings.
    pub settings: InjectorSettings,
    /// Counters.
    pub metrics: WebhookMetrics,
}

/// The webhook's endpoints.
pub fn routes(webhook: Arc<Webhook>) -> Routes {
    Routes::new()
        .post("/mutate", move |request| {
            let (body, result) = review::handle(request.body(), &webhook.settings);
            webhook.metrics.record(result);
            http::reply(StatusCode::OK, "application/json", body)
        })
        .get("/healthz", |_| http::text(StatusCode::OK, "ok\n"))
}

/// How the webhook's server runs with the serving certificates of `store`.
pub fn options(store: Arc<CertStore>) -> ServerOptions {
    ServerOptions {
        tls: Some(tls::store::server_config(store)),
        max_body_bytes: MAX_BODY_BYTES,
        drain_timeout: Duration::from_secs(10),
        ..ServerOptions::plain("webhook")
    }
}

/// Runs the webhook until `cancel`. Does nothing without `--webhook-listen`. Reports
/// [`CERTIFICATE_READY`](super::CERTIFICATE_READY) to `readiness` once the serving
/// certificate is loaded.
pub async fn run(
    args: WebhookArgs,
    client: Client,
    registry: Registry,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Some(address) = args.webhook_listen else {
        return Ok(());
    };
    let store = CertStore::new();
    // The certificate tasks stop when this function returns, however it returns.
    let stopped = cancel.child_token();
    let _stop_on_return = stopped.clone().drop_guard();
    tokio::spawn({
        let store = store.clone();
        stopped.clone().run_until_cancelled_owned(async move {
            store.loaded().await;
            tracing::info!("webhook serving certificate loaded");
            readiness.listed(super::CERTIFICATE_READY);
        })
    });
    match &args.webhook_cert_dir {
        Some(dir) => tokio::spawn(stopped.clone().run_until_cancelled_owned(tls::files::run(
            dir.clone(),
            store.clone(),
            Duration::from_secs(30),
        ))),
        None => tokio::spawn(stopped.clone().run_until_cancelled_owned(keeper::run(
            client,
            keeper::KeeperConfig {
                namespace: args.webhook_namespace.clone(),
                secret: args.webhook_tls_secret.clone(),
                webhook_configuration: args.webhook_configuration.clone(),
                sans: args.sans(),
                lifetimes: Default::default(),
                interval: Duration::from_secs(3600),
                retry: Duration::from_secs(5),
            },
            store.clone(),
        ))),
    };
    let webhook = Arc::new(Webhook {
        settings: args.settings(),
        metrics: WebhookMetrics::new(&registry)?,
    });
    let listener = http::bind(address).await?;
    tracing::info!(%address, "sidecar injection webhook listening");
    http::serve(listener, routes(webhook), options(store), cancel).await;
    Ok(())
}
