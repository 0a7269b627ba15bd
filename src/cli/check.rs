//! `check` and `plan`: a stack file validated, and what applying it would do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rkstack::plan;

use super::{EXIT_INVALID, Global, load, with_client};

/// `rkstack check FILE`: exit 2 with every problem, or print what it is
/// (or its effective configuration, as JSON or as a stack file). What this
/// host lacks for it is a warning (files are often checked on another
/// machine than the device), an error with `strict`.
pub fn check(file: &Path, json: bool, effective: bool, strict: bool) -> anyhow::Result<ExitCode> {
    let stack = match load(file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // Seccomp profiles the file names, where they are here: a profile
    // that does not compile would stop its container (an error of the
    // file's, wherever it is checked).
    let bad: Vec<String> = stack
        .containers
        .values()
        .filter_map(rkstack::container::lower::seccomp_problem)
        .collect();
    if !bad.is_empty() {
        for b in &bad {
            eprintln!("{}: {b}", file.display());
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let host: Vec<String> = stack.containers.values().flat_map(host_problems).collect();
    for p in &host {
        let level = if strict { "error" } else { "warning" };
        eprintln!("{}: {level}: on this host: {p}", file.display());
    }
    if strict && !host.is_empty() {
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rkstack::config::render::stack(&stack))?;
        writeln!(out)?;
    } else if effective {
        write!(out, "{}", rkstack::config::render::to_toml(&stack))?;
    } else {
        writeln!(out, "ok: {}", stack.summary())?;
        let needs = stack.device_needs();
        if !needs.is_empty() {
            writeln!(out, "the device needs: {}", needs.join("; "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rkstack plan FILE`: against the running supervisor of that stack, or
/// against nothing.
pub fn plan(global: &Global, file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let stack = match load(&file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // A running supervisor of this stack plans against what runs.
    let running = global.socket.is_some()
        || rkstack::host::stacks::running(&global.state_dir)
            .iter()
            .any(|r| r.name == stack.name.as_str());
    if running {
        let name = stack.name.to_string();
        return Ok(with_client(global, Some(&name), |c| {
            super::ctl::plan(c, &file, json)
        }));
    }
    let ids = rkstack::container::images::ids(&stack, &global.data_dir);
    // Until a supervisor runs, the stack is planned against nothing.
    let (_, p) = plan::for_stack(stack, &ids, &plan::ObservedState::default());
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &p)?;
        writeln!(out)?;
    } else {
        write!(out, "{p}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `c` needs of this host and does not find (see
/// [`rkstack::supervisor::preflight::problems`]), and a `user` name its
/// `dir:` rootfs does not list (read as a bounded regular file: never a
/// FIFO or a device, whatever the rootfs holds).
fn host_problems(c: &rkstack::config::Container) -> Vec<String> {
    let mut out = rkstack::supervisor::preflight::problems(c);
    if let (
        rkstack::config::ImageRef::Dir { path },
        Some(rkstack::config::User::Name { name, .. }),
    ) = (&c.image, &c.user)
    {
        let passwd = path.join("etc/passwd");
        match rkstack::bounded::read_regular(&passwd, 4 << 20) {
            Ok(text) => {
                let text = String::from_utf8_lossy(&text);
                if !text
                    .lines()
                    .any(|l| l.split(':').next() == Some(name.as_str()))
                {
                    out.push(format!(
                        "{}: user {name:?} is not in {}",
                        c.name,
                        passwd.display()
                    ));
                }
            }
            Err(e) => out.push(format!("{}: {}: {e}", c.name, passwd.display())),
        }
    }
    out
}
