//! `outband-operator`: parses the flags, sets up logging, and runs one task per server
//! until SIGTERM. Each server is one `tasks.spawn(..)` line below.

use clap::Parser;
use outband_operator::Operator;
use outband_operator::args::Args;
use outband_operator::webhook;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    outband_operator::telemetry::init(&args.log).map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let grace = args.shutdown_timeout;
    let operator = Operator::connect(args.clone()).await?;
    let mut tasks = operator.tasks();
    tasks.spawn("admin", operator.admin_server().await?);
    tasks.spawn("controllers", operator.controllers().await?);
    tasks.spawn(
        "webhook",
        webhook::server::run(
            args.webhook,
            operator.client(),
            operator.metrics().registry().clone(),
            operator.readiness(),
            operator.cancellation(),
        ),
    );
    tasks.run(grace).await?;
    tracing::info!("stopped");
    Ok(())
}
