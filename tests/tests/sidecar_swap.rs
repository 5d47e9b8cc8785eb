//! Hot reload under load: the config volume is swapped the kubelet way (new timestamped
//! directory, atomic `..data` rename, old directory deleted) 200 times while clients send
//! requests continuously; every swap is seen by the sidecar and no request fails.

mod sidecar_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sidecar_common::*;

const SWAPS: usize = 200;
const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_kubelet_swaps_under_load_fail_no_request() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let base = config_for(&provider).await;
    let (dir, volume) = volume_with(&base);
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let tokens: Vec<String> = {
        let mut tokens = Vec::new();
        for client in [PROD, EC_CLIENT] {
            tokens.push(token(&provider, client, "orders:read").await);
        }
        tokens
    };

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let url = sidecar.url(&format!("/orders/{worker}"));
        let token = tokens[worker % tokens.len()].clone();
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = client.get(&url).bearer_auth(&token).send().await;
                sent.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(response) if response.status() == 200 => {
                        // Read the body so the connection is reused.
                        let _ = response.bytes().await;
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failures.lock().unwrap().push(format!("{status}: {body}"));
                    }
                    Err(err) => failures.lock().unwrap().push(err.to_string()),
                }
            }
        }));
    }

    let started = Instant::now();
    let mut generations = Vec::new();
    for swap in 0..SWAPS {
        let mut config = base.clone();
        // Every swap changes the document: tiers alternate, and a new subscription appears.
        for sub in &mut config.subscriptions {
            sub.tier = Some(if swap % 2 == 0 { "Silver" } else { "Gold" }.into());
        }
        config.subscriptions.push(subscription(
            &format!("swap-{swap:03}"),
            outband_crds::KeyType::Production,
            outband_crds::SubscriptionState::Active,
        ));
        config
            .subscriptions
            .sort_by(|a, b| a.consumer_key.cmp(&b.consumer_key));
        let wanted = generation(&config);
        let sent_before = sent.load(Ordering::Relaxed);
        volume.write(&bundle_files(&config)).unwrap();
        // Wait until the sidecar has this generation in effect and requests flowed meanwhile.
        let sample = format!("outband_sidecar_config_info{{sha256=\"{wanted}\"}}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while sidecar.metric(&sample).await != 1.0 || sent.load(Ordering::Relaxed) == sent_before {
            assert!(
                Instant::now() < deadline,
                "swap {swap} was not picked up:\n{}",
                sidecar.log()
            );
            tokio::task::yield_now().await;
        }
        generations.push(wanted);
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    let total = sent.load(Ordering::Relaxed);
    eprintln!(
        "{SWAPS} swaps in {:.2?} with {total} requests from {CLIENTS} clients; {} failed",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total > SWAPS, "requests must overlap the swaps ({total})");
    generations.dedup();
    assert_eq!(generations.len(), SWAPS);
    let metrics = sidecar.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "outband_sidecar_config_reloads_total{result=\"success\"}"
        ) >= (SWAPS + 1) as f64,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "outband_sidecar_config_reloads_total{result=\"failure\"}"
        ),
        0.0
    );
    assert_eq!(
        metric_value(&metrics, "outband_sidecar_config_subscriptions"),
        (base.subscriptions.len() + 1) as f64
    );
}
