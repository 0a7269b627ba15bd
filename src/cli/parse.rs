//! The command line, parsed.

use clap::{Args, FromArgMatches, Parser};

use super::{Cli, Global, RunArgs};

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
