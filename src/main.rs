//! The `rkstack` command line. Only argument handling, output and exit codes
//! live here; everything else is in the library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rkstack::config::{self, ConfigError};
use rkstack::plan;

mod cli_api;
mod cli_detach;
mod cli_run;

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
    /// A remote supervisor: https://ADDR:PORT (its `up --listen`).
    #[arg(long, global = true, value_name = "URL")]
    host: Option<String>,
    /// With --host: the CA that signed the supervisor's certificate (PEM).
    #[arg(long, global = true, value_name = "PATH")]
    ca: Option<PathBuf>,
    /// With --host: this client's certificate (PEM), for a supervisor that asks for one.
    #[arg(long, global = true, value_name = "PATH")]
    cert: Option<PathBuf>,
    /// With --host: the key of --cert (PEM).
    #[arg(long, global = true, value_name = "PATH")]
    key: Option<PathBuf>,
    /// The bearer token (a file holding it): the one a client sends with
    /// --host, or the one `up --listen` requires.
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// error, warn, info, debug or trace.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "info",
        value_parser = ["error", "warn", "info", "debug", "trace"],
        ignore_case = true
    )]
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
    /// Run a stack: bring it up, keep it at its desired state, reload when the file changes; SIGTERM stops it.
    Up {
        /// The stack file.
        file: PathBuf,
        /// Detach: return once the stack is up (exit 0) or failed (exit 1).
        #[arg(short = 'd', long)]
        detach: bool,
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
    },
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
    /// List the stack's containers: state, pid, restarts, health, uptime, address, memory.
    Ps {
        /// JSON: one object per container (the fields of GET /v1/containers).
        #[arg(long)]
        json: bool,
        /// Only the containers' names, one a line.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
    },
    /// Show a container's output (stdout and stderr), from its log files.
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
        /// The container.
        name: String,
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
    /// Fetch an image from a registry into the store: docker://[REGISTRY/]REPO[:TAG|@DIGEST].
    Pull {
        /// USER:PASSWORD for the registry (else ~/.docker/config.json's, if any).
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
        /// The image reference.
        reference: String,
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
    /// A directory, or an image reference of the stack format (host, dir:PATH, ...).
    rootfs: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // The sandbox's init stage: before anything else, still single-threaded.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        rkstack::sandbox::init::main();
    }
    // The machine's init: mount what is missing, take Ctrl-Alt-Del as a
    // signal, and never exit (see the end).
    let init = rkstack::supervisor::pid1::is_init();
    if init {
        for line in rkstack::supervisor::pid1::mount_basics() {
            eprintln!("rkstack: {line}");
        }
        // SAFETY: plain syscall; Ctrl-Alt-Del then sends SIGINT to us.
        unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
    }
    let code = run_cli();
    if init {
        if code == ExitCode::SUCCESS {
            rkstack::supervisor::pid1::finish();
        }
        rkstack::supervisor::pid1::idle();
    }
    code
}

fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    // `up -d` writes its log to a file: each line says when.
    let timestamps = matches!(cli.command, Command::Up { detach: true, .. });
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
    if unsafe { libc::geteuid() } != 0 && matches!(command, Command::Up { .. } | Command::Run(_)) {
        let what = if matches!(command, Command::Up { .. }) {
            "up"
        } else {
            "run"
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
            Command::Up { .. } | Command::Run(_) | Command::Pull { .. } | Command::Rmi { .. }
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
        Command::Ps { json, quiet } => Ok(with_client(g, None, |c| cli_api::ps(c, json, quiet))),
        Command::Logs {
            follow,
            tail,
            timestamps,
            name,
        } => Ok(with_client(g, None, |c| {
            cli_api::logs(c, &name, follow, tail, timestamps)
        })),
        Command::Exec { name, command } => {
            Ok(with_client(g, None, |c| cli_api::exec(c, &name, &command)))
        }
        Command::Stop { name } => Ok(with_client(g, None, |c| cli_api::action(c, &name, "stop"))),
        Command::Start { name } => Ok(with_client(g, None, |c| cli_api::action(c, &name, "start"))),
        Command::Restart { name } => Ok(with_client(g, None, |c| {
            cli_api::action(c, &name, "restart")
        })),
        Command::Reload => Ok(with_client(g, None, cli_api::reload)),
        #[cfg(feature = "docs")]
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Into a buffer first: the generator panics on a write error
            // (a closed pipe), the buffer cannot fail.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rkstack", &mut script);
            match std::io::stdout().write_all(&script) {
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
        Command::Ls { json } => {
            let running = rkstack::host::stacks::running(&g.state_dir);
            let mut out = std::io::stdout().lock();
            if json {
                let v: Vec<serde_json::Value> = running
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name,
                            "pid": r.pid,
                            "socket": g.state_dir.join(format!("{}.sock", r.name)),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let mut rows = vec![vec!["NAME".to_string(), "PID".into(), "SOCKET".into()]];
                for r in &running {
                    rows.push(vec![
                        r.name.clone(),
                        r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                        g.state_dir
                            .join(format!("{}.sock", r.name))
                            .display()
                            .to_string(),
                    ]);
                }
                write!(out, "{}", cli_api::table(&rows))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Down => {
            // Nothing running is nothing to stop: exit 0, as compose does.
            if g.host.is_none() && g.socket.is_none() {
                let running = rkstack::host::stacks::running(&g.state_dir);
                let none = match g.stack.as_deref() {
                    Some(name) => !running.iter().any(|r| r.name == name),
                    None => running.is_empty(),
                };
                if none {
                    eprintln!(
                        "rkstack: {} running; nothing to stop",
                        g.stack
                            .as_deref()
                            .map_or("no stack is".to_string(), |n| format!("stack {n} is not"))
                    );
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(with_client(g, None, cli_api::down))
        }
        Command::Events { json } => Ok(with_client(g, None, |c| cli_api::events(c, json))),
        Command::Inspect { name } => Ok(with_client(g, None, |c| cli_api::inspect(c, &name))),
        Command::Diff { name } => Ok(with_client(g, None, |c| cli_api::diff(c, &name))),
        Command::Images { json } => cli_api::images(&g.data_dir, json),
        Command::Rmi { references } => cli_api::rmi(&g.state_dir, &g.data_dir, &references),
        Command::UnitStopped => {
            let Some(stack) = g.stack.clone() else {
                eprintln!("rkstack: unit-stopped needs --stack NAME");
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let result = std::env::var("SERVICE_RESULT").unwrap_or_default();
            match rkstack::supervisor::unit::after_stop(&g.state_dir, &stack, &result) {
                Ok(done) => {
                    eprintln!("rkstack: {stack}: {done}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("rkstack: {stack}: {e}");
                    Ok(ExitCode::from(EXIT_FAILED))
                }
            }
        }
        Command::Pull { creds, reference } => cli_api::pull(
            &g.data_dir,
            &reference,
            &g.insecure_registries,
            creds.as_deref(),
        ),

        Command::Check { file, json } => {
            let stack = match load(&file) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            // Seccomp profiles the file names, where they are here: a
            // profile that does not compile would stop its container.
            let bad: Vec<String> = stack
                .containers
                .values()
                .filter_map(rkstack::container::lower::seccomp_problem)
                .collect();
            if !bad.is_empty() {
                for b in &bad {
                    eprintln!("{}: {b}", file.display());
                }
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &stack)?;
                writeln!(out)?;
            } else {
                writeln!(out, "ok: {}", stack.summary())?;
                let needs = stack.device_needs();
                if !needs.is_empty() {
                    writeln!(out, "the device needs: {}", needs.join("; "))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            file,
            detach,
            wait_timeout,
            listen,
            tls_cert,
            tls_key,
            client_ca,
        } => {
            // Problems in the file are reported like `check` does, exit 2.
            let stack = match load(&file) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let file = std::path::absolute(&file).unwrap_or(file);
            // Remote access is checked before anything starts.
            #[cfg(feature = "remote")]
            let remote = match listen {
                Some(l) => {
                    match rkstack::api::remote::prepare(&rkstack::api::remote::ListenOptions {
                        listen: l,
                        cert: tls_cert,
                        key: tls_key,
                        client_ca,
                        token_file: global.token_file.clone(),
                    }) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            eprintln!("rkstack: {e}");
                            return Ok(ExitCode::from(EXIT_INVALID));
                        }
                    }
                }
                None => None,
            };
            #[cfg(not(feature = "remote"))]
            if listen.is_some() || tls_cert.is_some() || tls_key.is_some() || client_ca.is_some() {
                eprintln!(
                    "rkstack: --listen: this build has no remote access (the `remote` feature)"
                );
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            let opts = rkstack::supervisor::up::UpOptions {
                insecure_registries: global.insecure_registries.clone(),
                file,
                state_dir: global.state_dir.clone(),
                data_dir: global.data_dir.clone(),
            };
            let wait = match wait_timeout
                .parse::<u64>()
                .map(std::time::Duration::from_secs)
                .or_else(|_| {
                    wait_timeout
                        .parse::<rkstack::config::Duration>()
                        .map(|d| d.0)
                }) {
                Ok(d) => d,
                Err(_) => {
                    eprintln!(
                        "rkstack: --wait-timeout {wait_timeout}: expected seconds or a duration like 90s or 5m"
                    );
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let ready = if detach {
                let log = global
                    .data_dir
                    .join(stack.name.as_str())
                    .join("supervisor.log");
                let socket = global.socket.clone().unwrap_or_else(|| {
                    global
                        .state_dir
                        .join(format!("{}.sock", stack.name.as_str()))
                });
                match cli_detach::detach_supervisor(&log, &socket, wait)? {
                    cli_detach::Detached::Parent(code) => return Ok(code),
                    cli_detach::Detached::Child(pipe) => Some(pipe),
                }
            } else {
                None
            };
            let socket = global.socket.clone().unwrap_or_else(|| {
                global
                    .state_dir
                    .join(format!("{}.sock", stack.name.as_str()))
            });
            // The supervisor takes the stack's lock; a running one answers on
            // the socket too, so say so before touching it.
            let running = rkstack::host::stacks::running(&global.state_dir)
                .into_iter()
                .find(|r| r.name == stack.name.as_str());
            if let Some(r) = running {
                let e = rkstack::supervisor::up::UpError::AlreadyRunning {
                    stack: r.name,
                    pid: r.pid.map(|p| p.to_string()).unwrap_or_default(),
                };
                eprintln!("rkstack: {e}");
                if let Some(p) = &ready {
                    p.tell(&format!("{}{e}", rkstack::supervisor::up::READY_EXITED));
                }
                return Ok(ExitCode::from(EXIT_FAILED));
            }
            let listener = match rkstack::api::server::bind(&socket) {
                Ok(l) => l,
                Err(e) => {
                    let msg = format!("API socket {}: {e}", socket.display());
                    eprintln!("rkstack: {msg}");
                    if let Some(r) = &ready {
                        r.tell(&format!("{}{msg}", rkstack::supervisor::up::READY_EXITED));
                    }
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let logs_dir = global.data_dir.join(stack.name.as_str()).join("logs");
            #[cfg(feature = "remote")]
            let tls = match remote {
                Some(r) => match std::net::TcpListener::bind(r.addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                {
                    Ok(l) => {
                        let at = l.local_addr().map_or(r.addr, |a| a);
                        tracing::info!("API over TLS on {at}");
                        Some((l, r))
                    }
                    Err(e) => {
                        let msg = format!("--listen {}: {e}", r.addr);
                        eprintln!("rkstack: {msg}");
                        if let Some(p) = &ready {
                            p.tell(&format!("{}{msg}", rkstack::supervisor::up::READY_EXITED));
                        }
                        return Ok(ExitCode::from(EXIT_FAILED));
                    }
                },
                None => None,
            };
            let control = rkstack::api::server::control(
                listener,
                logs_dir,
                #[cfg(feature = "remote")]
                tls,
            );
            let result = rkstack::supervisor::up::up_with(
                opts,
                rkstack::supervisor::up::Seams {
                    launcher: |layout, base| {
                        Box::new(rkstack::container::LinuxLauncher::new(layout, base))
                    },
                    net: Box::new(rkstack::network::LinuxNet),
                },
                ready,
                Some(control),
            );
            let _ = std::fs::remove_file(&socket);
            match result {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("rkstack: {e}");
                    Ok(ExitCode::from(EXIT_FAILED))
                }
            }
        }
        Command::Run(args) => {
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| format!("run-{}", std::process::id()));
            let container = match cli_run::container(args.as_ref(), &name) {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("rkstack: {msg}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let opts = rkstack::container::run::RunOptions {
                insecure_registries: global.insecure_registries.clone(),
                state_dir: global.state_dir.clone(),
                data_dir: global.data_dir.clone(),
                stack: "run".into(),
            };
            match rkstack::container::run::run(&container, &opts) {
                Ok(exit) => {
                    if exit == rkstack::container::run::Exit::Oom {
                        eprintln!(
                            "rkstack: {name}: killed by the out-of-memory killer (memory limit reached)"
                        );
                    }
                    Ok(ExitCode::from(
                        u8::try_from(exit.status()).unwrap_or(EXIT_FAILED),
                    ))
                }
                Err(e) => {
                    eprintln!("rkstack: {e}");
                    Ok(ExitCode::from(EXIT_FAILED))
                }
            }
        }
        Command::Plan { file, json } => {
            let stack = match load(&file) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            // A running supervisor of this stack plans against what runs.
            let running = global.socket.is_some()
                || rkstack::host::stacks::running(&global.state_dir)
                    .iter()
                    .any(|r| r.name == stack.name.as_str());
            if running {
                let name = stack.name.to_string();
                return Ok(with_client(&global, Some(&name), |c| {
                    cli_api::plan(c, &file, json)
                }));
            }
            let ids = rkstack::container::images::ids(&stack, &global.data_dir);
            let desired = plan::DesiredState::from_stack_with_images(stack, &ids);
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
        None => cli_api::connect(&g.state_dir, stack, g.socket.as_deref()),
    };
    match client.and_then(|c| f(&c)) {
        Ok(code) => code,
        Err(e) => cli_api::fail(&e),
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
