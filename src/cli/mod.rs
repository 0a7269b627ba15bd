//! The `rkstack` command line: the clap tree, dispatch, logging and exit
//! codes. Each command's work is in its own file (`up`, `check` + `plan`,
//! `run`, `ctl` for what asks a running supervisor, `exec`, `images`),
//! printing in `output`; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rkstack::config::{self, ConfigError};

mod build;
mod bundle;
mod check;
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

use parse::{Cli, Global};

/// Exit status: the request failed.
const EXIT_FAILED: u8 = 1;

/// Exit status: bad usage or an invalid stack file.
const EXIT_INVALID: u8 = 2;

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate a stack file; print every problem as FILE:LINE:COL: message.
    Check {
        /// The stack file.
        file: PathBuf,
        /// Print the effective configuration (every default applied,
        /// `[defaults]` merged in) as JSON, in the stack file's own keys.
        #[arg(long)]
        json: bool,
        /// Print the effective configuration as a stack file (TOML) that
        /// validates to the same stack.
        #[arg(long, conflicts_with = "json")]
        effective: bool,
        /// Make what this host lacks for the stack (a rootfs, an image file,
        /// a bind source, a seccomp profile, a user in a dir: rootfs) an
        /// error (exit 2) instead of a warning
        #[arg(long)]
        strict: bool,
    },
    /// Run a stack: bring it up, keep it at its desired state, reload when the file changes; SIGTERM stops it.
    Up(UpArgs),
    /// Run one container in the foreground, without a stack file.
    Run(Box<RunArgs>),
    /// Show what `up` or a reload would create, recreate, update, stop and keep, and why
    /// (against the running supervisor of that stack, or against nothing).
    Plan {
        /// The stack file.
        file: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the stack's containers: state, pid, restarts, health, uptime, address, memory, image, ports.
    Ps {
        /// JSON: one object per container (the fields of GET /v1/containers).
        #[arg(long)]
        json: bool,
        /// Only the containers' names, one a line.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
    },
    /// Show containers' output (stdout and stderr) from their log files: one, several, or all of them prefixed.
    Logs {
        /// Keep printing new lines as they come.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Print whole records: timestamp, stream, text.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Only records from then on: a duration back from now (10m, 90s,
        /// 2h) or a UTC time (2026-11-30T18:00:00Z).
        #[arg(long, value_name = "WHEN", value_parser = logs::since_arg)]
        since: Option<String>,
        /// The containers (default: all of the stack's, each line prefixed
        /// with its container's name, as compose does).
        names: Vec<String>,
    },
    /// Run a command inside a running container (its namespaces, cgroup, user, capabilities, seccomp).
    Exec {
        /// The container.
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop a container and hold it stopped until `start` or a reload that changes it.
    Stop {
        /// The container.
        name: String,
    },
    /// Start a stopped or failed container.
    Start {
        /// The container.
        name: String,
    },
    /// Stop a container, then start it.
    Restart {
        /// The container.
        name: String,
    },
    /// Re-read the stack file now (as saving it does); print the plan carried out.
    Reload,
    /// Stop the stack and its supervisor.
    Down,
    /// Follow lifecycle events (start, exit, restart, oom, health, reload).
    Events {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one container, as JSON: state, usage, effective configuration.
    Inspect {
        /// The container.
        name: String,
    },
    /// Paths a container added (A), changed (C) and deleted (D) in its writable layer.
    Diff {
        /// The container.
        name: String,
    },
    /// The images in the store: reference, digest, size, when imported.
    Images {
        /// One JSON object per image.
        #[arg(long)]
        json: bool,
    },
    /// Build an image from a Containerfile (Dockerfile) in rkstack's own
    /// sandbox, into the store; prints its digest.
    Build(build::BuildArgs),
    /// Fetch an image from a registry into the store: docker://[REGISTRY/]REPO[:TAG|@DIGEST].
    Pull {
        /// USER:PASSWORD for the registry (else ~/.docker/config.json's, if any).
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
        /// The image reference.
        reference: String,
    },
    /// Upload an image of the store to a registry: a built image
    /// (NAME[:TAG]), a reference as `rkstack images` lists it, or a digest.
    Push {
        /// USER:PASSWORD for the registry (else ~/.docker/config.json's, if any).
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
        /// The image to push.
        reference: String,
        /// Where: docker://REGISTRY/REPO[:TAG].
        destination: String,
    },
    /// For rkstack@.service's ExecStopPost: keeps what the stopped
    /// supervisor left for the next one to adopt, or ends it (see
    /// contrib/systemd). Reads systemd's $SERVICE_RESULT.
    #[command(hide = true, name = "unit-stopped")]
    UnitStopped,
    /// The stacks running on this machine: name, supervisor pid, socket.
    Ls {
        /// JSON: one object per stack.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    /// (`rkstack completions bash > /etc/bash_completion.d/rkstack`).
    #[cfg(feature = "docs")]
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (rkstack.1 and one per command) into DIR.
    #[cfg(feature = "docs")]
    Man { dir: PathBuf },
    /// Remove images from the store (not those a running stack declares),
    /// then everything no image uses any more.
    Rmi {
        /// Image references as `rkstack images` lists them (oci:DIR:TAG, tar:PATH).
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove every blob and unpacked layer of the store that no image, no
    /// running container and no kept generation uses (left by rewritten
    /// layouts and moved tags).
    Prune {
        /// First forget the generations (history) of stacks that are not
        /// running, and so the images only they kept.
        #[arg(long)]
        generations: bool,
    },
    /// Apply a new version of a running stack's file behind a health gate:
    /// exit 0 once committed, 1 when rolled back (the reason printed), 2
    /// when the file is invalid.
    Apply {
        /// How long created and recreated containers have to become
        /// running (and healthy, where they have a check): 90s, 5m
        /// (default: the file's [update] timeout, 120s).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// How long they must then stay so before the generation is
        /// committed (default: the file's [update] stable, 30s).
        #[arg(long, value_name = "DURATION")]
        stable: Option<String>,
        /// On failure keep the new generation (recorded as failed) instead
        /// of going back to the last committed one.
        #[arg(long)]
        no_rollback: bool,
        /// Where the public keys of trusted bundle signers are (minisign
        /// .pub files); when there is any, a bundle must be signed by one.
        #[arg(long, value_name = "DIR", default_value = "/etc/rkstack/trusted.d")]
        trusted_keys: PathBuf,
        /// The new stack file (it replaces the running stack's file), or a
        /// bundle (rkstack bundle) whose images are taken into the store
        /// first.
        file: PathBuf,
    },
    /// Write one file with a stack file and every docker:// image it names
    /// (from the store), for devices offline or on slow links.
    Bundle {
        /// The bundle to write.
        #[arg(short = 'o', long, value_name = "FILE.rkb")]
        output: PathBuf,
        /// Sign it with this minisign secret key (rkstack keygen; an
        /// encrypted key's password from $RKSTACK_SIGN_PASSWORD).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// A delta: leave out the blobs this older bundle carried (the
        /// devices that applied it have them).
        #[arg(long, value_name = "OLD.rkb")]
        since: Option<PathBuf>,
        /// The stack file.
        file: PathBuf,
    },
    /// Mender's update module protocol (v3) for artifacts of type
    /// rkstack-stack (contrib/mender/rkstack-stack runs it): STATE as Mender
    /// names it, FILES_DIR the module's working folder.
    MenderModule {
        /// The state: ArtifactInstall, ArtifactCommit, ArtifactRollback,
        /// NeedsArtifactReboot, SupportsRollback, ...
        state: String,
        /// The folder Mender gives the module (header/, files/, tmp/).
        files_dir: PathBuf,
    },
    /// For the supervisor: takes BUNDLE into the store (checked against
    /// the trusted keys) and writes its stack file to OUT.
    #[command(hide = true, name = "__receive-bundle")]
    ReceiveBundle {
        #[arg(long, value_name = "DIR")]
        trusted_keys: PathBuf,
        bundle: PathBuf,
        out: PathBuf,
    },
    /// Make a key pair to sign bundles: PREFIX.pub for devices'
    /// /etc/rkstack/trusted.d/, PREFIX.key (mode 0600) for the signer.
    Keygen {
        /// Where the two files go: PREFIX.pub and PREFIX.key.
        #[arg(short = 'o', long, value_name = "PREFIX")]
        output: PathBuf,
    },
    /// The stack's generations: every version of its file applied or
    /// refused, why, and how it fared (the running one marked *).
    History {
        /// One JSON object per generation.
        #[arg(long)]
        json: bool,
    },
    /// Go back to a generation: its file and the very images it ran (only
    /// containers that differ are recreated).
    Rollback {
        /// The generation (default: the last committed before the running one).
        generation: Option<u64>,
    },
}

#[derive(Args, Debug)]
struct UpArgs {
    /// The stack file.
    file: PathBuf,
    /// Detach: return once the stack is up (exit 0) or failed (exit 1).
    #[arg(short = 'd', long)]
    detach: bool,
    /// In the foreground: the containers' output on stdout too, each line
    /// after its container's name, as docker compose up shows it (lines
    /// stdout cannot take at once are dropped and counted; the logs keep all)
    #[arg(long, conflicts_with = "detach")]
    attach: bool,
    /// With -d: how long to wait for the stack to be up (seconds, or
    /// with a unit: 90s, 5m); 0 returns as soon as the supervisor runs.
    /// Past it: exit 1, naming what is still pending; the supervisor
    /// keeps running.
    #[arg(long, value_name = "DURATION", default_value = "120s")]
    wait_timeout: String,
    /// Also serve the API on TCP, over TLS only: tcp://ADDR:PORT.
    #[arg(long, value_name = "tcp://ADDR:PORT")]
    listen: Option<String>,
    /// With --listen: the server's certificate chain (PEM).
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// With --listen: the server's private key (PEM).
    #[arg(long, value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// With --listen: require client certificates signed by this CA (PEM).
    #[arg(long, value_name = "PATH")]
    client_ca: Option<PathBuf>,
    /// Bundles uploaded to the API (POST /v1/apply) must be signed by one
    /// of the minisign keys here, when there is any.
    #[arg(long, value_name = "DIR", default_value = "/etc/rkstack/trusted.d")]
    trusted_keys: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Container name (default: run-PID).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// uid[:gid] or a user name of the rootfs.
    #[arg(long)]
    user: Option<String>,
    #[arg(long, short = 'w')]
    workdir: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// SOURCE:TARGET[:ro] bind mount (repeatable).
    #[arg(long = "volume", short = 'v', value_name = "SRC:DST[:ro]")]
    volumes: Vec<String>,
    /// A tmpfs at this path (repeatable).
    #[arg(long, value_name = "DST")]
    tmpfs: Vec<String>,
    #[arg(long)]
    read_only: bool,
    /// Memory limit, like 64M.
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long)]
    pids: Option<u64>,
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// NAME=SOFT[:HARD] resource limit, like nofile=1024:2048 (repeatable).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimits: Vec<String>,
    /// default, unconfined or a profile file.
    #[arg(long)]
    seccomp: Option<String>,
    /// off, auto or UID_MAP (like 0:100000:65536, used for gids too).
    #[arg(long)]
    userns: Option<String>,
    /// none (loopback only, the default) or host.
    #[arg(long)]
    network: Option<String>,
    /// Replaces the image's Entrypoint (and then its Cmd is not used); ""
    /// clears it.
    #[arg(long, value_name = "PROGRAM")]
    entrypoint: Option<String>,
    /// A directory, or an image reference of the stack format (host, dir:PATH, ...).
    rootfs: String,
    /// The command and its arguments (replaces the image's Cmd; may be left
    /// out for an image that has one, or with --entrypoint).
    #[arg(last = true)]
    command: Vec<String>,
}

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
