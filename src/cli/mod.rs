//! The `rkstack` command line: dispatch, logging and exit codes; the
//! clap tree is in `commands`, its parsing in `parse`. Each command's work
//! is in its own file (`up`, `check` + `plan`, `run`, `ctl` for what asks
//! a running supervisor, `exec`, `images`), printing in `output`;
//! everything else is in the library.

use std::process::ExitCode;

use rkstack::config::{self, ConfigError};

mod build;
mod bundle;
mod check;
mod commands;
mod ctl;
mod detach;
mod exec;
mod images;
mod logs;
mod mender;
mod output;
mod parse;
mod run;
mod up;
mod update;

use commands::{Command, RunArgs, UpArgs};
use parse::{Cli, Global};

/// Exit status: the request failed.
const EXIT_FAILED: u8 = 1;

/// Exit status: bad usage or an invalid stack file.
const EXIT_INVALID: u8 = 2;

/// Parses the command line, runs the command, and says how it went.
pub fn main() -> ExitCode {
    let cli = parse::parse(std::env::args_os().collect());
    // `up -d` writes its log to a file: each line says when.
    let timestamps = matches!(cli.command, Command::Up(UpArgs { detach: true, .. }));
    init_logging(&cli.global.log_level, timestamps);
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
    let Cli { global, command } = cli;
    let g = &global;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0
        && matches!(
            command,
            Command::Up(_) | Command::Run(_) | Command::Build(_)
        )
    {
        let what = match command {
            Command::Up(_) => "up",
            Command::Build(_) => "build",
            _ => "run",
        };
        eprintln!(
            "rkstack: {what} needs root: it makes namespaces, cgroups, mounts and networks (run it as root, or as the systemd unit in contrib/systemd)"
        );
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    // The commands that write under the data and state trees make them
    // (or close them again) for root alone; see supervisor::private.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0
        && matches!(
            command,
            Command::Up(_)
                | Command::Run(_)
                | Command::Pull { .. }
                | Command::Build(_)
                | Command::Rmi { .. }
                | Command::Prune { .. }
                | Command::Apply { .. }
                | Command::MenderModule { .. }
        )
    {
        anyhow::Context::with_context(
            rkstack::supervisor::private::secure_roots(&g.data_dir, &g.state_dir),
            || {
                format!(
                    "make {} and {} private",
                    g.data_dir.display(),
                    g.state_dir.display()
                )
            },
        )?;
    }
    match command {
        Command::Ps { json, quiet } => Ok(with_client(g, None, |c| ctl::ps(c, json, quiet))),
        Command::Logs {
            follow,
            tail,
            timestamps,
            since,
            names,
        } => {
            // A stack that does not run (after `down`): its files as they are.
            if g.host.is_none()
                && g.socket.is_none()
                && matches!(
                    rkstack::api::client::resolve(&g.state_dir, g.stack.as_deref(), None),
                    Err(rkstack::api::client::ClientError::NotRunning { .. }
                        | rkstack::api::client::ClientError::NoneRunning(_))
                )
            {
                return logs::from_disk(
                    &g.data_dir,
                    g.stack.as_deref(),
                    &names,
                    tail,
                    since.as_deref(),
                    timestamps,
                );
            }
            Ok(with_client(g, None, |c| {
                ctl::logs(c, &names, follow, tail, since.as_deref(), timestamps)
            }))
        }
        Command::Exec { name, command } => {
            Ok(with_client(g, None, |c| exec::exec(c, &name, &command)))
        }
        Command::Stop { name } => Ok(with_client(g, None, |c| ctl::action(c, &name, "stop"))),
        Command::Start { name } => Ok(with_client(g, None, |c| ctl::action(c, &name, "start"))),
        Command::Restart { name } => Ok(with_client(g, None, |c| ctl::action(c, &name, "restart"))),
        Command::Reload => Ok(with_client(g, None, ctl::reload)),
        Command::Apply {
            timeout,
            stable,
            no_rollback,
            trusted_keys,
            file,
        } => {
            let a = update::ApplyArgs {
                timeout: timeout.as_deref(),
                stable: stable.as_deref(),
                no_rollback,
            };
            update::apply_file(g, &file, &trusted_keys, &a)
        }
        Command::Bundle {
            output,
            sign,
            since,
            file,
        } => bundle::bundle(
            &g.data_dir,
            &file,
            &output,
            sign.as_deref(),
            since.as_deref(),
        ),
        Command::Keygen { output } => bundle::keygen(&output),
        Command::ReceiveBundle {
            trusted_keys,
            bundle,
            out,
        } => {
            let (_, text) = bundle::receive(&g.data_dir, &trusted_keys, &bundle)?;
            rkstack::host::state_file::write_atomic(&out, text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::MenderModule { state, files_dir } => mender::module(g, &state, &files_dir),
        Command::History { json } => Ok(with_client(g, None, |c| update::history(c, json))),
        Command::Rollback { generation } => {
            Ok(with_client(g, None, |c| update::rollback(c, generation)))
        }
        #[cfg(feature = "docs")]
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Into a buffer first: the generator panics on a write error
            // (a closed pipe), the buffer cannot fail.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rkstack", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        #[cfg(feature = "docs")]
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)?;
            let n = std::fs::read_dir(&dir)?.count();
            println!("{n} manual pages in {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { json } => ctl::ls(g, json),
        Command::Down => ctl::down_stack(g),
        Command::Events { json } => Ok(with_client(g, None, |c| ctl::events(c, json))),
        Command::Inspect { name } => Ok(with_client(g, None, |c| ctl::inspect(c, &name))),
        Command::Diff { name } => Ok(with_client(g, None, |c| ctl::diff(c, &name))),
        Command::Images { json } => images::images(&g.data_dir, json),
        Command::Rmi { references } => images::rmi(&g.state_dir, &g.data_dir, &references),
        Command::Prune { generations } => images::prune(&g.state_dir, &g.data_dir, generations),
        Command::UnitStopped => up::unit_stopped(g),
        Command::Build(args) => build::build(g, args),
        Command::Push {
            creds,
            reference,
            destination,
        } => images::push(
            &g.data_dir,
            &reference,
            &destination,
            &g.insecure_registries,
            creds.as_deref(),
        ),
        Command::Pull { creds, reference } => images::pull(
            &g.data_dir,
            &reference,
            &g.insecure_registries,
            creds.as_deref(),
        ),

        Command::Check {
            file,
            json,
            effective,
            strict,
        } => check::check(&file, json, effective, strict),
        Command::Up(args) => up::up(g, args),
        Command::Run(args) => run::run(g, &args),
        Command::Plan { file, json } => check::plan(g, file, json),
    }
}

/// Runs a command against the supervisor that the global options pick
/// (`stack` overrides `--stack` when given).
fn with_client(
    g: &Global,
    stack: Option<&str>,
    f: impl FnOnce(&rkstack::api::client::Client) -> Result<ExitCode, rkstack::api::client::ClientError>,
) -> ExitCode {
    let stack = stack.or(g.stack.as_deref());
    let client = match &g.host {
        #[cfg(feature = "remote")]
        Some(host) => rkstack::api::remote::client(&rkstack::api::remote::RemoteOptions {
            host: host.clone(),
            ca: g.ca.clone(),
            cert: g.cert.clone(),
            key: g.key.clone(),
            token_file: g.token_file.clone(),
        })
        .map_err(|e| {
            rkstack::api::client::ClientError::Api(rkstack::api::ControlError::bad_request(e))
        })
        .and_then(rkstack::api::client::Client::remote),
        #[cfg(not(feature = "remote"))]
        Some(_) => Err(rkstack::api::client::ClientError::Api(
            rkstack::api::ControlError::bad_request("--host: this build has no remote access"),
        )),
        None => ctl::connect(&g.state_dir, stack, g.socket.as_deref()),
    };
    match client.and_then(|c| f(&c)) {
        Ok(code) => code,
        Err(e) => ctl::fail(&e),
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

/// Events and logs go to stderr: `LEVEL stack=NAME container=NAME: message`,
/// without a timestamp (journald and the console add theirs), or with one
/// (`timestamps`: `rkstack up -d`, whose stderr is a file).
fn init_logging(level: &str, timestamps: bool) {
    let level = match level.to_ascii_lowercase().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    // A service whose stderr is the journal: entries of their own, with
    // priorities and fields (see rkstack::host::journal).
    if rkstack::host::journal::stderr_is_journal()
        && let Ok(journal) = rkstack::host::journal::JournalLayer::to(std::path::Path::new(
            rkstack::host::journal::SOCKET,
        ))
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::Layer::with_filter(
                journal,
                tracing_subscriber::filter::LevelFilter::from_level(level),
            ))
            .try_init();
        return;
    }
    let fmt = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        // A reader of our stderr that goes away (a closed pipe, journald
        // restarting) must never take the supervisor down: tracing would
        // otherwise report the failed write with eprintln!, which panics.
        .log_internal_errors(false);
    let _ = if timestamps {
        fmt.try_init()
    } else {
        fmt.without_time().try_init()
    };
}
