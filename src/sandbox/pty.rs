//! The terminal of an interactive `exec`, made inside the container as
//! runc and conmon make it: the process entering the container, once in
//! its mount namespace, opens the container's own `/dev/pts/ptmx`, so the
//! process gets `/dev/pts/N` of the container's devpts (`tty` names it,
//! programs that reopen their terminal find it) and nothing of the host's
//! devpts reaches the container. The master goes back to the runtime over
//! the unix socket that is this process's stdin, with `SCM_RIGHTS`; the
//! slave becomes stdin, stdout, stderr and the controlling terminal.
//!
//! The container's files are hostile: whatever `/dev/pts/ptmx` is, it is
//! opened without following a symlink and without waiting, and used only
//! when it is a pty multiplexer of a devpts file system; the runtime
//! checks the master it receives the same way ([`is_master`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::rootfs::{StepResult, errno_err, os_err};
use super::spec::TermSize;

/// `DEVPTS_SUPER_MAGIC` (linux/magic.h).
const DEVPTS_MAGIC: i64 = 0x1cd1;
/// `/dev/ptmx` and every devpts `ptmx` are character device 5:2.
const PTMX: (u32, u32) = (5, 2);
/// `TIOCGPTPEER` (Linux 4.13): the slave of a master, opened without a
/// path. Not in every libc crate's list for every target.
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// Whether `fd` is a file of a devpts file system that is character device
/// `major:minor` when `minor` is given, or has major `major` in
/// `majors` when not (pty slaves: 136–143).
fn on_devpts(fd: BorrowedFd<'_>, want: impl Fn(u32, u32) -> bool) -> bool {
    let Ok(fs) = nix::sys::statfs::fstatfs(fd) else {
        return false;
    };
    // The type's width differs between targets (i64, i32, u32).
    #[allow(clippy::unnecessary_cast)]
    if fs.filesystem_type().0 as i64 != DEVPTS_MAGIC {
        return false;
    }
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return false;
    };
    (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
        && want(libc::major(st.st_rdev), libc::minor(st.st_rdev))
}

/// Whether `fd` is a pty master of a devpts instance (opened from its
/// `ptmx`).
pub fn is_master(fd: BorrowedFd<'_>) -> bool {
    on_devpts(fd, |ma, mi| (ma, mi) == PTMX)
}

/// Makes the terminal (see the module's text). Runs in the process that
/// enters the container, before it takes the container's user; `owner`
/// is the uid and gid it will have, who then owns the slave (as a login
/// owns its terminal).
pub(super) fn take(size: TermSize, owner: (u32, u32)) -> StepResult<()> {
    let master = open_ptmx()?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK with a pointer to an int; unlocks the slave.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(os_err("terminal", "unlock the pty"));
    }
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize it is given.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(os_err("terminal", "window size"));
    }
    let slave = open_slave(&master)?;
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(owner.0)),
        Some(nix::unistd::Gid::from_raw(owner.1)),
    )
    .map_err(|e| errno_err("terminal", e as i32, "owner of the pty"))?;
    send_master(master.as_fd())?;
    drop(master);
    for std in 0..3 {
        // SAFETY: dup2 of a descriptor we own onto the standard ones.
        if unsafe { libc::dup2(slave.as_raw_fd(), std) } < 0 {
            return Err(os_err("terminal", "stdio"));
        }
    }
    drop(slave);
    // SAFETY: a session of its own, with the terminal on stdin as its
    // controlling terminal.
    let r = unsafe {
        libc::setsid();
        libc::ioctl(0, libc::TIOCSCTTY, 0)
    };
    if r < 0 {
        return Err(os_err("terminal", "TIOCSCTTY"));
    }
    Ok(())
}

/// The container's `/dev/pts/ptmx`, when it is one.
fn open_ptmx() -> StepResult<OwnedFd> {
    let path = c"/dev/pts/ptmx";
    // SAFETY: a NUL-terminated path; the result is checked.
    let raw = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        )
    };
    if raw < 0 {
        return Err(os_err("terminal", "/dev/pts/ptmx"));
    }
    // SAFETY: a descriptor just opened that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if !is_master(fd.as_fd()) {
        return Err(errno_err(
            "terminal",
            libc::ENOTTY,
            "/dev/pts/ptmx of the container is not a devpts ptmx",
        ));
    }
    Ok(fd)
}

/// The slave of `master`: by `TIOCGPTPEER`, or on kernels before 4.13 by
/// its number under the container's `/dev/pts`, checked to be a devpts
/// slave.
fn open_slave(master: &OwnedFd) -> StepResult<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let raw = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    if raw >= 0 {
        // SAFETY: a descriptor just made that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty's number.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(os_err("terminal", "the pty's number"));
    }
    let path = super::rootfs::cstr(format!("/dev/pts/{n}"));
    // SAFETY: a NUL-terminated path; the result is checked.
    let raw = unsafe { libc::open(path.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_NONBLOCK) };
    if raw < 0 {
        return Err(os_err("terminal", format!("/dev/pts/{n}")));
    }
    // SAFETY: a descriptor just opened that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if !on_devpts(fd.as_fd(), |ma, _| (136..=143).contains(&ma)) {
        return Err(errno_err(
            "terminal",
            libc::ENOTTY,
            format!("/dev/pts/{n} is not a pty"),
        ));
    }
    // Blocking again, as a terminal's reader expects.
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_RDWR),
    )
    .map_err(|e| errno_err("terminal", e as i32, "pty flags"))?;
    Ok(fd)
}

/// Sends `master` to the runtime on stdin (a unix socket).
fn send_master(master: BorrowedFd<'_>) -> StepResult<()> {
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"T")];
    nix::sys::socket::sendmsg::<()>(0, &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None)
        .map_err(|e| errno_err("terminal", e as i32, "hand the pty to rkstack"))?;
    Ok(())
}

/// The master a process entering a container sent on `sock` (see
/// [`take`]), non-blocking; refused unless it is a devpts pty master.
pub fn receive_master(sock: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut got = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: descriptors the kernel just installed for us.
            got.extend(fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let master = got.into_iter().next().ok_or_else(|| {
        std::io::Error::other("the process entering the container sent no terminal")
    })?;
    if !is_master(master.as_fd()) {
        return Err(std::io::Error::other(
            "what the process entering the container sent is not a terminal",
        ));
    }
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A master and its slave from this machine's devpts, as [`take`]
    /// makes them in a container.
    fn pty() -> (OwnedFd, OwnedFd) {
        let master = open_ptmx().unwrap_or_else(|e| panic!("{e}"));
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK with a pointer to an int.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
        assert_eq!(r, 0);
        let slave = open_slave(&master).unwrap_or_else(|e| panic!("{e}"));
        (master, slave)
    }

    #[test]
    fn a_devpts_master_passes_and_other_files_do_not() {
        let (master, slave) = pty();
        assert!(is_master(master.as_fd()));
        assert!(!is_master(slave.as_fd()));
        assert!(on_devpts(slave.as_fd(), |ma, _| (136..=143).contains(&ma)));
        let f = std::fs::File::open("/dev/null").unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_master(f.as_fd()));
        // /dev/ptmx is a ptmx too, but not of a devpts (devtmpfs).
        let f = std::fs::File::open("/dev/ptmx").unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_master(f.as_fd()));
    }

    #[test]
    fn a_master_crosses_a_socket_and_anything_else_is_refused() {
        let (master, slave) = pty();
        let pair = || std::os::unix::net::UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        let send = |s: &std::os::unix::net::UnixStream, fd: BorrowedFd<'_>| {
            let fds = [fd.as_raw_fd()];
            let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
            let iov = [std::io::IoSlice::new(b"T")];
            nix::sys::socket::sendmsg::<()>(
                s.as_raw_fd(),
                &iov,
                &cmsg,
                nix::sys::socket::MsgFlags::empty(),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        };
        let (a, b) = pair();
        send(&a, master.as_fd());
        assert!(receive_master(b.as_fd()).is_ok());
        let (a, b) = pair();
        send(&a, slave.as_fd());
        let e = receive_master(b.as_fd()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("not a terminal")));
        // Nothing sent: an error at once, never a wait.
        let (_a, b) = pair();
        assert!(receive_master(b.as_fd()).is_err());
    }
}
