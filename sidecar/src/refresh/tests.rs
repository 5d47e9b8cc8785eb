use std::sync::atomic::AtomicUsize;

use super::*;
use crate::test_support::keys;
use tokio::sync::Notify;

/// A JWKS endpoint in memory that counts fetches and can hold them until released.
struct FakeSource {
    document: Mutex<Result<Vec<u8>, u16>>,
    fetches: AtomicUsize,
    gate: Option<Arc<Notify>>,
}

impl FakeSource {
    fn serving(keys: &[outband_crds::sidecar_config::PublicJwk]) -> FakeSource {
        let document = serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap();
        FakeSource {
            document: Mutex::new(Ok(document)),
            fetches: AtomicUsize::new(0),
            gate: None,
        }
    }
}

impl JwksSource for FakeSource {
    fn fetch<'a>(
        &'a self,
        _refresh: &'a JwksRefresh,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            self.document
                .lock()
                .unwrap()
                .clone()
                .map_err(|status| FetchError::Status {
                    url: "https://idp.example.test/jwks".into(),
                    status,
                })
        })
    }
}

fn refresh_config() -> JwksRefresh {
    JwksRefresh {
        url: "https://idp.example.test/jwks".into(),
        ca_bundle: None,
        allow_loopback: false,
        timeout_seconds: 5,
    }
}

fn refresher(source: Arc<FakeSource>, min_interval: Duration) -> JwksRefresher {
    JwksRefresher::new(
        source,
        min_interval,
        Duration::from_secs(300),
        Metrics::new(),
    )
}

#[tokio::test]
async fn a_fetch_learns_a_new_kid_and_installs_it() {
    let source = Arc::new(FakeSource::serving(&[keys().p256.jwk(true)]));
    let refresher = refresher(source.clone(), Duration::ZERO);
    let mut installed = None;
    let outcome = refresher
        .refresh("idp", &refresh_config(), Some("ec-1"), |keys| {
            installed = Some(keys)
        })
        .await;
    assert!(matches!(outcome, Refreshed::Fetched(_)));
    assert!(matches!(
        installed.unwrap().lookup(Some("ec-1")),
        Lookup::Found(_)
    ));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_requests_share_one_fetch() {
    let gate = Arc::new(Notify::new());
    let mut source = FakeSource::serving(&[keys().p256.jwk(true)]);
    source.gate = Some(gate.clone());
    let source = Arc::new(source);
    let refresher = Arc::new(refresher(source.clone(), Duration::ZERO));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let refresher = refresher.clone();
            tokio::spawn(async move {
                refresher
                    .refresh("idp", &refresh_config(), Some("ec-1"), |_| {})
                    .await
            })
        })
        .collect();
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    let mut fetched = 0;
    let mut by_other = 0;
    for task in tasks {
        match task.await.unwrap() {
            Refreshed::Fetched(_) => fetched += 1,
            Refreshed::ByOther => by_other += 1,
            Refreshed::Nothing => {}
        }
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    assert_eq!((fetched, by_other), (1, 9));
}

#[tokio::test]
async fn attempts_are_rate_limited_per_key_manager() {
    let source = Arc::new(FakeSource::serving(&[keys().p256.jwk(true)]));
    let refresher = refresher(source.clone(), Duration::from_secs(3600));
    refresher
        .refresh("idp", &refresh_config(), Some("ec-1"), |_| {})
        .await;
    let second = refresher
        .refresh("idp", &refresh_config(), Some("other-kid"), |_| {})
        .await;
    assert!(matches!(second, Refreshed::Nothing));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    let other_km = refresher
        .refresh("idp-2", &refresh_config(), Some("x"), |_| {})
        .await;
    assert!(matches!(other_km, Refreshed::Fetched(_)));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unknown_kid_is_remembered() {
    let source = Arc::new(FakeSource::serving(&[keys().p256.jwk(true)]));
    let refresher = refresher(source.clone(), Duration::ZERO);
    refresher
        .refresh("idp", &refresh_config(), Some("invented"), |_| {})
        .await;
    for _ in 0..100 {
        let outcome = refresher
            .refresh("idp", &refresh_config(), Some("invented"), |_| {})
            .await;
        assert!(matches!(outcome, Refreshed::Nothing));
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_fetch_installs_nothing_and_is_counted() {
    let source = Arc::new(FakeSource::serving(&[]));
    *source.document.lock().unwrap() = Err(503);
    let metrics = Metrics::new();
    let refresher = JwksRefresher::new(
        source.clone(),
        Duration::ZERO,
        Duration::from_secs(300),
        metrics.clone(),
    );
    let mut installed = false;
    let outcome = refresher
        .refresh("idp", &refresh_config(), Some("k"), |_| installed = true)
        .await;
    assert!(matches!(outcome, Refreshed::Nothing));
    assert!(!installed);
    assert_eq!(
        metrics
            .jwks_fetches
            .with_label_values(&["idp", "bad_status"])
            .get(),
        1
    );
}

#[tokio::test]
async fn an_invalid_document_installs_nothing() {
    let source = Arc::new(FakeSource::serving(&[]));
    *source.document.lock().unwrap() = Ok(b"<html>".to_vec());
    let refresher = refresher(source.clone(), Duration::ZERO);
    let outcome = refresher
        .refresh("idp", &refresh_config(), Some("k"), |_| panic!("installed"))
        .await;
    assert!(matches!(outcome, Refreshed::Nothing));
}

#[tokio::test]
async fn a_document_whose_keys_are_all_refused_is_not_a_success() {
    let mut weak = keys().p256.jwk(true);
    if let outband_crds::jwk::PublicJwk::Ec(key) = &mut weak {
        key.y = vec![7; 32].into();
    }
    let source = Arc::new(FakeSource::serving(&[weak]));
    let metrics = Metrics::new();
    let refresher = JwksRefresher::new(
        source.clone(),
        Duration::ZERO,
        Duration::from_secs(300),
        metrics.clone(),
    );
    let outcome = refresher
        .refresh("idp", &refresh_config(), Some("ec-1"), |_| {
            panic!("installed")
        })
        .await;
    assert!(matches!(outcome, Refreshed::Nothing));
    let count = |result: &str| {
        metrics
            .jwks_fetches
            .with_label_values(&["idp", result])
            .get()
    };
    assert_eq!((count("success"), count("no_usable_keys")), (0, 1));
}

#[test]
fn every_fetch_result_is_listed() {
    let url = || "u".to_string();
    let text = || "t".to_string();
    let errors = [
        FetchError::InvalidUrl {
            url: url(),
            message: text(),
        },
        FetchError::SchemeRefused { url: url() },
        FetchError::AddressRefused {
            host: text(),
            refusal: text(),
        },
        FetchError::InvalidCaBundle(text()),
        FetchError::Dns {
            host: text(),
            message: text(),
        },
        FetchError::Connect {
            url: url(),
            message: text(),
        },
        FetchError::Timeout {
            url: url(),
            timeout: Duration::from_secs(1),
        },
        FetchError::Redirect {
            url: url(),
            message: text(),
        },
        FetchError::Status {
            url: url(),
            status: 500,
        },
        FetchError::TooLarge {
            url: url(),
            limit: 1,
        },
        FetchError::Body {
            url: url(),
            message: text(),
        },
    ];
    assert_eq!(errors.len(), FetchError::REASONS.len());
    for error in &errors {
        assert!(RESULTS.contains(&fetch_result(error)), "{error}");
    }
}

#[tokio::test]
async fn the_real_client_refuses_metadata_urls_without_connecting() {
    let refresh = JwksRefresh {
        url: "http://169.254.169.254/latest/meta-data/jwks".into(),
        ca_bundle: None,
        allow_loopback: true,
        timeout_seconds: 1,
    };
    let err = HttpSource::new().fetch(&refresh).await.unwrap_err();
    assert_eq!(fetch_result(&err), "refused_url");
}
