//! The `outband-sidecar` binary: parses the command line, sets up logging, and runs the proxy
//! or a tool. Everything else is in the library.

use clap::Parser;
use outband_crds::command_line::LogFilter;
use outband_sidecar::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Explain(args)) => {
            let mut stdout = std::io::stdout().lock();
            match outband_sidecar::explain::explain(&args, &mut stdout) {
                Ok(true) => std::process::ExitCode::SUCCESS,
                Ok(false) => std::process::ExitCode::from(2),
                Err(err) => {
                    eprintln!("outband-sidecar explain: {err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        None => {
            init_logging(cli.run.log.log_format, &cli.run.log.log_level);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("outband-sidecar: cannot start the runtime: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(outband_sidecar::run::run(cli.run)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat, filter: &LogFilter) {
    // `--log-level` (or `OUTBAND_LOG`) was checked when the command line was parsed.
    let filter = EnvFilter::try_new(filter.as_str()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: never in `kubectl logs` or a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
