//! The `rkstack` command line. Only argument handling, output and exit codes
//! live here; everything else is in the library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rkstack::config::{self, ConfigError};
use rkstack::plan;

/// Exit status: the request failed.
const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or an invalid stack file.
const EXIT_INVALID: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "rkstack",
    version,
    about = "Declarative container stacks for appliances: one binary, one TOML file"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Which running stack to talk to (default: the only one running).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
    /// The control socket of the supervisor to talk to.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Where running stacks keep their sockets and state.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/run/rkstack"
    )]
    state_dir: PathBuf,
    /// Where images, volumes and logs are kept.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/rkstack"
    )]
    data_dir: PathBuf,
    /// error, warn, info, debug or trace.
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate a stack file; print every problem as FILE:LINE:COL: message.
    Check {
        /// The stack file.
        file: PathBuf,
        /// Print the effective configuration (defaults applied) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `up` or a reload would create, recreate, update, stop and keep, and why.
    Plan {
        /// The stack file.
        file: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (
        &cli.global.stack,
        &cli.global.socket,
        &cli.global.state_dir,
        &cli.global.data_dir,
        &cli.global.log_level,
    );
    match run(cli) {
        Ok(code) => code,
        // `rkstack ... | head` closing the pipe early is not a failure worth a message.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rkstack: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { file, json } => {
            let stack = match load(&file) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &stack)?;
                writeln!(out)?;
            } else {
                writeln!(out, "ok: {}", stack.summary())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { file, json } => {
            let stack = match load(&file) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let desired = plan::DesiredState::from_stack(stack);
            // Until a supervisor runs, the stack is planned against nothing.
            let observed = plan::ObservedState::default();
            let p = plan::reconcile(&desired, &observed);
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &p)?;
                writeln!(out)?;
            } else {
                write!(out, "{p}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a stack file, printing every problem on stderr on failure.
fn load(file: &std::path::Path) -> Result<config::Stack, ExitCode> {
    config::load(file).map_err(|e| {
        match &e {
            ConfigError::Invalid { diagnostics } => {
                for d in diagnostics {
                    eprintln!("{d}");
                }
                let n = diagnostics.len();
                eprintln!(
                    "{}: {n} problem{} found",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
            other => eprintln!("rkstack: {other}"),
        }
        ExitCode::from(EXIT_INVALID)
    })
}
