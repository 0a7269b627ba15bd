//! Where a stack's cgroups go: under a delegated v2 subtree (systemd's
//! `Delegate=`) beside the supervisor's own leaf, else `rkstack/STACK`.

use super::*;

/// Where a stack's container cgroups go. On cgroup v2 under a delegated
/// subtree (systemd's `Delegate=yes`: our own cgroup is not the root), the
/// containers become children of our own cgroup and we move ourselves into
/// a `supervisor` leaf beside them (v2 allows no processes in a cgroup whose
/// controllers are handed down). Elsewhere: `rkstack/STACK`.
pub fn cgroup_base(layout: &Layout, self_cgroup: &str, stack: &str) -> (PathBuf, Option<PathBuf>) {
    if let Layout::V2 { .. } = layout {
        let own = self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| p.trim().trim_start_matches('/'))
            .unwrap_or("");
        let own = own.strip_suffix("/supervisor").unwrap_or(own);
        if !own.is_empty() {
            let base = PathBuf::from(own);
            return (base.clone(), Some(base.join("supervisor")));
        }
    }
    (Path::new("rkstack").join(stack), None)
}

pub(super) fn claim_cgroup_base(layout: &Layout, own: &str, stack: &str) -> PathBuf {
    let (base, leaf) = cgroup_base(layout, own, stack);
    if let (Some(leaf), Layout::V2 { root }) = (leaf, layout) {
        let dir = root.join(&leaf);
        let moved = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()));
        if let Err(e) = moved {
            event(
                stack,
                Kind::Warning,
                format!(
                    "cannot move into {}: {e}; container cgroups go under rkstack/{stack}",
                    dir.display()
                ),
            );
            return Path::new("rkstack").join(stack);
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_base_follows_a_delegated_v2_subtree() {
        let v2 = Layout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        let under_systemd = "0::/system.slice/rkstack@demo.service\n";
        assert_eq!(
            cgroup_base(&v2, under_systemd, "demo"),
            (
                PathBuf::from("system.slice/rkstack@demo.service"),
                Some(PathBuf::from(
                    "system.slice/rkstack@demo.service/supervisor"
                ))
            )
        );
        // Restarted inside its own leaf: the same base.
        let again = "0::/system.slice/rkstack@demo.service/supervisor\n";
        assert_eq!(
            cgroup_base(&v2, again, "demo").0,
            PathBuf::from("system.slice/rkstack@demo.service")
        );
        // PID 1 of an appliance, or a shell at the root: rkstack/STACK.
        assert_eq!(
            cgroup_base(&v2, "0::/\n", "demo"),
            (PathBuf::from("rkstack/demo"), None)
        );
        let v1 = Layout::V1 {
            controllers: Default::default(),
        };
        assert_eq!(
            cgroup_base(&v1, "4:memory:/x\n0::/y\n", "demo"),
            (PathBuf::from("rkstack/demo"), None)
        );
    }
}
