//! The supervisor's children, by pid: container processes, health checks,
//! `exec` processes and image pulls — one map, so a child's end is told
//! apart by one lookup whatever it was.

use std::collections::BTreeMap;

use super::pulls::PullJob;

/// What a child process of the supervisor is.
pub(super) enum Child {
    /// A container's first process.
    Container(String),
    /// A health check of this container.
    Check(String),
    /// An `exec` request's process: who waits for its wait status, the
    /// container it runs in and that cgroup's OOM kills when it began.
    Exec {
        waiter: tokio::sync::oneshot::Sender<i32>,
        container: String,
        oom_base: u64,
    },
    /// A `rkstack pull` in the background.
    Pull(PullJob),
    /// A bundle being taken in (checked, its images into the store) for
    /// an apply.
    Receive(super::staging::ReceiveJob),
}

#[derive(Default)]
pub(super) struct Children(BTreeMap<i32, Child>);

impl Children {
    pub(super) fn insert(&mut self, pid: i32, child: Child) {
        self.0.insert(pid, child);
    }

    /// The child `pid` was, now that it ended (or `None`: an orphan of a
    /// container re-parented to us). Containers adopted from a crashed
    /// supervisor are not our children: their end comes through a pidfd.
    pub(super) fn remove(&mut self, pid: i32) -> Option<Child> {
        self.0.remove(&pid)
    }

    /// The container whose health check `pid` is.
    pub(super) fn check_of(&self, pid: i32) -> Option<&str> {
        match self.0.get(&pid) {
            Some(Child::Check(name)) => Some(name),
            _ => None,
        }
    }

    /// Whether a health check of `name` runs now.
    pub(super) fn checking(&self, name: &str) -> bool {
        self.0
            .values()
            .any(|c| matches!(c, Child::Check(n) if n == name))
    }

    /// Whether a pull of `image` is under way.
    pub(super) fn pulling(&self, image: &str) -> bool {
        self.0
            .values()
            .any(|c| matches!(c, Child::Pull(p) if p.image == image))
    }

    /// The pulls under way, taken out (the stack stops).
    pub(super) fn take_pulls(&mut self) -> Vec<(i32, PullJob)> {
        let pids: Vec<i32> = self
            .0
            .iter()
            .filter(|(_, c)| matches!(c, Child::Pull(_)))
            .map(|(p, _)| *p)
            .collect();
        pids.into_iter()
            .filter_map(|p| match self.0.remove(&p) {
                Some(Child::Pull(job)) => Some((p, job)),
                _ => None,
            })
            .collect()
    }
}
