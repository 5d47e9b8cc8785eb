//! The certificate the webhook server presents: a rustls resolver whose certificate can be
//! swapped at any time (rotation without restart).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;

use super::TlsError;

/// Holds the current serving certificate.
#[derive(Debug, Default)]
pub struct CertStore {
    current: ArcSwapOption<CertifiedKey>,
    pem: ArcSwapOption<(String, String)>,
    changed: Notify,
}

impl CertStore {
    /// An empty store: handshakes fail until a certificate is loaded.
    pub fn new() -> Arc<CertStore> {
        Arc::new(CertStore::default())
    }

    /// Loads a PEM certificate chain and private key; a no-op when they are unchanged.
    pub fn load_pem(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        if self
            .pem
            .load()
            .as_deref()
            .is_some_and(|(c, k)| c == cert_pem && k == key_pem)
        {
            return Ok(());
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| parse("the serving certificate", e))?;
        if chain.is_empty() {
            return Err(parse(
                "the serving certificate",
                "no certificate in the PEM",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| parse("the serving key", e))?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| parse("the serving certificate and key", e))?;
        self.current.store(Some(Arc::new(certified)));
        self.pem
            .store(Some(Arc::new((cert_pem.to_string(), key_pem.to_string()))));
        self.changed.notify_waiters();
        Ok(())
    }

    /// Whether a certificate is loaded.
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Waits until a certificate is loaded.
    pub async fn loaded(&self) {
        loop {
            // Registered before the check, so a load in between still wakes us.
            let changed = self.changed.notified();
            if self.is_ready() {
                return;
            }
            changed.await;
        }
    }
}

fn parse(what: &'static str, error: impl std::fmt::Display) -> TlsError {
    TlsError::Parse {
        what,
        detail: error.to_string(),
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// A rustls server config presenting the store's certificate (HTTP/2 and HTTP/1.1).
pub fn server_config(store: Arc<CertStore>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::webhook::tls::pki;

    #[tokio::test]
    async fn waiters_wake_up_when_a_certificate_is_loaded() {
        let store = CertStore::new();
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.loaded().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let material = pki::create(
            &["outband-webhook.outband.svc".to_string()],
            SystemTime::now(),
            &pki::Lifetimes::default(),
        )
        .unwrap();
        store
            .load_pem(&material.tls_cert, &material.tls_key)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the load")
            .unwrap();
        store.loaded().await;
    }
}
