//! The loop's descriptors read into what happened: signals (signalfd) and
//! changes of the stack file (see [`super::watch`]).

use super::*;

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
}
