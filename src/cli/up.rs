//! `rkstack up`: the stack's supervisor, in the foreground or detached
//! (`-d`), with its API; and `unit-stopped`, systemd's step after it.

use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_INVALID, Global, UpArgs, load};

/// `rkstack up FILE`: runs until SIGTERM or `down` (or, with `-d`,
/// returns once the stack is up).
pub fn up(global: &Global, args: UpArgs) -> anyhow::Result<ExitCode> {
    let UpArgs {
        file,
        detach,
        attach,
        wait_timeout,
        listen,
        tls_cert,
        tls_key,
        client_ca,
        trusted_keys,
    } = args;
    // Problems in the file are reported like `check` does, exit 2.
    let stack = match load(&file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let file = std::path::absolute(&file).unwrap_or(file);
    // Remote access is checked before anything starts.
    #[cfg(feature = "remote")]
    let remote = match listen {
        Some(l) => {
            match rkstack::api::remote::prepare(&rkstack::api::remote::ListenOptions {
                listen: l,
                cert: tls_cert,
                key: tls_key,
                client_ca,
                token_file: global.token_file.clone(),
            }) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("rkstack: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            }
        }
        None => None,
    };
    #[cfg(not(feature = "remote"))]
    if listen.is_some() || tls_cert.is_some() || tls_key.is_some() || client_ca.is_some() {
        eprintln!("rkstack: --listen: this build has no remote access (the `remote` feature)");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let opts = rkstack::supervisor::up::UpOptions {
        insecure_registries: global.insecure_registries.clone(),
        file,
        state_dir: global.state_dir.clone(),
        data_dir: global.data_dir.clone(),
        attach,
        trusted_keys,
    };
    let wait = match wait_timeout
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .or_else(|_| {
            wait_timeout
                .parse::<rkstack::config::Duration>()
                .map(|d| d.0)
        }) {
        Ok(d) => d,
        Err(_) => {
            eprintln!(
                "rkstack: --wait-timeout {wait_timeout}: expected seconds or a duration like 90s or 5m"
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let ready = if detach {
        let log = global
            .data_dir
            .join(stack.name.as_str())
            .join("supervisor.log");
        let socket = global.socket.clone().unwrap_or_else(|| {
            global
                .state_dir
                .join(format!("{}.sock", stack.name.as_str()))
        });
        match super::detach::detach_supervisor(&log, &socket, wait)? {
            super::detach::Detached::Parent(code) => return Ok(code),
            super::detach::Detached::Child(pipe) => {
                rkstack::supervisor::selflog::rotate_at(log.clone());
                Some(pipe)
            }
        }
    } else {
        None
    };
    let socket = global.socket.clone().unwrap_or_else(|| {
        global
            .state_dir
            .join(format!("{}.sock", stack.name.as_str()))
    });
    // The supervisor takes the stack's lock; a running one answers on
    // the socket too, so say so before touching it.
    let running = rkstack::host::stacks::running(&global.state_dir)
        .into_iter()
        .find(|r| r.name == stack.name.as_str());
    if let Some(r) = running {
        let e = rkstack::supervisor::up::UpError::AlreadyRunning {
            stack: r.name,
            pid: r.pid.map(|p| p.to_string()).unwrap_or_default(),
        };
        eprintln!("rkstack: {e}");
        if let Some(p) = &ready {
            p.tell(&format!("{}{e}", rkstack::supervisor::up::READY_EXITED));
        }
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let listener = match rkstack::api::server::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("API socket {}: {e}", socket.display());
            eprintln!("rkstack: {msg}");
            if let Some(r) = &ready {
                r.tell(&format!("{}{msg}", rkstack::supervisor::up::READY_EXITED));
            }
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let logs_dir = global.data_dir.join(stack.name.as_str()).join("logs");
    #[cfg(feature = "remote")]
    let tls = match remote {
        Some(r) => match std::net::TcpListener::bind(r.addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(l) => {
                let at = l.local_addr().map_or(r.addr, |a| a);
                tracing::info!("API over TLS on {at}");
                Some((l, r))
            }
            Err(e) => {
                let msg = format!("--listen {}: {e}", r.addr);
                eprintln!("rkstack: {msg}");
                if let Some(p) = &ready {
                    p.tell(&format!("{}{msg}", rkstack::supervisor::up::READY_EXITED));
                }
                return Ok(ExitCode::from(EXIT_FAILED));
            }
        },
        None => None,
    };
    let control = rkstack::api::server::control(
        listener,
        logs_dir,
        opts.file.clone(),
        #[cfg(feature = "remote")]
        tls,
    );
    let result = rkstack::supervisor::up::up_with(
        opts,
        rkstack::supervisor::up::Seams {
            launcher: |layout, base| Box::new(rkstack::container::LinuxLauncher::new(layout, base)),
            net: Box::new(rkstack::network::LinuxNet),
        },
        ready,
        Some(control),
    );
    let _ = std::fs::remove_file(&socket);
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("rkstack: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// `rkstack unit-stopped`: for rkstack@.service's ExecStopPost.
pub fn unit_stopped(g: &Global) -> anyhow::Result<ExitCode> {
    let Some(stack) = g.stack.clone() else {
        eprintln!("rkstack: unit-stopped needs --stack NAME");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let result = std::env::var("SERVICE_RESULT").unwrap_or_default();
    match rkstack::supervisor::unit::after_stop(&g.state_dir, &stack, &result) {
        Ok(done) => {
            eprintln!("rkstack: {stack}: {done}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("rkstack: {stack}: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}
