//! cert-manager mode: the serving certificate is a mounted Secret (`tls.crt`, `tls.key`),
//! re-read periodically so the kubelet's update after a renewal is picked up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{CertStore, TlsError};

/// Loads `dir/tls.crt` and `dir/tls.key` into the store.
pub fn load(dir: &std::path::Path, store: &CertStore) -> Result<(), TlsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    store.load_pem(&read("tls.crt")?, &read("tls.key")?)
}

/// Runs forever: reloads the files every `interval`.
pub async fn run(dir: PathBuf, store: Arc<CertStore>, interval: Duration) {
    loop {
        if let Err(error) = load(&dir, &store) {
            tracing::warn!(reason = error.reason(), %error, "webhook certificate files not loaded");
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::webhook::tls::pki;

    #[test]
    fn loads_the_mounted_certificate() {
        let dir =
            std::env::temp_dir().join(format!("outband-webhook-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let material = pki::create(
            &["outband-webhook.outband.svc".to_string()],
            SystemTime::now(),
            &pki::Lifetimes::default(),
        )
        .unwrap();
        let store = CertStore::new();
        assert!(load(&dir, &store).is_err(), "no files yet");
        std::fs::write(dir.join("tls.crt"), &material.tls_cert).unwrap();
        std::fs::write(dir.join("tls.key"), &material.tls_key).unwrap();
        load(&dir, &store).unwrap();
        assert!(store.is_ready());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
