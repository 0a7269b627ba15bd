//! The loop's descriptors read into what happened: signals (signalfd) and
//! changes of the stack file (see [`super::watch`]).

use super::*;

impl Supervisor {
    pub(super) fn read_signals(&self) -> Vec<i32> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.signal_fd.read_signal() {
            out.push(info.ssi_signo as i32);
        }
        out
    }
}
