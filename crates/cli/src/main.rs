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
    Usage(Box<cmd::usage::Args>),
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
    /// Run a simulated fleet forward in time on a scenario (traces or a generator), Cumulo's
    /// policy beside FIFO first-fit and commitment-blind cheapest-first
    Simulate(cmd::simulate::Args),
    /// Run the control plane on embedded defaults (SQLite in ./.cumulo, the local driver, the
    /// simulated demo fleet and portfolio), print its URL and admin token and save them for later
    /// commands
    Up(cmd::server::UpArgs),
    /// Run the control plane server: store, reconcile loop and REST API
    Server(cmd::server::ServerArgs),
    /// Submit job files to the server
    Submit(cmd::jobs::SubmitArgs),
    /// List jobs (filter by state and tenant)
    Jobs(cmd::jobs::JobsArgs),
    /// One job with its attempts, placement, pending reason and events
    Job(cmd::jobs::JobArgs),
    /// Cancel a job
    Cancel(cmd::jobs::JobArgs),
    /// Print a job's log; -f follows it until the attempt ends
    Logs(cmd::jobs::LogsArgs),
    /// Clusters of the server's fleet with capacity and use
    Clusters(cmd::fleet::ListArgs),
    /// Nodes of the server's fleet with capacity and use
    Nodes(cmd::fleet::NodesArgs),
    /// The server's contracts: committed, consumed, on or behind schedule, projected shortfall
    Contracts(cmd::fleet::ListArgs),
    /// API tokens (create)
    Token(cmd::fleet::TokenArgs),
    /// Tenants (list, create): who jobs and tokens belong to
    Tenant(cmd::fleet::TenantArgs),
    /// Check job files and print each normalised job, or every problem (exit 1 if any is invalid)
    Validate(cmd::validate::Args),
}

impl Command {
    /// Whether this subcommand serves the network. Those keep Rust's ignored SIGPIPE: a client
    /// that resets its connection mid-request must cost one request (EPIPE), never the process.
    fn serves(&self) -> bool {
        matches!(self, Command::Up(_) | Command::Server(_))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !cli.command.serves() {
        // Printing subcommands die quietly on a closed pipe (`cumulo jobs -o json | head`), as Unix
        // tools do, instead of panicking in println!.
        // SAFETY: called in main before any thread exists (no subcommand has started yet).
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result: anyhow::Result<std::process::ExitCode> = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cumulo", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Usage(args) => cmd::usage::run(*args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Invoice(args) => cmd::invoice::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Catalog(args) => cmd::catalog::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Offers(args) => cmd::offers::run(args),
        Command::Portfolio(args) => cmd::portfolio::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Up(args) => cmd::server::run_up(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Server(args) => cmd::server::run_server(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Submit(args) => cmd::jobs::submit(args),
        Command::Jobs(args) => cmd::jobs::jobs(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Job(args) => cmd::jobs::job(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Cancel(args) => cmd::jobs::cancel(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Logs(args) => cmd::jobs::logs(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Clusters(args) => cmd::fleet::clusters(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Nodes(args) => cmd::fleet::nodes(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Contracts(args) => cmd::fleet::contracts(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Token(args) => cmd::fleet::token(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Tenant(args) => cmd::fleet::tenant(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Simulate(args) => cmd::simulate::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Bench(args) => cmd::bench::run(args).map(|()| std::process::ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out a cause whose text the
/// line already ends with (an error that prints its source in its own message).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn a_cause_already_in_its_error_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::new(cumulo_portfolio::Error::Io { path: "p.yaml".into(), source: io });
        assert_eq!(
            super::error_text(&err),
            "cannot read `p.yaml`: No such file or directory",
            "the I/O error is part of the portfolio error's message and must not repeat"
        );
    }

    #[test]
    fn context_and_causes_are_joined_outer_first() {
        let err = anyhow::anyhow!("the root").context("the middle").context("the top");
        assert_eq!(super::error_text(&err), "the top: the middle: the root", "each level once, outermost first");
    }
}
