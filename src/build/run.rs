//! `RUN`: the command in a container of rkstack's own, with the default
//! security profile (capabilities, seccomp, masked paths, a pid namespace
//! of its own: whatever it leaves running ends with it), on the image's
//! layers so far under a fresh writable layer, which becomes the step's
//! layer. No network but loopback unless the build asks for the host's.
//! Its output (stdout and stderr, one stream) goes to the build's
//! progress as it comes; the last lines are kept for the error.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::container::lower;
use crate::sandbox::spec::Root;

/// Whether a step's command reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Loopback only.
    #[default]
    None,
    Host,
}

/// One `RUN`.
#[derive(Debug)]
pub struct Step<'a> {
    pub argv: Vec<String>,
    /// `KEY=VALUE`: the image's environment and the build arguments.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: PathBuf,
    /// The layers so far, top first (at least one).
    pub lowers: Vec<PathBuf>,
    pub upper: &'a Path,
    pub work: &'a Path,
    /// An empty folder the root is assembled on.
    pub staging: &'a Path,
    pub network: Network,
    pub seccomp_cache: &'a Path,
}

/// How a `RUN` failed.
#[derive(Debug)]
pub struct Failed {
    /// `exit code 2`, `killed by signal 9`, or why it did not start.
    pub status: String,
    /// Its last lines of output.
    pub tail: Vec<String>,
}

const TAIL_BYTES: usize = 16 << 10;
const TAIL_LINES: usize = 20;

/// The container a step runs in, as a stack file would say it: the
/// default profile, with what differs per step set on the spec after.
fn container(network: Network) -> Result<crate::config::Container, String> {
    let net = match network {
        Network::None => "none",
        Network::Host => "host",
    };
    let text = format!(
        "name = \"build\"\n[containers.step]\nimage = \"host\"\ncommand = [\"/bin/true\"]\nnetworks = \"{net}\"\n"
    );
    let stack = crate::config::parse(&text, Path::new("/")).map_err(|e| e.to_string())?;
    stack
        .containers
        .into_values()
        .next()
        .ok_or_else(|| "the step's container".to_string())
}

/// Runs `step`, its output to `out`.
pub fn run(step: &Step<'_>, out: &mut dyn Write) -> Result<(), Failed> {
    let failed = |status: String| Failed {
        status,
        tail: Vec::new(),
    };
    let c = container(step.network).map_err(failed)?;
    let paths = lower::Paths {
        data_dir: PathBuf::from("/nonexistent"),
        stack: "build".into(),
        volume_paths: Default::default(),
        image: None,
    };
    let mut spec = lower::sandbox_spec(
        &c,
        &paths,
        step.staging,
        None,
        Vec::new(),
        Some(step.seccomp_cache),
    )
    .map_err(|e| failed(e.to_string()))?;
    spec.name = "RUN".into();
    spec.root = Root::Overlay {
        lowers: step.lowers.clone(),
        upper: Some((step.upper.to_path_buf(), step.work.to_path_buf())),
    };
    spec.command = step.argv.clone();
    spec.env = step.env.clone();
    spec.workdir = step.workdir.clone();
    if let Some(u) = &step.user {
        spec.user = lower::image_user(u);
    }
    spec.hostname = "rkstack-build".into();
    spec.die_with_parent = true;
    spec.discard_layer = true;
    let (r, w) = nix::unistd::pipe().map_err(|e| failed(format!("a pipe: {e}")))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| failed(format!("/dev/null: {e}")))?;
    let w2 = w.try_clone().map_err(|e| failed(format!("a pipe: {e}")))?;
    let stdio = crate::sandbox::Stdio3::Fds(OwnedFd::from(null), w, w2);
    let pid = crate::sandbox::spawn(&spec, stdio).map_err(|e| failed(e.to_string()))?;
    let tail = stream(r, out);
    let mut status = 0;
    // SAFETY: reaping the container this process started.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let status = if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => return Ok(()),
            code => format!("exit code {code}"),
        }
    } else {
        format!("killed by signal {}", libc::WTERMSIG(status))
    };
    Err(Failed { status, tail })
}

/// Copies the step's output to `out` until every writer is gone (the
/// container's pid namespace ends with its first process, so nothing it
/// started keeps the pipe); its last lines.
fn stream(r: OwnedFd, out: &mut dyn Write) -> Vec<String> {
    let mut r = std::fs::File::from(r);
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * TAIL_BYTES {
                    kept.drain(..kept.len() - TAIL_BYTES);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&kept);
    let lines: Vec<String> = text.lines().map(String::from).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
}

/// Removes from `upper` the mount points the sandbox made there (`/proc`,
/// `/dev`, `/sys`, when the image had none): not part of the image.
pub fn drop_mount_points(upper: &Path, lowers: &[PathBuf]) {
    for name in ["proc", "dev", "sys"] {
        let made = upper.join(name);
        let empty = std::fs::read_dir(&made).is_ok_and(|mut d| d.next().is_none());
        let in_image = lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(name)).is_ok());
        if empty && !in_image {
            let _ = std::fs::remove_dir(&made);
        }
    }
}
