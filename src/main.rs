//! The `prism` binary: parses arguments, runs the command, maps errors to exit codes
//! (0 success, 1 spec or source error, 2 usage error, 3 `prism diff` found differences).

use clap::Parser;
use prism::cli::{run, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The controller logs what it does (info) with timestamps; the CLI only warnings.
    let controller = match &cli.command {
        Command::Controller(args) => Some(args.log_json),
        _ => None,
    };
    let level = match (cli.verbose, controller.is_some()) {
        (0, false) => tracing::Level::WARN,
        (0, true) => tracing::Level::INFO,
        (1, _) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    match controller {
        Some(true) => logs.json().with_current_span(true).init(),
        Some(false) => logs.init(),
        None => logs.without_time().init(),
    }
    match run(cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(prism::CliError::Differs) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
