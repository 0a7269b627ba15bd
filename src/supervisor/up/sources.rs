//! The loop's descriptors read into what happened: signals (signalfd) and
//! changes of the stack file's folder (inotify).

use super::*;

/// Watches the stack file's folder: editors save by rename.
pub(super) fn watch(file: &Path) -> (Option<OwnedFd>, Option<std::ffi::OsString>) {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return (None, None);
    }
    // SAFETY: new fd, ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c =
        CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())).unwrap_or_default();
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE;
    // SAFETY: valid fd and NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
        return (None, None);
    }
    (Some(fd), file.file_name().map(|n| n.to_os_string()))
}

impl Supervisor {
    pub(super) fn read_signals(&self) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            // SAFETY: a zeroed buffer the kernel fills.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading one record into info.
            let n = unsafe {
                libc::read(
                    self.signal_fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n <= 0 {
                return out;
            }
            out.push(info.ssi_signo as i32);
        }
    }

    pub(super) fn file_changed(&self) -> bool {
        let Some(fd) = &self.inotify else {
            return false;
        };
        let mut buf = [0u8; 4096];
        let mut hit = false;
        loop {
            // SAFETY: buf valid for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return hit;
            }
            let mut off = 0usize;
            while off + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with any alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_start = off + std::mem::size_of::<libc::inotify_event>();
                let name_end = (name_start + ev.len as usize).min(n as usize);
                let raw = &buf[name_start..name_end];
                let name = raw.split(|b| *b == 0).next().unwrap_or(&[]);
                if self
                    .file_name
                    .as_ref()
                    .is_some_and(|f| std::os::unix::ffi::OsStrExt::as_bytes(f.as_os_str()) == name)
                {
                    hit = true;
                }
                off = name_end;
            }
        }
    }
}
