//! [`Launcher`] on Linux: cgroups of the machine's layout under the
//! stack's base, sandboxes from [`crate::sandbox`], `/proc` for pids.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use super::launcher::{Launcher, Start, Started};
use crate::sandbox::Stdio3;
use crate::sandbox::cgroup::{Cgroup, Layout, Limits, Usage, UsageReader};
use crate::sandbox::spec::ExecSpec;

#[derive(Debug)]
pub struct LinuxLauncher {
    layout: Layout,
    /// Where the containers' cgroups go under each hierarchy's root.
    base: PathBuf,
    cgroups: BTreeMap<String, Cgroup>,
    /// Open accounting files, per container, while its cgroup lasts.
    readers: RefCell<BTreeMap<String, UsageReader>>,
}

impl LinuxLauncher {
    pub fn new(layout: Layout, base: PathBuf) -> LinuxLauncher {
        LinuxLauncher {
            layout,
            base,
            cgroups: BTreeMap::new(),
            readers: RefCell::new(BTreeMap::new()),
        }
    }

    fn cgroup(&self, name: &str) -> Cgroup {
        self.cgroups
            .get(name)
            .cloned()
            .unwrap_or_else(|| Cgroup::new(self.layout.clone(), self.base.join(name)))
    }
}

impl Launcher for LinuxLauncher {
    fn admit(&mut self, name: &str) {
        let cg = Cgroup::new(self.layout.clone(), self.base.join(name));
        self.cgroups.insert(name.to_string(), cg);
    }

    fn procs_files(&self, name: &str) -> Vec<PathBuf> {
        self.cgroup(name).procs_files()
    }

    fn start(&mut self, req: Start<'_>) -> Result<Started, String> {
        let cg = self.cgroup(req.name);
        let new = cg.create().map_err(|e| e.to_string())?;
        // A group that was there may hold what a killed supervisor left.
        let ended_unrecorded = !new && cg.kill_all();
        cg.configure(req.limits, req.devices, new)
            .map_err(|e| e.to_string())?;
        // A new run reads its own files (the cgroup may be new).
        self.readers.borrow_mut().remove(req.name);
        let pid = match req.attach {
            Some(attach) => crate::sandbox::spawn_prepared(&req.spec, req.stdio, attach),
            None => crate::sandbox::spawn(&req.spec, req.stdio),
        }
        .map_err(|e| e.to_string())?;
        Ok(Started {
            pid,
            ended_unrecorded,
        })
    }

    fn exec(&mut self, spec: &ExecSpec, stdio: Stdio3) -> Result<i32, String> {
        crate::sandbox::exec(spec, stdio).map_err(|e| e.to_string())
    }

    fn signal(&mut self, pid: i32, signal: i32) {
        // SAFETY: signalling a process the supervisor started or adopted.
        unsafe { libc::kill(pid, signal) };
    }

    fn kill_leftovers(&mut self, name: &str) -> bool {
        self.cgroup(name).kill_all()
    }

    fn update_limits(&mut self, name: &str, limits: &Limits) -> Result<(), String> {
        self.cgroup(name).apply(limits).map_err(|e| e.to_string())
    }

    fn usage(&self, name: &str) -> Usage {
        let mut readers = self.readers.borrow_mut();
        let reader = readers
            .entry(name.to_string())
            .or_insert_with(|| self.cgroup(name).usage_reader());
        let u = reader.read();
        if u.memory_bytes.is_none() && u.pids.is_none() {
            // The cgroup was made anew since: open its files again.
            *reader = self.cgroup(name).usage_reader();
            reader.read()
        } else {
            u
        }
    }

    fn oom_kills(&self, name: &str) -> u64 {
        self.cgroup(name).events().oom_kills
    }

    fn destroy(&mut self, name: &str) {
        self.readers.borrow_mut().remove(name);
        let _ = self.cgroup(name).destroy();
    }

    fn starttime(&self, pid: i32) -> Option<u64> {
        stat(pid).map(|(_, started)| started)
    }

    fn alive(&self, pid: i32, starttime: u64) -> bool {
        // A process that has ended but was not reaped yet (its parent died
        // with the previous supervisor) is no container to adopt.
        stat(pid).is_some_and(|(state, started)| {
            !matches!(state, 'Z' | 'X' | 'x') && started == starttime
        })
    }

    fn pidfd(&self, pid: i32) -> Option<OwnedFd> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new fd that we own.
        Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// From `/proc/PID/stat`: the state (field 3) and when the process started
/// (field 22, clock ticks since boot; a pid with another start time is
/// another process).
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command, which may hold spaces and parentheses.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}
