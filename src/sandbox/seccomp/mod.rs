//! Seccomp: a built-in profile equivalent to Docker's default (deny with
//! EPERM unless allowed; `clone3` answers ENOSYS so libcs fall back to
//! `clone`, whose namespace flags stay refused), and profiles in Docker/OCI
//! JSON. Profiles are compiled to BPF in the runtime, so a bad one fails
//! before anything starts; the child only loads the program.
//!
//! `default.rs` is rkstack's own profile (Docker's table and the vsock
//! guards), `docker.rs` reads Docker/OCI JSON profiles; both compile
//! through the helpers here.

mod default;
mod docker;

use std::collections::HashSet;
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

use super::channel::StepError;
use super::rootfs::{errno_err, os_err};
use super::spec::SeccompSpec;

pub use default::default_profile;
pub use docker::profile_file;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: cannot read it")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp profile {path}: not a Docker/OCI seccomp profile: {message}")]
    Parse { path: String, message: String },
    #[error("seccomp profile {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("seccomp: {0}")]
    Lib(String),
}

/// The architectures a filter must cover on this host: a 64-bit x86 host
/// also runs i386 code, and x32 code where its kernel has that ABI; an
/// arm64 host 32-bit arm code.
fn host_arches() -> Vec<ScmpArch> {
    match ScmpArch::native() {
        ScmpArch::X8664 if kernel_runs_x32() => {
            vec![ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]
        }
        ScmpArch::X8664 => vec![ScmpArch::X8664, ScmpArch::X86],
        ScmpArch::Aarch64 => vec![ScmpArch::Aarch64, ScmpArch::Arm],
        other => vec![other],
    }
}

/// Whether this kernel runs x32 system calls (most distributions build it
/// without: `CONFIG_X86_X32_ABI`). Where it does not, the x32 third of the
/// filter is left out: the kernel's time to load a filter (its JIT) grows
/// with its length, and the load is part of every start. Probed once, with
/// `getpid` under the x32 bit, which such a kernel answers ENOSYS. A
/// process already under a seccomp filter (rkstack in a container) does
/// not probe (the filter might kill it for it) and keeps x32 in.
pub fn kernel_runs_x32() -> bool {
    static RUNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RUNS.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return false;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let unfiltered = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .is_some_and(|v| v.trim() == "0");
        if !unfiltered {
            return true;
        }
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        // SAFETY: getpid takes no arguments and changes nothing.
        let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
        !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
    })
}

/// Adds the host's architectures to a filter. Without x32, a call under
/// the x32 bit would meet libseccomp's bad-architecture action (a kill):
/// it answers ENOSYS instead, as the kernel itself would.
fn add_host_arches(ctx: &mut ScmpFilterContext) -> Result<(), SeccompError> {
    let arches = host_arches();
    for a in &arches {
        if !ctx.is_arch_present(*a).map_err(lib)? {
            ctx.add_arch(*a).map_err(lib)?;
        }
    }
    if ScmpArch::native() == ScmpArch::X8664 && !arches.contains(&ScmpArch::X32) {
        ctx.set_act_badarch(ScmpAction::Errno(libc::ENOSYS))
            .map_err(lib)?;
    }
    Ok(())
}

/// A filter whose system call numbers are tested as a binary tree rather
/// than one after another. Loading a filter costs the kernel one run of it
/// per system call number and architecture (to cache which numbers are
/// always allowed): with a few hundred numbers tested in turn that was
/// most of two milliseconds of every container start; the tree also makes
/// every system call of the container cheaper to check. Needs libseccomp
/// 2.5; an older one keeps the plain order.
fn new_filter(default: ScmpAction) -> Result<ScmpFilterContext, SeccompError> {
    let mut ctx = ScmpFilterContext::new(default).map_err(lib)?;
    let _ = ctx.set_ctl_optimize(2);
    Ok(ctx)
}

fn lib(e: libseccomp::error::SeccompError) -> SeccompError {
    SeccompError::Lib(e.to_string())
}

fn add_names(
    ctx: &mut ScmpFilterContext,
    names: &[&str],
    action: ScmpAction,
) -> Result<(), SeccompError> {
    for name in names {
        // Unknown to every architecture of this libseccomp: nothing to allow.
        let Ok(sc) = ScmpSyscall::from_name(name) else {
            continue;
        };
        ctx.add_rule(action, sc).map_err(lib)?;
    }
    Ok(())
}

/// The filter as a BPF program (an array of `struct sock_filter`).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    use std::io::{Read, Seek};
    let name = std::ffi::CString::new("seccomp").unwrap_or_default();
    // SAFETY: name is NUL-terminated.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::Lib(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: a new fd that we own.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ctx.export_bpf(&f).map_err(lib)?;
    let mut out = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut out))
        .map_err(|e| SeccompError::Lib(e.to_string()))?;
    Ok(out)
}

/// In the child: loads the compiled program. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn apply(spec: &SeccompSpec) -> Result<(), StepError> {
    let prog = match spec {
        SeccompSpec::Unconfined => return Ok(()),
        SeccompSpec::Bpf(p) => p,
        SeccompSpec::Default => {
            return Err(errno_err("seccomp", libc::EINVAL, "profile not compiled"));
        }
    };
    let len = prog.len() / std::mem::size_of::<libc::sock_filter>();
    if len == 0 || len > usize::from(u16::MAX) {
        return Err(errno_err(
            "seccomp",
            libc::EINVAL,
            "empty or oversized program",
        ));
    }
    let fprog = libc::sock_fprog {
        len: len as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `len` filters inside `prog`, which lives across the call.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(os_err("seccomp", "load filter"));
    }
    Ok(())
}
