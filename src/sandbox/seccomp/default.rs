//! The default profile: Docker's table of allowed calls, the calls each
//! capability adds, and what is refused on top (namespace flags of clone,
//! `AF_VSOCK` for every ABI, i386's `socketcall(SYS_SOCKET)`).

use super::*;

/// Allowed to every container (Docker's default list, by name; names a
/// given architecture does not have are skipped for it).
pub(super) const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "chroot",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    "arch_prctl",
    "modify_ldt",
    "ptrace",
];

/// Allowed only to containers that hold the capability (as Docker does).
pub(super) const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// clone(2) flags that create namespaces.
pub(super) const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Compiles the built-in profile for a container holding `capabilities`.
pub fn default_profile(capabilities: &[String]) -> Result<Vec<u8>, SeccompError> {
    let caps: HashSet<&str> = capabilities.iter().map(String::as_str).collect();
    let mut ctx = new_filter(ScmpAction::Errno(libc::EPERM))?;
    add_host_arches(&mut ctx)?;
    add_names(&mut ctx, ALLOWED, ScmpAction::Allow)?;
    for (cap, names) in BY_CAPABILITY {
        if caps.contains(cap) {
            add_names(&mut ctx, names, ScmpAction::Allow)?;
        }
    }
    if !caps.contains("CAP_SYS_ADMIN") {
        // clone without namespace flags; clone3 cannot be filtered by its
        // flags (they are behind a pointer), so it answers ENOSYS.
        let clone = ScmpSyscall::from_name("clone").map_err(lib)?;
        ctx.add_rule_conditional(
            ScmpAction::Allow,
            clone,
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::MaskedEqual(CLONE_NS_FLAGS),
                0,
            )],
        )
        .map_err(lib)?;
        if let Ok(c3) = ScmpSyscall::from_name("clone3") {
            ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), c3)
                .map_err(lib)?;
        }
    }
    // mknod of files, fifos and sockets only: device nodes come from the
    // runtime (bind-mounted), never from inside, whatever the cgroup
    // version (cgroup v2 has no device files to refuse them).
    for (name, mode_arg) in [("mknod", 1u32), ("mknodat", 2u32)] {
        let Ok(sc) = ScmpSyscall::from_name(name) else {
            continue;
        };
        for kind in [
            0u64,
            libc::S_IFREG as u64,
            libc::S_IFIFO as u64,
            libc::S_IFSOCK as u64,
        ] {
            ctx.add_rule_conditional(
                ScmpAction::Allow,
                sc,
                &[ScmpArgCompare::new(
                    mode_arg,
                    ScmpCompareOp::MaskedEqual(libc::S_IFMT as u64),
                    kind,
                )],
            )
            .map_err(lib)?;
        }
    }
    refuse_vsock(&mut ctx)?;
    // personality: only the harmless personas (Linux, 32-bit, unknown query).
    let pers = ScmpSyscall::from_name("personality").map_err(lib)?;
    for v in [0x0u64, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        ctx.add_rule_conditional(
            ScmpAction::Allow,
            pers,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, v)],
        )
        .map_err(lib)?;
    }
    export(&ctx).map(i386_socket_guard)
}

/// `AF_VSOCK`: on a VM guest it reaches the hypervisor's services.
pub(super) const AF_VSOCK: u64 = 40;

/// socketcall(2)'s call number of socket(2).
pub(super) const SYS_SOCKET: u64 = 1;

/// socket(2) of every family but `AF_VSOCK` (as Docker's profile since
/// 2022), for every ABI. See [`i386_socket_guard`] for i386's socketcall.
pub(super) fn refuse_vsock(ctx: &mut ScmpFilterContext) -> Result<(), SeccompError> {
    let socket = ScmpSyscall::from_name("socket").map_err(lib)?;
    ctx.add_rule_conditional(
        ScmpAction::Allow,
        socket,
        &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, AF_VSOCK)],
    )
    .map_err(lib)?;
    Ok(())
}

/// `AUDIT_ARCH_I386`.
pub(super) const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// i386's socketcall(2).
pub(super) const I386_SOCKETCALL: u32 = 102;

/// `prog` with a guard in front: i386's socketcall(`SYS_SOCKET`) answers
/// EPERM. socketcall passes socket(2)'s family behind a pointer that no
/// filter can read, and libseccomp turns every rule on socket(2) into
/// that call allowed whatever the family (with no way to say otherwise),
/// which let an i386 program make an `AF_VSOCK` socket. i386 programs
/// built for Linux 4.3 or later use the direct socket call, which the
/// rule above checks; every other socketcall (bind, connect, ...) goes on
/// to the program. Written by hand, as six classic BPF instructions,
/// because libseccomp cannot express it (see docs/design.md).
pub(super) fn i386_socket_guard(prog: Vec<u8>) -> Vec<u8> {
    if !cfg!(target_arch = "x86_64") {
        return prog;
    }
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    // struct seccomp_data: nr at 0, arch at 4, args[0] at 16 (its low
    // half first: x86 is little-endian).
    let guard: [(u16, u8, u8, u32); 7] = [
        (LD_W_ABS, 0, 0, 4),
        (JEQ_K, 0, 5, AUDIT_ARCH_I386),
        (LD_W_ABS, 0, 0, 0),
        (JEQ_K, 0, 3, I386_SOCKETCALL),
        (LD_W_ABS, 0, 0, 16),
        (JEQ_K, 0, 1, SYS_SOCKET as u32),
        (RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let mut out = Vec::with_capacity(guard.len() * 8 + prog.len());
    for (code, jt, jf, k) in guard {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    // The compiled program starts by loading the architecture itself, so
    // it runs as it would alone.
    out.extend_from_slice(&prog);
    out
}

// ----------------------------------------------------------- profile files
