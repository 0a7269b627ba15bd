//! The command tree: every command, its arguments and its help text
//! (`docs/cli.md` is held to it by a test). Dispatch is in `mod.rs`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{build, logs};

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
pub(super) struct UpArgs {
    /// The stack file.
    pub(super) file: PathBuf,
    /// Detach: return once the stack is up (exit 0) or failed (exit 1).
    #[arg(short = 'd', long)]
    pub(super) detach: bool,
    /// In the foreground: the containers' output on stdout too, each line
    /// after its container's name, as docker compose up shows it (lines
    /// stdout cannot take at once are dropped and counted; the logs keep all)
    #[arg(long, conflicts_with = "detach")]
    pub(super) attach: bool,
    /// With -d: how long to wait for the stack to be up (seconds, or
    /// with a unit: 90s, 5m); 0 returns as soon as the supervisor runs.
    /// Past it: exit 1, naming what is still pending; the supervisor
    /// keeps running.
    #[arg(long, value_name = "DURATION", default_value = "120s")]
    pub(super) wait_timeout: String,
    /// Also serve the API on TCP, over TLS only: tcp://ADDR:PORT.
    #[arg(long, value_name = "tcp://ADDR:PORT")]
    pub(super) listen: Option<String>,
    /// With --listen: the server's certificate chain (PEM).
    #[arg(long, value_name = "PATH")]
    pub(super) tls_cert: Option<PathBuf>,
    /// With --listen: the server's private key (PEM).
    #[arg(long, value_name = "PATH")]
    pub(super) tls_key: Option<PathBuf>,
    /// With --listen: require client certificates signed by this CA (PEM).
    #[arg(long, value_name = "PATH")]
    pub(super) client_ca: Option<PathBuf>,
    /// Bundles uploaded to the API (POST /v1/apply) must be signed by one
    /// of the minisign keys here, when there is any.
    #[arg(long, value_name = "DIR", default_value = "/etc/rkstack/trusted.d")]
    pub(super) trusted_keys: PathBuf,
}

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// Container name (default: run-PID).
    #[arg(long)]
    pub(super) name: Option<String>,
    #[arg(long)]
    pub(super) hostname: Option<String>,
    /// uid[:gid] or a user name of the rootfs.
    #[arg(long)]
    pub(super) user: Option<String>,
    #[arg(long, short = 'w')]
    pub(super) workdir: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub(super) env: Vec<String>,
    /// SOURCE:TARGET[:ro] bind mount (repeatable).
    #[arg(long = "volume", short = 'v', value_name = "SRC:DST[:ro]")]
    pub(super) volumes: Vec<String>,
    /// A tmpfs at this path (repeatable).
    #[arg(long, value_name = "DST")]
    pub(super) tmpfs: Vec<String>,
    #[arg(long)]
    pub(super) read_only: bool,
    /// Memory limit, like 64M.
    #[arg(long)]
    pub(super) memory: Option<String>,
    #[arg(long)]
    pub(super) cpus: Option<f64>,
    #[arg(long)]
    pub(super) pids: Option<u64>,
    #[arg(long = "cap-add", value_name = "CAP")]
    pub(super) cap_add: Vec<String>,
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub(super) cap_drop: Vec<String>,
    /// NAME=SOFT[:HARD] resource limit, like nofile=1024:2048 (repeatable).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub(super) ulimits: Vec<String>,
    /// default, unconfined or a profile file.
    #[arg(long)]
    pub(super) seccomp: Option<String>,
    /// off, auto or UID_MAP (like 0:100000:65536, used for gids too).
    #[arg(long)]
    pub(super) userns: Option<String>,
    /// none (loopback only, the default) or host.
    #[arg(long)]
    pub(super) network: Option<String>,
    /// Replaces the image's Entrypoint (and then its Cmd is not used); ""
    /// clears it.
    #[arg(long, value_name = "PROGRAM")]
    pub(super) entrypoint: Option<String>,
    /// A directory, or an image reference of the stack format (host, dir:PATH, ...).
    pub(super) rootfs: String,
    /// The command and its arguments (replaces the image's Cmd; may be left
    /// out for an image that has one, or with --entrypoint).
    #[arg(last = true)]
    pub(super) command: Vec<String>,
}
