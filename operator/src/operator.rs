//! The operator process's shared parts, built once in `main`: the Kubernetes client,
//! metrics, readiness, the cancellation every task stops on, and the controllers' context.
//! `main` then spawns one task per server (admin, controllers, and the injection webhook).

use std::sync::Arc;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::context::Context;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::runtime::Tasks;
use crate::runtime::admin;
use crate::runtime::http::{self, ServerOptions};
use crate::runtime::leader::{self, Leadership};
use crate::runtime::readiness::Readiness;
use crate::{controllers, watch};

/// The process's shared parts.
pub struct Operator {
    args: Args,
    client: Client,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    cancel: CancellationToken,
}

impl Operator {
    /// Connects to the cluster (KUBECONFIG or in-cluster).
    pub async fn connect(args: Args) -> Result<Operator, Error> {
        crate::crypto::install_provider();
        let client = Client::try_default().await?;
        let readiness = Arc::new(Readiness::new(&readiness_items(&args)));
        Ok(Operator {
            args,
            client,
            metrics: Arc::new(Metrics::new()),
            readiness,
            cancel: CancellationToken::new(),
        })
    }

    /// The Kubernetes client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// What `/readyz` waits for (the webhook reports its certificate here).
    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// The metrics (other components register theirs in `metrics().registry()`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The token every task stops on.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// An empty task set bound to this process's cancellation.
    pub fn tasks(&self) -> Tasks {
        Tasks::new(self.cancel.clone())
    }

    /// The admin server task (binds its address now, so that a bad one fails at start-up).
    pub async fn admin_server(
        &self,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
        let address = self.args.admin.admin_listen;
        let listener = http::bind(address)
            .await
            .map_err(|source| Error::Admin { address, source })?;
        tracing::info!(%address, "admin server listening");
        let routes = admin::routes(self.metrics.clone(), self.readiness.clone());
        let cancel = self.cancel.clone();
        Ok(async move {
            http::serve(listener, routes, ServerOptions::plain("admin"), cancel).await;
            Ok(())
        })
    }

    /// The controllers task (watches, leader election, KeyManager, binding and config
    /// controllers).
    pub async fn controllers(
        &self,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
        let leadership = Leadership::start(self.client.clone(), &self.args.leader).await?;
        let ctx = Arc::new(Context::new(
            self.client.clone(),
            self.metrics.clone(),
            Some(leader::identity(&self.args.leader)),
            self.args.controllers.config_debounce,
        ));
        Ok(controllers::run(
            ctx,
            self.args.controllers.clone(),
            self.readiness.clone(),
            leadership,
            self.cancel.clone(),
        ))
    }
}

/// What the process must have before it is Ready: every watch's first list and, when the
/// webhook is served, its serving certificate.
pub fn readiness_items(args: &Args) -> Vec<&'static str> {
    let mut items = watch::WATCHES.to_vec();
    if args.webhook.webhook_listen.is_some() {
        items.push(crate::webhook::CERTIFICATE_READY);
    }
    items
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn with_the_webhook_readiness_waits_for_its_certificate() {
        let without = Args::parse_from(["outband-operator"]);
        assert!(!readiness_items(&without).contains(&crate::webhook::CERTIFICATE_READY));
        let with = Args::parse_from(["outband-operator", "--webhook-listen=127.0.0.1:9443"]);
        let items = readiness_items(&with);
        assert!(items.contains(&crate::webhook::CERTIFICATE_READY));
        assert!(watch::WATCHES.iter().all(|w| items.contains(w)));
    }
}
