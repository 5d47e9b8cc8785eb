//! The operator's webhook flags, flattened into its command line ([`server::run`](super::server::run)
//! runs the webhook from them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ArgAction;

use super::settings::{self, InjectorSettings};

/// Flags of the sidecar injector.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Sidecar injection webhook")]
pub struct WebhookArgs {
    /// Serve the injection webhook (HTTPS) on this address; no webhook when absent.
    #[arg(long, env = "OUTBAND_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// Namespace of the operator (holds the webhook's TLS Secret).
    #[arg(long, env = "POD_NAMESPACE", default_value = "outband")]
    pub webhook_namespace: String,
    /// MutatingWebhookConfiguration whose caBundle the operator keeps current.
    #[arg(
        long,
        env = "OUTBAND_WEBHOOK_CONFIGURATION",
        default_value = "outband-sidecar-injector"
    )]
    pub webhook_configuration: String,
    /// Secret holding the operator's own webhook CA and serving certificate.
    #[arg(
        long,
        env = "OUTBAND_WEBHOOK_TLS_SECRET",
        default_value = "outband-webhook-tls"
    )]
    pub webhook_tls_secret: String,
    /// Service in front of the webhook; its DNS names go into the serving certificate.
    #[arg(
        long,
        env = "OUTBAND_WEBHOOK_SERVICE",
        default_value = "outband-webhook"
    )]
    pub webhook_service: String,
    /// More names (DNS or IP) for the serving certificate, comma-separated.
    #[arg(long, env = "OUTBAND_WEBHOOK_EXTRA_SANS", value_delimiter = ',')]
    pub webhook_extra_sans: Vec<String>,
    /// cert-manager mode: read tls.crt/tls.key from this directory and leave the Secret and
    /// the caBundle to cert-manager.
    #[arg(long, env = "OUTBAND_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Image of the injected sidecar.
    #[arg(long, env = "OUTBAND_SIDECAR_IMAGE", default_value_t = InjectorSettings::default().image)]
    pub sidecar_image: String,
    /// Pull policy of the injected sidecar.
    #[arg(
        long,
        env = "OUTBAND_SIDECAR_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub sidecar_image_pull_policy: String,
    /// Port of the sidecar's proxy.
    #[arg(long, env = "OUTBAND_SIDECAR_PROXY_PORT", default_value_t = 15080)]
    pub sidecar_proxy_port: u16,
    /// Port of the sidecar's admin server (probes, metrics).
    #[arg(long, env = "OUTBAND_SIDECAR_ADMIN_PORT", default_value_t = 15090)]
    pub sidecar_admin_port: u16,
    /// CPU request of the sidecar (empty: none).
    #[arg(long, env = "OUTBAND_SIDECAR_CPU_REQUEST", default_value = "50m")]
    pub sidecar_cpu_request: String,
    /// Memory request of the sidecar (empty: none).
    #[arg(long, env = "OUTBAND_SIDECAR_MEMORY_REQUEST", default_value = "64Mi")]
    pub sidecar_memory_request: String,
    /// CPU limit of the sidecar (empty: none).
    #[arg(long, env = "OUTBAND_SIDECAR_CPU_LIMIT", default_value = "")]
    pub sidecar_cpu_limit: String,
    /// Memory limit of the sidecar (empty: none).
    #[arg(long, env = "OUTBAND_SIDECAR_MEMORY_LIMIT", default_value = "128Mi")]
    pub sidecar_memory_limit: String,
    /// Inject a native sidecar (init container with restartPolicy Always; Kubernetes 1.29+).
    #[arg(long, env = "OUTBAND_SIDECAR_NATIVE", default_value_t = true, action = ArgAction::Set)]
    pub sidecar_native: bool,
    /// Log filter of every sidecar (its `--log-level`; tracing `EnvFilter` syntax, e.g. `info`
    /// or `info,outband_sidecar=debug`, which logs each refusal).
    #[arg(long, env = "OUTBAND_SIDECAR_LOG_LEVEL", default_value = "info")]
    pub sidecar_log_level: outband_crds::command_line::LogFilter,
    /// An extra argument for every sidecar (repeatable), e.g. `--sidecar-extra-arg=--log-format=json`.
    #[arg(long = "sidecar-extra-arg", allow_hyphen_values = true)]
    pub sidecar_extra_args: Vec<String>,
}

impl WebhookArgs {
    /// The injector settings these flags describe.
    pub fn settings(&self) -> InjectorSettings {
        InjectorSettings {
            image: self.sidecar_image.clone(),
            image_pull_policy: self.sidecar_image_pull_policy.clone(),
            proxy_port: self.sidecar_proxy_port,
            admin_port: self.sidecar_admin_port,
            resources: settings::resources(
                &self.sidecar_cpu_request,
                &self.sidecar_memory_request,
                Some(&self.sidecar_cpu_limit),
                Some(&self.sidecar_memory_limit),
            ),
            native_sidecar: self.sidecar_native,
            log_level: self.sidecar_log_level.clone(),
            extra_args: self.sidecar_extra_args.clone(),
            ..InjectorSettings::default()
        }
    }

    /// Names in the serving certificate: the Service's DNS names, then the extra ones.
    pub fn sans(&self) -> Vec<String> {
        let (service, namespace) = (&self.webhook_service, &self.webhook_namespace);
        let mut sans = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            format!("{service}.{namespace}"),
            service.clone(),
        ];
        sans.extend(
            self.webhook_extra_sans
                .iter()
                .filter(|s| !s.is_empty())
                .cloned(),
        );
        sans
    }
}
