//! The machine around rkstack, as `up`, `run` and the other commands all
//! need it: the stack lock, the stacks running here, their state files.

pub mod generations;
pub mod journal;
pub mod lockfile;
pub mod namelock;
pub mod stacks;
pub mod state_file;

/// Runs `test` of this test binary in another process with `env` set, and
/// reads what it printed: `probe: free` (true) or `probe: held` (false);
/// `None` if it could not be asked.
#[cfg(test)]
pub(crate) fn probe_in_another_process(
    test: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> Option<bool> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture"])
        .envs(env.iter().copied())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("probe: free") {
        Some(true)
    } else if text.contains("probe: held") {
        Some(false)
    } else {
        None
    }
}
