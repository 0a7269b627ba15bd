//! An in-memory [`Launcher`] for the supervisor's unit tests: starts hand
//! out pids, signals and destroys are recorded; nothing touches the OS.
//! The test keeps a [`FakeHandle`] to look and to steer.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;

use super::launcher::{Launcher, Start, Started};
use crate::sandbox::Stdio3;
use crate::sandbox::cgroup::{Limits, Usage};
use crate::sandbox::spec::ExecSpec;

/// What the fake did, and what it is told to do.
#[derive(Debug, Default)]
pub struct FakeState {
    pub next_pid: i32,
    /// Every start, in order: (container, pid).
    pub starts: Vec<(String, i32)>,
    /// Every signal sent: (pid, signal).
    pub signals: Vec<(i32, i32)>,
    /// Every exec (health checks and exec requests): their pids.
    pub execs: Vec<i32>,
    pub destroyed: Vec<String>,
    /// Limits written by updates, per container.
    pub limits: BTreeMap<String, Limits>,
    /// Containers whose start fails (with this error).
    pub fail_start: BTreeMap<String, String>,
    /// OOM kills counted per container.
    pub oom: BTreeMap<String, u64>,
    /// Processes that run now (adoption asks): pid → start time.
    pub alive: BTreeMap<i32, u64>,
    /// Containers whose cgroup held an unrecorded instance.
    pub leftovers: BTreeSet<String>,
}

/// The test's view of a [`FakeLauncher`].
pub type FakeHandle = Rc<RefCell<FakeState>>;

#[derive(Debug)]
pub struct FakeLauncher(pub FakeHandle);

impl FakeLauncher {
    pub fn new() -> (FakeLauncher, FakeHandle) {
        let state = Rc::new(RefCell::new(FakeState {
            next_pid: 1000,
            ..Default::default()
        }));
        (FakeLauncher(state.clone()), state)
    }
}

impl FakeState {
    /// The pids the container was started with, oldest first.
    pub fn pids_of(&self, name: &str) -> Vec<i32> {
        self.starts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .collect()
    }

    /// The signals `pid` was sent.
    pub fn signals_to(&self, pid: i32) -> Vec<i32> {
        self.signals
            .iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, s)| *s)
            .collect()
    }
}

impl Launcher for FakeLauncher {
    fn admit(&mut self, _name: &str) {}

    fn procs_files(&self, _name: &str) -> Vec<PathBuf> {
        Vec::new()
    }

    fn start(&mut self, req: Start<'_>) -> Result<Started, String> {
        let mut s = self.0.borrow_mut();
        if let Some(e) = s.fail_start.get(req.name) {
            return Err(e.clone());
        }
        s.next_pid += 1;
        let pid = s.next_pid;
        if let Some(attach) = req.attach {
            attach(pid)?;
        }
        s.starts.push((req.name.to_string(), pid));
        s.alive.insert(pid, pid as u64);
        let ended_unrecorded = s.leftovers.remove(req.name);
        Ok(Started {
            pid,
            ended_unrecorded,
        })
    }

    fn exec(&mut self, _spec: &ExecSpec, _stdio: Stdio3) -> Result<i32, String> {
        let mut s = self.0.borrow_mut();
        s.next_pid += 1;
        let pid = s.next_pid;
        s.execs.push(pid);
        Ok(pid)
    }

    fn signal(&mut self, pid: i32, signal: i32) {
        self.0.borrow_mut().signals.push((pid, signal));
    }

    fn kill_leftovers(&mut self, name: &str) -> bool {
        self.0.borrow_mut().leftovers.remove(name)
    }

    fn update_limits(&mut self, name: &str, limits: &Limits) -> Result<(), String> {
        self.0
            .borrow_mut()
            .limits
            .insert(name.to_string(), limits.clone());
        Ok(())
    }

    fn usage(&self, _name: &str) -> Usage {
        Usage::default()
    }

    fn oom_kills(&self, name: &str) -> u64 {
        self.0.borrow().oom.get(name).copied().unwrap_or(0)
    }

    fn destroy(&mut self, name: &str) {
        self.0.borrow_mut().destroyed.push(name.to_string());
    }

    fn starttime(&self, pid: i32) -> Option<u64> {
        self.0.borrow().alive.get(&pid).copied()
    }

    fn alive(&self, pid: i32, starttime: u64) -> bool {
        self.0.borrow().alive.get(&pid) == Some(&starttime)
    }

    fn pidfd(&self, _pid: i32) -> Option<OwnedFd> {
        None
    }
}
