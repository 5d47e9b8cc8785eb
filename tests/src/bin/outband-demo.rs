//! `make demo`: the whole Outband story on this machine, narrated. Everything it starts
//! runs on loopback and is stopped when it ends (or on Ctrl-C with `--keep`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let keep = std::env::args().any(|a| a == "--keep");
    outband_tests::control_plane::install_crypto_provider();
    let (report, stack) = match outband_tests::demo::run(true).await {
        Ok(done) => done,
        Err(error) => {
            eprintln!("\ndemo failed: {error:#}");
            return ExitCode::FAILURE;
        }
    };

    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| !o.as_expected())
        .collect();
    println!("\n\x1b[1m==> Summary\x1b[0m");
    for outcome in &report.outcomes {
        println!(
            "    {:<48} expected {} got {}",
            outcome.scenario, outcome.expected_status, outcome.status
        );
    }
    println!(
        "    {} passed, {} failed",
        report.outcomes.len() - failed.len(),
        failed.len()
    );
    if keep {
        println!("\nEverything is still running:");
        println!("    API through the sidecar  {}", stack.sidecar_url);
        println!(
            "    sidecar metrics          {}/metrics",
            stack.sidecar_admin_url
        );
        println!(
            "    operator metrics         {}/metrics",
            stack.operator.admin_url()
        );
        println!("    OpenID provider          {}", stack.provider.issuer());
        println!(
            "    kubectl                  KUBECONFIG={} {}",
            stack.plane.kubeconfig_path().display(),
            outband_tests::paths::kube_binary("kubectl")
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        println!("Press Ctrl-C to stop and clean up.");
        let _ = tokio::signal::ctrl_c().await;
    } else {
        println!("\nTo explore it yourself, run `make demo KEEP=1`: it stays up, prints the");
        println!("addresses (API, /metrics, kubectl), and stops with Ctrl-C.");
    }
    drop(stack);
    println!("Stopped and cleaned up: every process and temporary directory is gone.");
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
