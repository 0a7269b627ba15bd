//! `check` and `plan`: a stack file validated, and what applying it would do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rkstack::plan;

use super::{EXIT_INVALID, Global, load, with_client};

/// `rkstack check FILE`: exit 2 with every problem, or print what it is
/// (or its effective configuration, as JSON or as a stack file).
pub fn check(file: &Path, json: bool, effective: bool) -> anyhow::Result<ExitCode> {
    let stack = match load(file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // Seccomp profiles the file names, where they are here: a
    // profile that does not compile would stop its container.
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
