//! The `rkstack` binary: the sandbox's init stage, the PID-1 prologue,
//! then the command line (`cli/`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    // The sandbox's init stage: before anything else, still single-threaded.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        rkstack::sandbox::init::main();
    }
    // The machine's init: mount what is missing, take Ctrl-Alt-Del as a
    // signal, and never exit (see the end).
    let init = rkstack::supervisor::pid1::is_init();
    if init {
        for line in rkstack::supervisor::pid1::mount_basics() {
            eprintln!("rkstack: {line}");
        }
        // SAFETY: plain syscall; Ctrl-Alt-Del then sends SIGINT to us.
        unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
    }
    let code = cli::main();
    if init {
        if code == ExitCode::SUCCESS {
            rkstack::supervisor::pid1::finish();
        }
        rkstack::supervisor::pid1::idle();
    }
    code
}
