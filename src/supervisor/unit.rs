//! After `rkstack@STACK.service` stopped (its `ExecStopPost=`): decides
//! whether the containers its supervisor left in the unit's cgroup stay,
//! for the restarted supervisor to adopt, or go.
//!
//! They stay when the supervisor failed (crash, watchdog) and systemd can
//! start the next one beside them: with `DelegateSubgroup=supervisor`
//! (systemd 254 and later) it puts the main process in that leaf. Older
//! systemd puts it in the unit's own cgroup, which cannot take a process
//! while controllers are handed down to the containers (cgroup v2's rule
//! of no processes in inner nodes): there the containers are ended and the
//! controllers handed back, or the restart would fail. A stop that was
//! asked for (`success`, or `timeout` when the supervisor hung on it) ends
//! them too: `systemctl stop` leaves nothing behind.

use std::path::{Path, PathBuf};

/// What to do with the containers left in the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Left for the next supervisor to adopt.
    Keep,
    /// Ended, their cgroups removed, the controllers handed back.
    End,
}

/// The decision, from systemd's `$SERVICE_RESULT` and whether systemd can
/// start the next supervisor beside the containers (on cgroup v2: it placed
/// this one in its `supervisor` leaf itself; always on v1).
pub fn decide(service_result: &str, can_start_beside: bool) -> Leftovers {
    let failed = matches!(
        service_result,
        "exit-code" | "signal" | "core-dump" | "watchdog"
    );
    if failed && can_start_beside {
        Leftovers::Keep
    } else {
        Leftovers::End
    }
}

/// The unit's cgroup (relative to the v2 root) of a process in its
/// `.control` leaf, where systemd runs `ExecStopPost=` of a delegated unit.
pub fn unit_cgroup(self_cgroup: &str) -> Option<PathBuf> {
    let own = self_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let unit = own.trim().strip_suffix("/.control")?;
    Some(PathBuf::from(unit.trim_start_matches('/')))
}

/// Carries out [`decide`] for the unit this process runs in; returns what
/// was done, for the journal.
pub fn after_stop(state_dir: &Path, stack: &str, service_result: &str) -> Result<String, String> {
    let result = if service_result.is_empty() {
        "no result given"
    } else {
        service_result
    };
    let layout = crate::sandbox::cgroup::Layout::detect().map_err(|e| e.to_string())?;
    let root = match layout {
        crate::sandbox::cgroup::Layout::V2 { root } => root,
        crate::sandbox::cgroup::Layout::V1 { controllers } => {
            // v1: the containers' cgroups are rkstack/STACK in each hierarchy,
            // and nothing stops systemd from starting the next supervisor.
            if decide(service_result, true) == Leftovers::Keep {
                return Ok(format!(
                    "the supervisor ended ({result}); its containers stay for the next one to adopt"
                ));
            }
            let mut ended = std::collections::BTreeSet::new();
            for dir in controllers.values() {
                let base = dir.join("rkstack").join(stack);
                for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        end_tree(&e.path());
                        ended.insert(e.file_name().to_string_lossy().into_owned());
                    }
                }
                let _ = std::fs::remove_dir(&base);
            }
            return Ok(format!(
                "the supervisor ended ({result}); ended what it left: {}",
                list(ended.into_iter().collect())
            ));
        }
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let Some(unit) = unit_cgroup(&own) else {
        return Ok("not in a delegated unit's .control cgroup: nothing to do".into());
    };
    let placed = crate::host::stacks::placed_in_leaf(state_dir, stack);
    if decide(service_result, placed) == Leftovers::Keep {
        return Ok(format!(
            "the supervisor ended ({result}); its containers stay for the next one to adopt"
        ));
    }
    let top = root.join(&unit);
    let mut ended = Vec::new();
    for e in std::fs::read_dir(&top).map_err(|e| format!("{}: {e}", top.display()))? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.path().is_dir() || name == ".control" {
            continue;
        }
        end_tree(&e.path());
        ended.push(name);
    }
    // Hand the controllers back: the unit's own cgroup can then take the
    // next main process.
    let ctl = top.join("cgroup.subtree_control");
    let on = std::fs::read_to_string(&ctl).unwrap_or_default();
    let off: Vec<String> = on.split_whitespace().map(|c| format!("-{c}")).collect();
    if !off.is_empty() {
        std::fs::write(&ctl, off.join(" ")).map_err(|e| format!("{}: {e}", ctl.display()))?;
    }
    Ok(format!(
        "the supervisor ended ({result}); ended what it left: {}",
        list(ended)
    ))
}

fn list(names: Vec<String>) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

/// Kills every process in a cgroup tree and removes it, leaves first.
fn end_tree(dir: &Path) {
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        let _ = std::fs::write(&kill, "1");
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            end_tree(&e.path());
        }
    }
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            // SAFETY: killing what the stopped unit's supervisor left in its own cgroups.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_stay_only_after_a_failure_that_systemd_can_restart_beside() {
        assert_eq!(decide("watchdog", true), Leftovers::Keep);
        assert_eq!(decide("signal", true), Leftovers::Keep);
        assert_eq!(decide("core-dump", true), Leftovers::Keep);
        assert_eq!(decide("exit-code", true), Leftovers::Keep);
        // Older systemd could not start the next supervisor beside them.
        assert_eq!(decide("watchdog", false), Leftovers::End);
        // A stop that was asked for leaves nothing.
        assert_eq!(decide("success", true), Leftovers::End);
        assert_eq!(decide("timeout", true), Leftovers::End);
        assert_eq!(decide("", true), Leftovers::End);
    }

    #[test]
    fn the_unit_is_the_parent_of_the_control_leaf() {
        assert_eq!(
            unit_cgroup("0::/system.slice/system-rkstack.slice/rkstack@demo.service/.control\n"),
            Some(PathBuf::from(
                "system.slice/system-rkstack.slice/rkstack@demo.service"
            ))
        );
        assert_eq!(unit_cgroup("0::/user.slice/session-1.scope\n"), None);
        assert_eq!(unit_cgroup("4:memory:/x\n"), None);
    }
}
