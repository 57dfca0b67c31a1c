//! `cumulo`: the command-line front of Cumulo. Each subcommand lives in `cmd/`; output goes
//! through `output` so that every command prints a table by default and JSON with `-o json`.

mod cmd;
mod output;

use clap::{CommandFactory, Parser, Subcommand};

pub use output::{Format, print_json};

#[derive(Parser)]
#[command(name = "cumulo", version, about = "Multi-cloud compute control plane for AI", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Metered usage: totals, chargeback, burn-down or FOCUS CSV
    Usage(cmd::usage::Args),
    /// A provider's invoice for a month, from metered usage
    Invoice(cmd::invoice::Args),
    /// Cloud offers: import SkyPilot catalog CSVs, list offers
    Catalog(cmd::catalog::Args),
    /// Rank a job's feasible placements by effective cost (contract-aware)
    Offers(cmd::offers::Args),
    /// Contracts: burn-down against schedule, delivered capacity
    Portfolio(cmd::portfolio::Args),
    /// Benchmarks that print one JSON object (bench sched: the scheduler on a simulated fleet)
    Bench(cmd::bench::Args),
    /// Check job files and print each normalised job, or every problem (exit 1 if any is invalid)
    Validate(cmd::validate::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<std::process::ExitCode> = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cumulo", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Usage(args) => cmd::usage::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Invoice(args) => cmd::invoice::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Catalog(args) => cmd::catalog::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Offers(args) => cmd::offers::run(args),
        Command::Portfolio(args) => cmd::portfolio::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Bench(args) => cmd::bench::run(args).map(|()| std::process::ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
