//! The container's first process, from its fork to its exec: the root,
//! the system mounts, the identity, limits, capabilities and seccomp.

use super::*;

/// The container's first process: PID 1 of its namespace. Returns only on failure.
pub(super) fn child(
    spec: &SandboxSpec,
    chan: &OwnedFd,
    tasks: Vec<(usize, OwnedFd)>,
    later: Vec<(usize, OwnedFd, PathBuf)>,
) -> StepError {
    if let Err(e) = super::clone::join_v1(tasks, &spec.cgroup_procs) {
        return e;
    }
    match setup(spec, chan, later) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

pub(super) enum Never {}

pub(super) fn setup(
    spec: &SandboxSpec,
    chan: &OwnedFd,
    later: Vec<(usize, OwnedFd, PathBuf)>,
) -> StepResult<Never> {
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
    after_pivot(spec, chan, later)
}

/// In the new root: waits for the cgroup (joining the groups made
/// meanwhile), then its own cgroup namespace, loopback, rlimits, and
/// becomes the container's command.
pub(super) fn after_pivot(
    spec: &SandboxSpec,
    chan: &OwnedFd,
    later: Vec<(usize, OwnedFd, PathBuf)>,
) -> StepResult<Never> {
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
    super::clone::join_v1_later(later, &spec.cgroup_procs)?;
    // Now in its own cgroup: that becomes the root of its cgroup namespace.
    // SAFETY: plain syscall.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(os_err("cgroup namespace", ""));
    }
    if spec.net == NetNs::New {
        loopback_up()?;
    }
    set_rlimits(&spec.rlimits)?;
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
pub(in crate::sandbox) struct Identity<'a> {
    pub user: &'a UserSpec,
    pub workdir: &'a Path,
    pub command: &'a [String],
    pub env: &'a [String],
    pub capabilities: &'a [String],
    pub no_new_privileges: bool,
    pub seccomp: &'a crate::sandbox::spec::SeccompSpec,
}

/// The last steps of every process rkstack starts in a container (its first
/// process and those run inside it later): user and groups, workdir, a clean
/// process state, then seccomp, capabilities and no_new_privs in the order
/// that lets each be set, and exec. Returns only on failure.
pub(in crate::sandbox) fn become_and_exec(
    id: &Identity<'_>,
    before_exec: impl FnOnce() -> StepResult<()>,
) -> StepError {
    match become_inner(id, before_exec) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

pub(super) fn become_inner(
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
pub(super) fn set_lsm_labels(spec: &SandboxSpec) -> StepResult<()> {
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

pub(super) fn loopback_up() -> StepResult<()> {
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

pub(in crate::sandbox) fn set_rlimits(
    rlimits: &[crate::sandbox::spec::RlimitSpec],
) -> StepResult<()> {
    for r in rlimits {
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

pub(super) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
