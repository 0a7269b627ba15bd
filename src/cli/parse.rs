//! The command line: its top level (the global options) and how a line
//! is parsed.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser};

use super::{Command, RunArgs};

#[derive(Parser, Debug)]
#[command(
    name = "rkstack",
    version,
    about = "Declarative container stacks for appliances: one binary, one TOML file"
)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) global: Global,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Args, Debug)]
pub(super) struct Global {
    /// Which running stack to talk to (default: the only one running).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub(super) stack: Option<String>,
    /// The control socket of the supervisor to talk to.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(super) socket: Option<PathBuf>,
    /// Where running stacks keep their sockets and state.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/run/rkstack",
        help_heading = "Global options"
    )]
    pub(super) state_dir: PathBuf,
    /// Where images, volumes and logs are kept.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/rkstack",
        help_heading = "Global options"
    )]
    pub(super) data_dir: PathBuf,
    /// A remote supervisor: https://ADDR:PORT (its `up --listen`).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Remote access (--host)"
    )]
    pub(super) host: Option<String>,
    /// With --host: the CA that signed the supervisor's certificate (PEM).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Remote access (--host)"
    )]
    pub(super) ca: Option<PathBuf>,
    /// With --host: this client's certificate (PEM), for a supervisor that asks for one.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Remote access (--host)"
    )]
    pub(super) cert: Option<PathBuf>,
    /// With --host: the key of --cert (PEM).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Remote access (--host)"
    )]
    pub(super) key: Option<PathBuf>,
    /// The bearer token (a file holding it): the one a client sends with
    /// --host, or the one `up --listen` requires.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Remote access (--host)"
    )]
    pub(super) token_file: Option<PathBuf>,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP (repeatable).
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        help_heading = "Registries"
    )]
    pub(super) insecure_registries: Vec<String>,
    /// error, warn, info, debug or trace.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "info",
        value_parser = ["error", "warn", "info", "debug", "trace"],
        ignore_case = true,
        help_heading = "Global options"
    )]
    pub(super) log_level: String,
}

/// The command line, parsed. `rkstack run` is a start path, and clap's
/// tree of every command (33, each with the 11 global options) takes
/// ≈ 0.6 ms to build and walk where the tree of `run` alone takes 0.04 ms.
/// A line that small tree parses means the same in the whole one (the
/// same global options, the same `RunArgs`); anything else (another
/// command, help, a mistake) goes to the whole tree, which answers it.
pub(super) fn parse(args: Vec<std::ffi::OsString>) -> Cli {
    if let Ok(m) = run_only().try_get_matches_from(&args)
        && let Ok(cli) = Cli::from_arg_matches(&m)
    {
        return cli;
    }
    Cli::parse_from(args)
}

/// The global options and `run`.
fn run_only() -> clap::Command {
    Global::augment_args(clap::Command::new("rkstack"))
        .subcommand(RunArgs::augment_args(clap::Command::new("run")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Vec<std::ffi::OsString> {
        std::iter::once("rkstack")
            .chain(s.split_whitespace())
            .map(Into::into)
            .collect()
    }

    #[test]
    fn run_lines_mean_what_they_mean_in_the_whole_tree() {
        for s in [
            "run /srv/rootfs -- /bin/true",
            "run --name a --memory 64M --read-only docker://busybox -- sh -c x",
            "--state-dir /tmp/s run --data-dir /tmp/d -e A=1 -e B=2 /r -- true",
            "--log-level=DEBUG run --insecure-registry r:5000 /r",
            "run -v /a:/b --network none --ulimit nofile=5 /r -- /bin/sh -c a",
        ] {
            let whole = Cli::try_parse_from(line(s)).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(format!("{:?}", parse(line(s))), format!("{whole:?}"), "{s}");
        }
    }

    #[test]
    fn the_small_tree_takes_nothing_but_run() {
        for s in [
            "ps",
            "--help",
            "run --help",
            "run",
            "--version",
            "exec a -- true",
            "rn /r",
        ] {
            assert!(run_only().try_get_matches_from(line(s)).is_err(), "{s}");
        }
    }
}
