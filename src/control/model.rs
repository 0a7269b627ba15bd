//! What the supervisor tells of its containers: their state, how a run
//! ended, the row `ps` and `GET /v1/containers` show, and the figures
//! the metrics are made of. One rendering of each, shared by the API,
//! the CLI, the events and the log.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a container is in its life, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Declared, not set up yet (start-up has not reached it).
    Created,
    /// Held back until its dependencies are started, healthy or completed.
    Waiting,
    /// Waiting for its image, being pulled in the background.
    Pulling,
    Running,
    /// Waiting to be restarted.
    Backoff,
    Exited,
    /// Could not start, or its restart policy gave up on it.
    Failed,
    /// Sent its stop signal; not ended yet.
    Stopping,
    Stopped,
}

impl ContainerState {
    /// Every state, in the order of a container's life.
    pub const ALL: [ContainerState; 9] = [
        ContainerState::Created,
        ContainerState::Waiting,
        ContainerState::Pulling,
        ContainerState::Running,
        ContainerState::Backoff,
        ContainerState::Exited,
        ContainerState::Failed,
        ContainerState::Stopping,
        ContainerState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Waiting => "waiting",
            ContainerState::Pulling => "pulling",
            ContainerState::Running => "running",
            ContainerState::Backoff => "backoff",
            ContainerState::Exited => "exited",
            ContainerState::Failed => "failed",
            ContainerState::Stopping => "stopping",
            ContainerState::Stopped => "stopped",
        }
    }

    /// Down after a run or a start that went wrong (ps says why).
    pub fn ended_badly(self) -> bool {
        matches!(
            self,
            ContainerState::Exited | ContainerState::Failed | ContainerState::Backoff
        )
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of a running container with a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed by the kernel's OOM killer inside its memory limit.
    Oom,
}

/// SIGKILL's number, which the OOM killer sends (the same on every
/// architecture Linux runs rkstack on).
const SIGKILL: i32 = 9;

impl Exit {
    /// The shell convention: the code, or 128 + the signal (SIGKILL for OOM).
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
            Exit::Oom => 128 + SIGKILL,
        }
    }

    /// In a few words, for a table: `exit 2`, `signal 9`, `oom`.
    pub fn short(self) -> String {
        match self {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("signal {s}"),
            Exit::Oom => "oom".into(),
        }
    }
}

const EXITED: &str = "exited with status ";
const SIGNALLED: &str = "killed by signal ";
const OOM: &str = "killed by the out-of-memory killer";

/// `exited with status 1`, `killed by signal 9`, `killed by the
/// out-of-memory killer`: in events, the log, `last_exit` and errors.
impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "{EXITED}{c}"),
            Exit::Signal(s) => write!(f, "{SIGNALLED}{s}"),
            Exit::Oom => f.write_str(OOM),
        }
    }
}

/// The words [`Exit`]'s `Display` writes, read back.
impl FromStr for Exit {
    type Err = String;

    fn from_str(s: &str) -> Result<Exit, String> {
        let number = |n: &str| n.parse::<i32>().map_err(|_| format!("not an exit: {s:?}"));
        if s == OOM {
            Ok(Exit::Oom)
        } else if let Some(n) = s.strip_prefix(EXITED) {
            number(n).map(Exit::Code)
        } else if let Some(n) = s.strip_prefix(SIGNALLED) {
            number(n).map(Exit::Signal)
        } else {
            Err(format!("not an exit: {s:?}"))
        }
    }
}

impl Serialize for Exit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Exit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Exit, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One container as `GET /v1/containers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    /// Its image as the stack file names it (`dir:/srv/web`, `docker://nginx:1.27`).
    #[serde(default)]
    pub image: String,
    /// The ports it publishes, as the stack file writes them
    /// (`127.0.0.1:8080:80/tcp`).
    #[serde(default)]
    pub ports: Vec<String>,
    pub state: ContainerState,
    pub pid: Option<i32>,
    pub restarts: u32,
    /// For containers with a health check.
    pub health: Option<Health>,
    /// Seconds since this run started.
    pub uptime_seconds: Option<u64>,
    /// Its address on each network.
    pub ips: BTreeMap<String, std::net::IpAddr>,
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub pids: Option<u64>,
    /// How its last run ended.
    pub last_exit: Option<Exit>,
    /// Why it is failed or could not start.
    pub error: Option<String>,
    /// Held stopped by a user's `stop`.
    pub user_stopped: bool,
}

impl ContainerInfo {
    /// A container declared and not set up yet.
    pub fn created(name: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.to_string(),
            image: String::new(),
            ports: Vec::new(),
            state: ContainerState::Created,
            pid: None,
            restarts: 0,
            health: None,
            uptime_seconds: None,
            ips: BTreeMap::new(),
            memory_bytes: None,
            cpu_seconds: None,
            pids: None,
            last_exit: None,
            error: None,
            user_stopped: false,
        }
    }
}

/// What the metrics are made of: the figures, not their text (`api/`
/// writes the Prometheus exposition).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub stack: String,
    pub containers: Vec<ContainerMetrics>,
    /// Reloads of the stack file (file change, SIGHUP, API).
    pub reloads: u64,
    pub last_reload_ok: bool,
}

/// One container's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerMetrics {
    pub info: ContainerInfo,
    /// OOM kills its cgroup counted (containers set up).
    pub oom_kills: Option<u64>,
    pub memory_limit: Option<u64>,
    /// When its present run started, in Unix seconds.
    pub started_at: Option<f64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_exit_reads_back_what_it_writes() {
        for e in [Exit::Code(0), Exit::Code(-3), Exit::Signal(15), Exit::Oom] {
            assert_eq!(e.to_string().parse::<Exit>(), Ok(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Exit>(&json).unwrap(), e);
        }
        assert_eq!(Exit::Code(1).to_string(), "exited with status 1");
        assert!("exited 1".parse::<Exit>().is_err());
    }

    #[test]
    fn states_are_written_as_the_api_names_them() {
        for s in ContainerState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
