//! The seam between the supervisor's decisions and the kernel: everything
//! `up` does to a container's processes and cgroup goes through
//! [`Launcher`]. [`super::linux::LinuxLauncher`] does it for real; the
//! supervisor's unit tests drive it with an in-memory fake.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::sandbox::Stdio3;
use crate::sandbox::cgroup::{Limits, Usage};
use crate::sandbox::spec::{ExecSpec, SandboxSpec};

/// What a start needs, decided by the supervisor.
pub struct Start<'a> {
    pub name: &'a str,
    pub limits: &'a Limits,
    /// Device rules beyond the default allow-list (`b 7:0 r`, ...).
    pub devices: &'a [String],
    pub spec: SandboxSpec,
    pub stdio: Stdio3,
    /// Called once the process is in its namespaces, before it runs
    /// anything of the container (its network is set up there).
    pub attach: Option<&'a mut dyn FnMut(i32) -> Result<(), String>>,
}

impl std::fmt::Debug for Start<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start").field("name", &self.name).finish()
    }
}

/// A started container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub pid: i32,
    /// Whether its cgroup held processes of an instance nobody recorded
    /// (a supervisor that died before it could): they were ended first.
    pub ended_unrecorded: bool,
}

/// Container processes and cgroups, by container name.
pub trait Launcher {
    /// Gets `name`'s cgroup ready to be used (in every hierarchy).
    fn admit(&mut self, name: &str);
    /// The `cgroup.procs` files a process of `name` joins.
    fn procs_files(&self, name: &str) -> Vec<PathBuf>;
    /// Makes its cgroup (ending what an unrecorded instance left there),
    /// applies the limits and devices, starts the sandbox.
    fn start(&mut self, req: Start<'_>) -> Result<Started, String>;
    /// Runs a process in a running container (exec, health checks).
    fn exec(&mut self, spec: &ExecSpec, stdio: Stdio3) -> Result<i32, String>;
    /// Sends `signal` to `pid` (a container's first process, a check).
    fn signal(&mut self, pid: i32, signal: i32);
    /// Kills whatever is left in `name`'s cgroup; whether anything was.
    fn kill_leftovers(&mut self, name: &str) -> bool;
    /// Writes new limits to a running container's cgroup.
    fn update_limits(&mut self, name: &str, limits: &Limits) -> Result<(), String>;
    /// What `name` uses now.
    fn usage(&self, name: &str) -> Usage;
    /// OOM kills its cgroup has counted.
    fn oom_kills(&self, name: &str) -> u64;
    /// Kills what is left and removes its cgroup.
    fn destroy(&mut self, name: &str);
    /// When `pid` started (clock ticks since boot), to tell it from a
    /// reused pid; `None` when it does not run.
    fn starttime(&self, pid: i32) -> Option<u64>;
    /// Whether `pid` runs, is not a zombie, and started at `starttime`.
    fn alive(&self, pid: i32, starttime: u64) -> bool;
    /// A descriptor that becomes readable when `pid` (not our child) ends.
    fn pidfd(&self, pid: i32) -> Option<OwnedFd>;
}
