//! The `rkstack __init` stage and the container's first process.
//!
//! `__init` is exec'd fresh (from a sealed copy of the binary) by the runtime,
//! so it is single-threaded and may fork safely whatever the runtime is. It
//! reads the spec and clones the container's first process into new
//! namespaces with `CLONE_PARENT`, so that process is a direct child of the
//! runtime. It writes the user namespace maps, lets the child go, moves it
//! into its cgroups while the child builds its root, and reports `Started`
//! once the child has exec'd (its end of the channel closes on exec) or the
//! child's `Failed`.
//!
//! The child runs the setup steps in order: user → hostname → rootfs and
//! mounts → /proc, /dev, /sys → pivot_root → masked paths → loopback →
//! rlimits → user and groups → workdir → capabilities → no_new_privs →
//! seccomp → exec. A failed step is sent back as data, never as text on stderr.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::channel::{self, Message, StepError};
use super::rootfs::{self, StepResult, errno_err, os_err};
use super::spec::{NetNs, Root, SandboxSpec, UserSpec};
use super::{caps, seccomp, users};

/// The fd on which `__init` finds its channel to the runtime.
pub const INIT_FD: i32 = 3;

/// Entry point of `rkstack __init`. Never returns.
pub fn main() -> ! {
    seal();
    // Nothing of the caller's but the channel and stdio: every other
    // descriptor it may have let through is closed.
    // SAFETY: plain syscall on this process's own descriptor table.
    unsafe { libc::syscall(libc::SYS_close_range, INIT_FD as u32 + 1, u32::MAX, 0) };
    // SAFETY: fd 3 was placed there by the runtime for us alone.
    let chan = unsafe { OwnedFd::from_raw_fd(INIT_FD) };
    let code = match run(&chan) {
        Ok(pid) => match channel::send(chan.as_fd(), &Message::Started { pid }) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(e) => {
            let _ = channel::send(chan.as_fd(), &Message::Failed(e));
            1
        }
    };
    std::process::exit(code)
}

fn run(chan: &OwnedFd) -> StepResult<i32> {
    match channel::recv(chan.as_fd()) {
        Ok(Some(Message::Start(spec))) => stage(&spec, chan),
        Ok(Some(Message::Exec(spec))) => super::enter::stage(&spec, chan),
        Ok(other) => Err(errno_err(
            "init",
            0,
            format!("expected Start or Exec, got {other:?}"),
        )),
        Err(e) => Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "reading the spec",
        )),
    }
}

/// What a forked init stage is to do.
#[derive(Debug)]
pub(super) enum Job<'a> {
    Start(&'a SandboxSpec),
    Exec(&'a super::spec::ExecSpec),
}

/// Makes this process non-dumpable until its execve (which resets it for
/// the container's command): no process of a container may ptrace it,
/// read its memory or open its `/proc/PID/exe` and descriptors — even one
/// with the capabilities this process drops to — without `CAP_SYS_PTRACE`
/// over the host's user namespace (runc and crun do the same).
pub(super) fn seal() {
    // SAFETY: plain prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// The init stage in a process forked by a single-threaded runtime: the
/// same work as `__init`, with the spec already in memory. The caller has
/// sealed it and set stdio; every other descriptor but the channel is
/// closed here. Never returns.
pub(super) fn forked(chan: OwnedFd, job: Job<'_>) -> ! {
    let chan = keep_only(chan);
    let result = match job {
        Job::Start(spec) => stage(spec, &chan),
        Job::Exec(spec) => super::enter::stage(spec, &chan),
    };
    let msg = match result {
        Ok(pid) => Message::Started { pid },
        Err(e) => Message::Failed(e),
    };
    let code = i32::from(channel::send(chan.as_fd(), &msg).is_err());
    // SAFETY: leave without running the runtime's exit handlers or destructors.
    unsafe { libc::_exit(code) }
}

/// Moves the channel to [`INIT_FD`] and closes every descriptor above it:
/// the caller's logs, pipes, sockets and locks never reach a container.
fn keep_only(chan: OwnedFd) -> OwnedFd {
    let fd = chan.as_raw_fd();
    if fd != INIT_FD {
        // SAFETY: dup2 onto a fixed slot of this forked process.
        if unsafe { libc::dup2(fd, INIT_FD) } < 0 {
            return chan;
        }
        drop(chan);
    } else {
        std::mem::forget(chan);
    }
    // SAFETY: plain syscalls on this process's own descriptor table; the
    // channel now lives at INIT_FD alone.
    unsafe {
        libc::fcntl(INIT_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::syscall(libc::SYS_close_range, INIT_FD as u32 + 1, u32::MAX, 0);
        OwnedFd::from_raw_fd(INIT_FD)
    }
}

/// Each bind's source as a detached mount tree with its flags set, made
/// by the stage while it is still the host's root (its source opened
/// refusing symlinks; a refusal is the start's error), keyed by its
/// target. The child attaches them: it reaches them even where the data
/// directory is closed to a user namespace's ids, and each is the very
/// file that was checked.
static PREOPENED: std::sync::OnceLock<Vec<(PathBuf, OwnedFd)>> = std::sync::OnceLock::new();

fn preopen(spec: &SandboxSpec) -> StepResult<()> {
    let mut held = Vec::new();
    for m in &spec.mounts {
        if let super::spec::MountSpec::Bind {
            source,
            target,
            read_only,
        } = m
            && let Some(tree) =
                rootfs::bind_tree(source, *read_only, &format!("mount {}", target.display()))?
        {
            held.push((target.clone(), tree));
        }
    }
    let _ = PREOPENED.set(held);
    if spec.user_ns.is_some()
        && let Root::Overlay { lowers, upper } = &spec.root
    {
        let fail = |e: std::io::Error| {
            errno_err(
                "rootfs",
                e.raw_os_error().unwrap_or(0),
                "image layers for a user namespace",
            )
        };
        let lower = match lowers.as_slice() {
            [one] => rootfs::detached_tree(one),
            many => rootfs::detached_overlay(many),
        }
        .map_err(fail)?;
        let layer = match upper {
            Some((u, w)) => {
                let (Some(dir), Some(un), Some(wn)) = (u.parent(), u.file_name(), w.file_name())
                else {
                    return Err(fail(std::io::Error::from_raw_os_error(libc::EINVAL)));
                };
                let tree = rootfs::detached_tree(dir).map_err(fail)?;
                Some((tree, un.to_os_string(), wn.to_os_string()))
            }
            None => None,
        };
        let _ = USERNS_LAYERS.set(UsernsLayers { lower, layer });
    }
    Ok(())
}

/// An image container's layers in a user namespace, made by the stage
/// (the store is closed to the namespace's ids): the image's layers as
/// one read-only tree, and the folder holding its writable layer (with
/// the names of its upper and work folders). The child attaches both in
/// its own mount namespace and stacks its overlay there.
struct UsernsLayers {
    lower: OwnedFd,
    layer: Option<(OwnedFd, std::ffi::OsString, std::ffi::OsString)>,
}

static USERNS_LAYERS: std::sync::OnceLock<UsernsLayers> = std::sync::OnceLock::new();

/// The root of an image container in a user namespace, from the trees
/// the stage made (see [`UsernsLayers`]).
fn userns_overlay(s: &Path, l: &UsernsLayers, discard: bool) -> std::io::Result<PathBuf> {
    scratch(s, &["lower", "layer", "upper", "work", "root"])?;
    rootfs::attach_tree(&l.lower, &s.join("lower"))?;
    let (upper, work) = match &l.layer {
        Some((tree, u, w)) => {
            rootfs::attach_tree(tree, &s.join("layer"))?;
            (s.join("layer").join(u), s.join("layer").join(w))
        }
        None => (s.join("upper"), s.join("work")),
    };
    let root = s.join("root");
    mount_overlay(
        &root,
        &s.join("lower").display().to_string(),
        &upper,
        &work,
        discard,
    )?;
    Ok(root)
}

/// The stage's tree for the bind onto `target`, if it made one.
fn preopened(path: &Path) -> Option<&'static OwnedFd> {
    PREOPENED
        .get()?
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, fd)| fd)
}

/// The loop device of a filesystem-image root, attached by the stage.
static LOOP_DEV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Attaches a filesystem image to a loop device (kept by the returned
/// handles until this stage exits; the device goes with the container's
/// mount), through a dm-verity device when the image has a root hash, and
/// lets the container's device cgroup (v1) open just that one.
fn attach_image(spec: &SandboxSpec) -> StepResult<Vec<OwnedFd>> {
    let Root::Image { file, verity, .. } = &spec.root else {
        return Ok(Vec::new());
    };
    let err = |e: std::io::Error| {
        errno_err(
            "rootfs",
            e.raw_os_error().unwrap_or(0),
            format!("loop device for {}", file.display()),
        )
    };
    let (mut dev, fd) = super::loopdev::attach(file).map_err(err)?;
    let mut holds = vec![fd];
    if let Some(v) = verity {
        let (node, held) = verify(file, &dev, v)?;
        holds.extend(held);
        dev = node;
    }
    let (major, minor) = super::loopdev::dev_of(&dev).map_err(err)?;
    let rule = format!("b {major}:{minor} r");
    for procs in &spec.cgroup_procs {
        if let Some(allow) = procs.parent().map(|d| d.join("devices.allow"))
            && allow.exists()
        {
            std::fs::write(&allow, &rule).map_err(err)?;
        }
    }
    let _ = LOOP_DEV.set(dev);
    Ok(holds)
}

/// The image on loop device `dev` read through dm-verity with its hash
/// tree: the verity device's node and what holds it (and the hash tree's
/// loop device). An image that does not match is refused here.
fn verify(
    file: &Path,
    dev: &Path,
    v: &super::spec::VeritySpec,
) -> StepResult<(PathBuf, Vec<OwnedFd>)> {
    let fail = |errno: i32, what: String| {
        errno_err("verity", errno, format!("{}: {what}", file.display()))
    };
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(&v.hash_file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| {
            fail(
                e.raw_os_error().unwrap_or(0),
                format!("hash tree {}: {e}", v.hash_file.display()),
            )
        })?;
    let sb = super::dm::superblock(&head[..n])
        .map_err(|e| fail(libc::EINVAL, format!("{}: {e}", v.hash_file.display())))?;
    let (hash_dev, hash_fd) = super::loopdev::attach(&v.hash_file)
        .map_err(|e| fail(e.raw_os_error().unwrap_or(0), format!("loop device: {e}")))?;
    let name = format!(
        "rkstack-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let (node, dm_fd) = super::dm::verity(&name, dev, &hash_dev, &sb, &v.root_hash)
        .map_err(|e| fail(libc::ENODEV, e))?;
    // The first block, read now: a wrong root hash (or a changed image)
    // fails here rather than as a mount error.
    let mut first = vec![0u8; sb.data_block_size as usize];
    // SAFETY: reading into our buffer from our descriptor.
    let r = unsafe { libc::pread(dm_fd.as_raw_fd(), first.as_mut_ptr().cast(), first.len(), 0) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(
            e.raw_os_error().unwrap_or(0),
            "the image does not match its verity root hash (or its hash tree); refused".into(),
        ));
    }
    Ok((node, vec![hash_fd, dm_fd]))
}

fn stage(spec: &SandboxSpec, runtime: &OwnedFd) -> StepResult<i32> {
    if spec.user_ns.is_some() {
        precreate_mountpoints(spec)?;
    }
    let _image = attach_image(spec)?;
    preopen(spec)?;
    let (parent_end, child_end) = channel::pair()
        .map_err(|e| errno_err("init", e.raw_os_error().unwrap_or(0), "socketpair"))?;

    let mut flags = libc::CLONE_PARENT
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    if spec.net == NetNs::New {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.user_ns.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: a fork-like clone (no new stack): this process is
    // single-threaded, so the child may run arbitrary code until exec.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        return Err(os_err("clone", "new namespaces"));
    }
    if pid == 0 {
        drop(parent_end);
        let err = child(spec, &child_end);
        let _ = channel::send(child_end.as_fd(), &Message::Failed(err));
        // SAFETY: leave at once, without running the parent's exit handlers.
        unsafe { libc::_exit(127) };
    }
    let pid = pid as i32;
    drop(child_end);
    tell_cloned(runtime, pid)?;
    if let Some(maps) = &spec.user_ns {
        let write = |file: &str, m: &[(u32, u32, u32)]| {
            let text: String = m.iter().map(|(a, b, c)| format!("{a} {b} {c}\n")).collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| {
                errno_err(
                    "user namespace",
                    e.raw_os_error().unwrap_or(0),
                    file.to_string(),
                )
            })
        };
        if let Err(e) = write("uid_map", &maps.uid).and_then(|_| write("gid_map", &maps.gid)) {
            // SAFETY: killing the child we just made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(e);
        }
    }
    poke_child(&parent_end)?;
    // The child builds its root meanwhile: moving a task into a v1 cgroup can
    // wait for an RCU grace period (milliseconds), which is then not on the
    // start path. The child waits for the second poke before it makes its
    // cgroup namespace and runs anything of the container.
    for procs in &spec.cgroup_procs {
        if let Err(e) = std::fs::write(procs, pid.to_string()) {
            // The child may have failed before it could be moved (the write
            // then fails in ways that depend on how far its exit got): its
            // own report, if it sent one, is the error.
            if let Some(err) = failed_report(&parent_end) {
                return Err(err);
            }
            // SAFETY: killing the child we just made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(errno_err(
                "cgroup",
                e.raw_os_error().unwrap_or(0),
                procs.display().to_string(),
            ));
        }
    }
    if spec.hold_before_exec {
        hold(runtime, pid)?;
    }
    poke_child(&parent_end)?;
    match channel::recv(parent_end.as_fd()) {
        Ok(None) => Ok(pid),
        Ok(Some(Message::Failed(e))) => Err(e),
        Ok(Some(other)) => Err(errno_err("init", 0, format!("unexpected {other:?}"))),
        Err(e) => Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "waiting for exec",
        )),
    }
}

/// Tells the runtime the pid of the process just cloned (killed if that fails).
pub(super) fn tell_cloned(runtime: &OwnedFd, pid: i32) -> StepResult<()> {
    channel::send(runtime.as_fd(), &Message::Cloned { pid }).map_err(|e| {
        // SAFETY: killing the child this stage made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        errno_err("init", e.raw_os_error().unwrap_or(0), "tell the runtime")
    })
}

/// Tells the runtime the process exists and waits for it to say go on; a
/// runtime that fails (or goes away) has the process killed.
fn hold(runtime: &OwnedFd, pid: i32) -> StepResult<()> {
    let kill = || {
        // SAFETY: killing the child this stage made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    if let Err(e) = channel::send(runtime.as_fd(), &Message::Created { pid }) {
        kill();
        return Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "tell the runtime",
        ));
    }
    match channel::recv(runtime.as_fd()) {
        Ok(Some(Message::Continue)) => Ok(()),
        Ok(Some(Message::Failed(e))) => {
            kill();
            Err(e)
        }
        other => {
            kill();
            Err(errno_err(
                "init",
                0,
                format!("runtime went away while the process was held ({other:?})"),
            ))
        }
    }
}

/// The child's failure report if it has sent one (waiting briefly, never
/// for a child that is still working).
fn failed_report(chan: &OwnedFd) -> Option<StepError> {
    let mut p = libc::pollfd {
        fd: chan.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, 200) } <= 0 {
        return None;
    }
    match channel::recv(chan.as_fd()) {
        Ok(Some(Message::Failed(err))) => Some(err),
        _ => None,
    }
}

/// Lets the child go on. If it has already failed (and so closed its end),
/// its own report is the error, not the broken pipe.
fn poke_child(chan: &OwnedFd) -> StepResult<()> {
    match channel::poke(chan) {
        Ok(()) => Ok(()),
        Err(e) => match channel::recv(chan.as_fd()) {
            Ok(Some(Message::Failed(err))) => Err(err),
            _ => Err(errno_err(
                "init",
                e.raw_os_error().unwrap_or(0),
                "the child went away",
            )),
        },
    }
}

/// Root of a user namespace owns nothing in a directory rootfs, so the mount
/// points it will need are made now, while we are the host's root (resolved
/// inside the rootfs just as the child will).
fn precreate_mountpoints(spec: &SandboxSpec) -> StepResult<()> {
    let Root::Dir(dir) = &spec.root else {
        return Ok(());
    };
    let Ok(root) = rootfs::open_root(dir) else {
        return Ok(());
    };
    let mut targets: Vec<(PathBuf, bool)> = ["/proc", "/dev", "/sys"]
        .iter()
        .map(|p| (PathBuf::from(p), false))
        .collect();
    for m in &spec.mounts {
        match m {
            super::spec::MountSpec::Bind { source, target, .. } => {
                targets.push((
                    target.clone(),
                    std::fs::metadata(source).is_ok_and(|m| !m.is_dir()),
                ));
            }
            super::spec::MountSpec::Tmpfs { target, .. } => targets.push((target.clone(), false)),
        }
    }
    for (t, file) in targets {
        rootfs::mountpoint(&root, &t, file).map_err(|e| {
            errno_err(
                format!("mount {}", t.display()),
                e.raw_os_error().unwrap_or(0),
                format!("mount point {}", t.display()),
            )
        })?;
    }
    Ok(())
}

/// The container's first process: PID 1 of its namespace. Returns only on failure.
fn child(spec: &SandboxSpec, chan: &OwnedFd) -> StepError {
    match setup(spec, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn setup(spec: &SandboxSpec, chan: &OwnedFd) -> StepResult<Never> {
    match channel::wait_poke(chan) {
        Ok(true) => {}
        _ => return Err(errno_err("init", 0, "runtime went away")),
    }
    if spec.die_with_parent {
        // SAFETY: plain prctl; our parent is the runtime (CLONE_PARENT).
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } == 1 {
            return Err(errno_err("init", 0, "runtime went away"));
        }
    }
    // SAFETY: plain syscalls without pointers.
    unsafe {
        // A session of its own: the terminal's signals go to the runtime, which forwards them.
        libc::setsid();
        if spec.user_ns.is_some()
            && (libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0)
        {
            return Err(os_err("user namespace", "become root in the namespace"));
        }
    }
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| errno_err("hostname", e as i32, spec.hostname.clone()))?;

    rootfs::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| errno_err("mount propagation", e.raw_os_error().unwrap_or(0), "/"))?;
    let new_root = assemble_root(spec)?;
    let root = rootfs::open_root(&new_root)?;
    // A mount under /dev (the format allows a tmpfs at /dev/shm) goes over
    // the runtime's own /dev, so after it.
    let (dev, others): (Vec<_>, Vec<_>) = spec
        .mounts
        .iter()
        .partition(|m| mount_target(m).starts_with("/dev"));
    user_mounts(&root, &others)?;
    rootfs::system_mounts(&root, &spec.devices, spec.net == NetNs::New)?;
    user_mounts(&root, &dev)?;
    let read_only_root = matches!(
        spec.root,
        Root::Host | Root::Image { upper: None, .. } | Root::Overlay { upper: None, .. }
    );
    seal_root(&new_root, spec.read_only || read_only_root)?;
    drop(root);
    rootfs::pivot(&new_root)?;
    rootfs::mask_paths(&spec.masked_paths)?;
    after_pivot(spec, chan)
}

fn mount_target(m: &super::spec::MountSpec) -> &Path {
    match m {
        super::spec::MountSpec::Bind { target, .. }
        | super::spec::MountSpec::Tmpfs { target, .. } => target,
    }
}

/// The stack file's own mounts, in the root being assembled.
fn user_mounts(root: &OwnedFd, mounts: &[&super::spec::MountSpec]) -> StepResult<()> {
    for m in mounts {
        match m {
            super::spec::MountSpec::Bind {
                source,
                target,
                read_only,
            } => rootfs::bind(
                root,
                source,
                preopened(target),
                target,
                *read_only,
                &format!("mount {}", target.display()),
            )?,
            super::spec::MountSpec::Tmpfs { target, size, mode } => rootfs::tmpfs(
                root,
                target,
                *size,
                *mode,
                &format!("mount {}", target.display()),
            )?,
        }
    }
    Ok(())
}

/// In the new root: waits for the cgroup, then its own cgroup namespace,
/// loopback, rlimits, and becomes the container's command.
fn after_pivot(spec: &SandboxSpec, chan: &OwnedFd) -> StepResult<Never> {
    match channel::wait_poke(chan) {
        Ok(true) => {}
        _ => {
            return Err(errno_err(
                "cgroup",
                0,
                "runtime went away before the cgroup was joined",
            ));
        }
    }
    // Now in its own cgroup: that becomes the root of its cgroup namespace.
    // SAFETY: plain syscall.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(os_err("cgroup namespace", ""));
    }
    if spec.net == NetNs::New {
        loopback_up()?;
    }
    set_rlimits(spec)?;
    let _ = chan.as_raw_fd();
    Err(become_and_exec(
        &Identity {
            user: &spec.user,
            workdir: &spec.workdir,
            command: &spec.command,
            env: &spec.env,
            capabilities: &spec.capabilities,
            no_new_privileges: spec.no_new_privileges,
            seccomp: &spec.seccomp,
        },
        || set_lsm_labels(spec),
    ))
}

/// Who and what a process inside a container becomes.
pub(super) struct Identity<'a> {
    pub user: &'a UserSpec,
    pub workdir: &'a Path,
    pub command: &'a [String],
    pub env: &'a [String],
    pub capabilities: &'a [String],
    pub no_new_privileges: bool,
    pub seccomp: &'a super::spec::SeccompSpec,
}

/// The last steps of every process rkstack starts in a container (its first
/// process and those run inside it later): user and groups, workdir, a clean
/// process state, then seccomp, capabilities and no_new_privs in the order
/// that lets each be set, and exec. Returns only on failure.
pub(super) fn become_and_exec(
    id: &Identity<'_>,
    before_exec: impl FnOnce() -> StepResult<()>,
) -> StepError {
    match become_inner(id, before_exec) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn become_inner(
    id: &Identity<'_>,
    before_exec: impl FnOnce() -> StepResult<()>,
) -> StepResult<Never> {
    let (uid, gid, groups) = users::resolve(id.user)?;
    // SAFETY: keep capabilities across setuid; they are set exactly below.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(os_err("user", "keep capabilities"));
    }
    nix::unistd::setgroups(
        &groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| errno_err("user", e as i32, "supplementary groups"))?;
    // SAFETY: plain syscalls.
    unsafe {
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(os_err("user", format!("gid {gid}")));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(os_err("user", format!("uid {uid}")));
        }
    }
    let wd = rootfs::cstr(id.workdir);
    // SAFETY: wd is NUL-terminated.
    if unsafe { libc::chdir(wd.as_ptr()) } != 0 {
        return Err(os_err("workdir", id.workdir.display().to_string()));
    }
    let (path, argv, envp) = command_args(id.command, id.env)?;
    before_exec()?;
    prepare_exec()?;
    // Loading a filter needs no_new_privs or CAP_SYS_ADMIN: without
    // no_new_privs it is loaded while the capabilities are still there
    // (the profile allows what the remaining steps call).
    if !id.no_new_privileges {
        seccomp::apply(id.seccomp)?;
    }
    caps::apply(id.capabilities, uid == 0)?;
    if id.no_new_privileges {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(os_err("no_new_privileges", ""));
        }
        seccomp::apply(id.seccomp)?;
    }
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_p: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: NULL-terminated arrays of NUL-terminated strings that live until exec.
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    Err(os_err(
        "exec",
        id.command.first().cloned().unwrap_or_default(),
    ))
}

/// AppArmor profile and SELinux label for the exec. The runtime has already
/// dropped them (with a warning) where the kernel lacks that module.
fn set_lsm_labels(spec: &SandboxSpec) -> StepResult<()> {
    let write = |files: &[&str], value: &str, step: &str| -> StepResult<()> {
        let mut last = 0;
        for f in files {
            match std::fs::write(f, value) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.raw_os_error().unwrap_or(0),
            }
        }
        Err(errno_err(step, last, value.to_string()))
    };
    if let Some(p) = &spec.apparmor {
        write(
            &["/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"],
            &format!("exec {p}"),
            "apparmor profile",
        )?;
    }
    if let Some(l) = &spec.selinux_label {
        write(&["/proc/self/attr/exec"], l, "selinux label")?;
    }
    Ok(())
}

/// An overlayfs mount of `lower` (its lowerdir list) under the writable
/// layer `upper` (work folder `work`) on `target`. A layer thrown away
/// after the run is mounted `volatile` (Linux 5.10+): its teardown then
/// skips the sync of the whole filesystem under it, milliseconds at every
/// exit. A kernel without the option mounts it as any other.
fn mount_overlay(
    target: &Path,
    lower: &str,
    upper: &Path,
    work: &Path,
    discard: bool,
) -> std::io::Result<()> {
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let mount = |d: &str| rootfs::mount(Some("overlay"), target, Some("overlay"), 0, Some(d));
    if discard {
        match mount(&format!("{data},volatile")) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            done => return done,
        }
    }
    mount(&data)
}

/// `lower` under a writable layer, assembled on the staging folder `s`:
/// the container's own layer (`upper`), or, where it has none, a private
/// one in a scratch tmpfs that holds just the mount points the root lacks
/// (the root is sealed read-only after; nothing is ever made in `lower`).
/// Returns the root's path.
fn layered(
    s: &Path,
    lower: &str,
    upper: Option<&(PathBuf, PathBuf)>,
    discard: bool,
) -> std::io::Result<PathBuf> {
    match upper {
        Some((u, w)) => {
            mount_overlay(s, lower, u, w, discard)?;
            Ok(s.to_path_buf())
        }
        None => {
            scratch(s, &["upper", "work", "root"])?;
            let root = s.join("root");
            mount_overlay(&root, lower, &s.join("upper"), &s.join("work"), discard)?;
            Ok(root)
        }
    }
}

/// A small private tmpfs on `at` with these folders: mount points of a
/// root assembled from layers.
fn scratch(at: &Path, dirs: &[&str]) -> std::io::Result<()> {
    rootfs::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=755,size=1m"),
    )?;
    for d in dirs {
        std::fs::create_dir(at.join(d))?;
    }
    Ok(())
}

/// Builds the new root on the staging directory and returns its path.
fn assemble_root(spec: &SandboxSpec) -> StepResult<PathBuf> {
    match &spec.root {
        Root::Dir(dir) => {
            let meta = std::fs::metadata(dir).map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    dir.display().to_string(),
                )
            })?;
            if !meta.is_dir() {
                return Err(errno_err(
                    "rootfs",
                    libc::ENOTDIR,
                    dir.display().to_string(),
                ));
            }
            rootfs::mount(
                Some(&dir.to_string_lossy()),
                &spec.staging,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    dir.display().to_string(),
                )
            })?;
            Ok(spec.staging.clone())
        }
        Root::Overlay { lowers, upper } => {
            let lower = lowers
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            match USERNS_LAYERS.get() {
                Some(l) => userns_overlay(&spec.staging, l, spec.discard_layer),
                None => layered(&spec.staging, &lower, upper.as_ref(), spec.discard_layer),
            }
            .map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    "image layers (overlayfs)",
                )
            })
        }
        Root::Image {
            file,
            fstype,
            upper,
            ..
        } => {
            let what = format!("{fstype} image {}", file.display());
            let fail = |e: std::io::Error| {
                errno_err("rootfs", e.raw_os_error().unwrap_or(0), what.clone())
            };
            // Attached by the stage, before this process was in the
            // container's device cgroup (which then allows just that device).
            let dev = LOOP_DEV
                .get()
                .ok_or_else(|| fail(std::io::Error::from_raw_os_error(libc::ENXIO)))?
                .to_string_lossy()
                .into_owned();
            // The image below the container's own layer (or, read-only, a
            // scratch one for mount points): a small private tmpfs holds the
            // mount points.
            let s = &spec.staging;
            scratch(s, &["lower", "root", "upper", "work"]).map_err(fail)?;
            rootfs::mount(
                Some(&dev),
                &s.join("lower"),
                Some(fstype),
                libc::MS_RDONLY,
                None,
            )
            .map_err(fail)?;
            let (u, w) = match upper {
                Some((u, w)) => (u.clone(), w.clone()),
                None => (s.join("upper"), s.join("work")),
            };
            let lower = s.join("lower").display().to_string();
            mount_overlay(&s.join("root"), &lower, &u, &w, spec.discard_layer).map_err(fail)?;
            Ok(s.join("root"))
        }
        Root::Host => {
            // The host's root read-only under a small private tmpfs layer, so
            // that mount points can be made without touching the host.
            layered(&spec.staging, "/", None, false).map_err(|e| {
                errno_err(
                    "rootfs",
                    e.raw_os_error().unwrap_or(0),
                    "overlay of the host's /",
                )
            })
        }
    }
}

/// The root's own mount flags: `nodev` always (device nodes exist only as
/// the runtime's bind mounts, so a node made inside can never be opened,
/// cgroup v2 or not), read-only when asked (always for the host's root).
fn seal_root(root: &Path, read_only: bool) -> StepResult<()> {
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    rootfs::remount_keeping_locked(root, flags).map_err(|e| {
        errno_err(
            "rootfs flags",
            e.raw_os_error().unwrap_or(0),
            if read_only { "read-only" } else { "nodev" },
        )
    })
}

fn loopback_up() -> StepResult<()> {
    // SAFETY: a plain socket used only for the ioctls below, closed at the end.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(os_err("loopback", "socket"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req)
        } else {
            -1
        };
        let err = if r != 0 {
            Some(os_err("loopback", "up"))
        } else {
            None
        };
        libc::close(s);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn set_rlimits(spec: &SandboxSpec) -> StepResult<()> {
    for r in &spec.rlimits {
        let res = match rlimit_resource(&r.name) {
            Some(x) => x,
            None => return Err(errno_err("rlimit", libc::EINVAL, r.name.clone())),
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: r.hard.unwrap_or(libc::RLIM_INFINITY),
        };
        // SAFETY: lim is a valid struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let mut msg = r.name.clone();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: cur is valid for writes.
            if unsafe { libc::getrlimit(res, &mut cur) } == 0 && lim.rlim_max > cur.rlim_max {
                msg = format!(
                    "{}: raising the hard limit above {} needs CAP_SYS_RESOURCE, which rkstack does not have here",
                    r.name, cur.rlim_max
                );
            }
            return Err(os_err("rlimit", msg));
        }
    }
    Ok(())
}

pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// argv and envp, and the command resolved in the container's PATH (from
/// its environment, else the default).
pub(super) fn command_args(
    command: &[String],
    env: &[String],
) -> StepResult<(CString, Vec<CString>, Vec<CString>)> {
    let cmd = command
        .first()
        .ok_or_else(|| errno_err("exec", libc::EINVAL, "no command"))?;
    let path = if cmd.contains('/') {
        PathBuf::from(cmd)
    } else {
        let search = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        search
            .split(':')
            .map(|d| Path::new(d).join(cmd))
            .find(|p| {
                let c = rootfs::cstr(p);
                // SAFETY: c is NUL-terminated.
                unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
            })
            .ok_or_else(|| {
                errno_err(
                    "exec",
                    libc::ENOENT,
                    format!("{cmd} not found in PATH {search}"),
                )
            })?
    };
    let argv = command.iter().map(rootfs::cstr).collect();
    let mut envp: Vec<CString> = env.iter().map(rootfs::cstr).collect();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        envp.push(rootfs::cstr(format!("PATH={DEFAULT_PATH}")));
    }
    Ok((rootfs::cstr(&path), argv, envp))
}

/// Clean process state for exec: no blocked or ignored signals, and every fd
/// above 2 closed at exec (the channel too, which tells `__init` we made it).
pub(super) fn prepare_exec() -> StepResult<()> {
    // SAFETY: resetting our own signal state; plain syscalls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            return Err(os_err("close fds", "close_range"));
        }
    }
    Ok(())
}

/// A user spec for root, used where none is given.
pub fn root_user() -> UserSpec {
    UserSpec::Id {
        uid: 0,
        gid: Some(0),
    }
}
