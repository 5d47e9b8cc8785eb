//! `prometheus` against `prometheus-client` on the operations Outband's binaries make:
//! counting with a label lookup, counting through a resolved child (the sidecar's hot path),
//! observing a histogram from one and from two threads at once, and rendering a registry
//! the size of a busy operator's.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

const BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    key_manager: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    namespace: String,
    api: String,
}

const RESULTS: [&str; 16] = [
    "success",
    "Timeout",
    "ConnectFailed",
    "DnsFailed",
    "HttpStatus",
    "AddressRefused",
    "SchemeRefused",
    "RedirectRefused",
    "ResponseTooLarge",
    "TlsFailed",
    "BodyFailed",
    "InvalidDiscoveryDocument",
    "NoJwksUrl",
    "InvalidJwks",
    "NoUsableKeys",
    "Other",
];

/// A registry like a busy operator's: `key_managers` KeyManagers with every fetch result,
/// `apis` APIs with two gauges each, and a histogram per controller.
fn tikv_registry(key_managers: usize, apis: usize) -> prometheus::Registry {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
    let registry = prometheus::Registry::new();
    let fetches = IntCounterVec::new(
        Opts::new("jwks_fetches_total", "fetches").namespace("outband_operator"),
        &["key_manager", "result"],
    )
    .unwrap();
    let bytes = IntGaugeVec::new(
        Opts::new("config_compressed_bytes", "bytes").namespace("outband_operator"),
        &["namespace", "api"],
    )
    .unwrap();
    let subscriptions = IntGaugeVec::new(
        Opts::new("config_subscriptions", "subscriptions").namespace("outband_operator"),
        &["namespace", "api"],
    )
    .unwrap();
    let durations = HistogramVec::new(
        HistogramOpts::new("reconcile_duration_seconds", "durations")
            .namespace("outband_operator")
            .buckets(BUCKETS.to_vec()),
        &["controller"],
    )
    .unwrap();
    for collector in [
        Box::new(fetches.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(bytes.clone()),
        Box::new(subscriptions.clone()),
        Box::new(durations.clone()),
    ] {
        registry.register(collector).unwrap();
    }
    for km in 0..key_managers {
        for result in RESULTS {
            fetches
                .with_label_values(&[&format!("km-{km}"), result])
                .inc_by(7);
        }
    }
    for api in 0..apis {
        bytes
            .with_label_values(&["shop", &format!("api-{api}")])
            .set(1234);
        subscriptions
            .with_label_values(&["shop", &format!("api-{api}")])
            .set(17);
    }
    for controller in ["keymanager", "oauthappbinding", "config"] {
        durations.with_label_values(&[controller]).observe(0.02);
    }
    registry
}

fn client_registry(key_managers: usize, apis: usize) -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::with_prefix("outband_operator");
    let fetches = Family::<FetchLabels, Counter>::default();
    let bytes = Family::<ApiLabels, Gauge>::default();
    let subscriptions = Family::<ApiLabels, Gauge>::default();
    let durations = Family::<ErrorLabels, Histogram>::new_with_constructor(|| {
        Histogram::new(BUCKETS.iter().copied())
    });
    registry.register("jwks_fetches", "fetches", fetches.clone());
    registry.register("config_compressed_bytes", "bytes", bytes.clone());
    registry.register(
        "config_subscriptions",
        "subscriptions",
        subscriptions.clone(),
    );
    registry.register("reconcile_duration_seconds", "durations", durations.clone());
    for km in 0..key_managers {
        for result in RESULTS {
            fetches
                .get_or_create(&FetchLabels {
                    key_manager: format!("km-{km}"),
                    result,
                })
                .inc_by(7);
        }
    }
    for api in 0..apis {
        let labels = ApiLabels {
            namespace: "shop".into(),
            api: format!("api-{api}"),
        };
        bytes.get_or_create(&labels).set(1234);
        subscriptions.get_or_create(&labels).set(17);
    }
    for controller in ["keymanager", "oauthappbinding", "config"] {
        durations
            .get_or_create(&ErrorLabels {
                controller,
                reason: "",
            })
            .observe(0.02);
    }
    registry
}

/// Runs `observe` `iters` times split over `threads` threads; returns the wall time.
fn contended(threads: usize, iters: u64, observe: Arc<dyn Fn(f64) + Send + Sync>) -> Duration {
    let per_thread = iters / threads as u64;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let observe = observe.clone();
            scope.spawn(move || {
                for i in 0..per_thread {
                    observe(black_box((i % 100) as f64 * 0.001 + t as f64 * 0.0001));
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter_with_label_lookup");
    let tikv = prometheus::IntCounterVec::new(
        prometheus::Opts::new("reconcile_errors_total", "errors"),
        &["controller", "reason"],
    )
    .unwrap();
    group.bench_function("prometheus", |b| {
        b.iter(|| {
            tikv.with_label_values(&[black_box("keymanager"), black_box("Conflict")])
                .inc()
        })
    });
    let client = Family::<ErrorLabels, Counter>::default();
    group.bench_function("prometheus-client", |b| {
        b.iter(|| {
            client
                .get_or_create(&ErrorLabels {
                    controller: black_box("keymanager"),
                    reason: black_box("Conflict"),
                })
                .inc();
        })
    });
    group.finish();

    let mut group = c.benchmark_group("resolved_counter_inc");
    let tikv_child = tikv.with_label_values(&["keymanager", "Conflict"]);
    group.bench_function("prometheus", |b| b.iter(|| tikv_child.inc()));
    let client_child = client
        .get_or_create(&ErrorLabels {
            controller: "keymanager",
            reason: "Conflict",
        })
        .clone();
    group.bench_function("prometheus-client", |b| b.iter(|| client_child.inc()));
    group.finish();

    let tikv_histogram = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("auth_seconds", "latency").buckets(BUCKETS.to_vec()),
    )
    .unwrap();
    let client_histogram = Histogram::new(BUCKETS.iter().copied());
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("histogram_observe_{threads}_threads"));
        let h = tikv_histogram.clone();
        let observe: Arc<dyn Fn(f64) + Send + Sync> = Arc::new(move |v| h.observe(v));
        group.bench_function("prometheus", |b| {
            b.iter_custom(|iters| contended(threads, iters, observe.clone()))
        });
        let h = client_histogram.clone();
        let observe: Arc<dyn Fn(f64) + Send + Sync> = Arc::new(move |v| h.observe(v));
        group.bench_function("prometheus-client", |b| {
            b.iter_custom(|iters| contended(threads, iters, observe.clone()))
        });
        group.finish();
    }

    let mut group = c.benchmark_group("render_100_key_managers_1000_apis");
    let registry = tikv_registry(100, 1000);
    group.bench_function("prometheus", |b| {
        b.iter(|| {
            let mut buffer = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut buffer,
            )
            .unwrap();
            buffer.len()
        })
    });
    let registry = client_registry(100, 1000);
    group.bench_function("prometheus-client", |b| {
        b.iter(|| {
            let mut buffer = String::new();
            prometheus_client::encoding::text::encode(&mut buffer, &registry).unwrap();
            buffer.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
