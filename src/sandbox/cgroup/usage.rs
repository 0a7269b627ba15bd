//! What a container's cgroup uses and saw: memory, CPU time, processes,
//! out-of-memory kills.

use super::{Cgroup, Layout};

/// Resources a cgroup uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub pids: Option<u64>,
}

/// Open accounting files of one cgroup (see [`Cgroup::usage_reader`]).
#[derive(Debug)]
pub struct UsageReader {
    v2: bool,
    memory: Option<std::fs::File>,
    cpu: Option<std::fs::File>,
    pids: Option<std::fs::File>,
}

impl UsageReader {
    /// Reads the files again from their start (cgroup files answer each
    /// read afresh). `None` where a file cannot be read (the cgroup went).
    pub fn read(&self) -> Usage {
        use std::os::unix::fs::FileExt;
        let text = |f: &Option<std::fs::File>| -> Option<String> {
            let mut buf = [0u8; 1024];
            let n = f.as_ref()?.read_at(&mut buf, 0).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        let num = |t: Option<String>| t.and_then(|t| t.trim().parse::<u64>().ok());
        let cpu = text(&self.cpu);
        Usage {
            memory_bytes: num(text(&self.memory)),
            cpu_seconds: if self.v2 {
                cpu.and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .map(|us| us as f64 / 1e6)
                })
            } else {
                num(cpu).map(|ns| ns as f64 / 1e9)
            },
            pids: num(text(&self.pids)),
        }
    }
}

/// What the cgroup saw of the process's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    pub oom_kills: u64,
}

impl Cgroup {
    /// OOM kills seen by the cgroup so far.
    pub fn events(&self) -> Events {
        let file = match self.layout {
            Layout::V2 { .. } => "memory.events",
            Layout::V1 { .. } => "memory.oom_control",
        };
        let text = self
            .dir_of("memory")
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .unwrap_or_default();
        let oom_kills = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0);
        Events { oom_kills }
    }

    /// An open handle on the cgroup's accounting files, for reading its
    /// usage often (no path lookups after the first).
    pub fn usage_reader(&self) -> UsageReader {
        let open = |controller: &str, file: &str| {
            self.dir_of(controller)
                .and_then(|d| std::fs::File::open(d.join(file)).ok())
        };
        match self.layout {
            Layout::V2 { .. } => UsageReader {
                v2: true,
                memory: open("memory", "memory.current"),
                cpu: open("cpu", "cpu.stat"),
                pids: open("pids", "pids.current"),
            },
            Layout::V1 { .. } => UsageReader {
                v2: false,
                memory: open("memory", "memory.usage_in_bytes"),
                cpu: open("cpuacct", "cpuacct.usage"),
                pids: open("pids", "pids.current"),
            },
        }
    }

    /// What the cgroup uses now (what a controller does not account is `None`).
    pub fn usage(&self) -> Usage {
        self.usage_reader().read()
    }
}
