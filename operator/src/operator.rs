//! The operator process's shared parts, built once in `main`: the Kubernetes client,
//! metrics, readiness, the shutdown signal, and the controllers' context. `main` then spawns
//! one task per server (admin, controllers, and the injection webhook).

use std::sync::Arc;

use kube::Client;

use crate::args::Args;
use crate::context::Context;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::runtime::Tasks;
use crate::runtime::admin::{self, AdminState};
use crate::runtime::leader::{self, Leadership};
use crate::runtime::readiness::Readiness;
use crate::runtime::shutdown::{Shutdown, ShutdownSignal};
use crate::{controllers, watch};

/// The process's shared parts.
pub struct Operator {
    args: Args,
    client: Client,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
}

impl Operator {
    /// Connects to the cluster (KUBECONFIG or in-cluster).
    pub async fn connect(args: Args) -> Result<Operator, Error> {
        crate::tls::install_crypto_provider();
        let client = Client::try_default().await?;
        let readiness = Arc::new(Readiness::new(&readiness_items(&args)));
        Ok(Operator {
            args,
            client,
            metrics: Arc::new(Metrics::new()),
            readiness,
            shutdown: Shutdown::new(),
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

    /// The signal every task stops on.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.signal()
    }

    /// An empty task set bound to this process's shutdown.
    pub fn tasks(&self) -> Tasks {
        Tasks::new(self.shutdown.clone())
    }

    /// The admin server task (binds its address now).
    pub async fn admin_server(
        &self,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
        admin::bind(
            self.args.admin.admin_listen,
            Arc::new(AdminState {
                metrics: self.metrics.clone(),
                readiness: self.readiness.clone(),
            }),
            self.shutdown.signal(),
        )
        .await
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
        ));
        Ok(controllers::run(
            ctx,
            self.args.controllers.clone(),
            self.readiness.clone(),
            leadership,
            self.shutdown.signal(),
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
