//! Who may use the API: the peer's credentials on the unix socket
//! (`SO_PEERCRED`): root, or a member of the `rkstack` group where that
//! group exists. Everyone else gets 403.

/// The group whose members may use the API.
pub const GROUP: &str = "rkstack";

/// The gid of `name` in an `/etc/group` text.
pub fn group_gid(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|g| g.trim().parse().ok()))
            .flatten()
    })
}

/// The supplementary groups in a `/proc/PID/status` text.
pub fn status_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The decision, from the peer's uid, gid and supplementary groups.
pub fn allowed(uid: u32, gid: u32, groups: &[u32], api_gid: Option<u32>) -> bool {
    uid == 0 || api_gid.is_some_and(|g| gid == g || groups.contains(&g))
}

/// The decision for a connected peer (its supplementary groups from /proc).
pub fn allowed_peer(uid: u32, gid: u32, pid: Option<i32>) -> bool {
    if uid == 0 {
        return true;
    }
    let api_gid = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|t| group_gid(&t, GROUP));
    let groups = pid
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .map(|s| status_groups(&s))
        .unwrap_or_default();
    allowed(uid, gid, &groups, api_gid)
}

/// Whether a file's mode bits give `want` (4 read, 1 search) to a caller.
pub fn permits(mode: u32, owner: u32, group: u32, who: &Caller, want: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if who.uid == owner {
        mode >> 6
    } else if who.gid == group || who.groups.contains(&group) {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

/// Who asks, as the kernel told us.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Caller {
    /// The peer `uid`/`gid`, its supplementary groups from /proc.
    pub fn of(uid: u32, gid: u32, pid: Option<i32>) -> Caller {
        let groups = pid
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .map(|s| status_groups(&s))
            .unwrap_or_default();
        Caller { uid, gid, groups }
    }

    /// Whether the caller may replace the file at `path` (write it, with
    /// every folder above it searchable).
    pub fn may_write(&self, path: &std::path::Path) -> bool {
        self.may(path, 2)
    }

    /// Whether the caller could read `path` itself: every folder on the
    /// way searchable, the file readable (checked on where it resolves).
    pub fn may_read(&self, path: &std::path::Path) -> bool {
        self.may(path, 4)
    }

    /// `want` (4 read, 2 write) on the file at `path`, through folders the
    /// caller may search.
    fn may(&self, path: &std::path::Path, want: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        if self.uid == 0 {
            return true;
        }
        let Ok(real) = std::fs::canonicalize(path) else {
            return false;
        };
        let ok = |p: &std::path::Path, want| {
            std::fs::metadata(p).is_ok_and(|m| permits(m.mode(), m.uid(), m.gid(), self, want))
        };
        real.ancestors().skip(1).all(|d| ok(d, 1)) && ok(&real, want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits_decide_what_a_caller_may_read() {
        let alice = Caller {
            uid: 1000,
            gid: 1000,
            groups: vec![990],
        };
        // Owner, group (primary or supplementary), others.
        assert!(permits(0o400, 1000, 0, &alice, 4));
        assert!(!permits(0o040, 1000, 0, &alice, 4));
        assert!(permits(0o040, 0, 990, &alice, 4));
        assert!(!permits(0o600, 0, 0, &alice, 4));
        assert!(permits(0o604, 0, 0, &alice, 4));
        assert!(!permits(0o640, 0, 0, &alice, 4));
        assert!(permits(0o711, 0, 0, &alice, 1));
        assert!(permits(0o000, 0, 0, &Caller::default(), 4));
    }

    #[test]
    fn only_a_caller_who_may_write_the_stack_file_may_replace_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let set = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        set(dir.path(), 0o755);
        let file = dir.path().join("stack.toml");
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let me = nix::unistd::getuid().as_raw();
        let other = Caller {
            uid: me.wrapping_add(4242),
            gid: 4242,
            groups: Vec::new(),
        };
        set(&file, 0o644);
        assert!(other.may_read(&file) && !other.may_write(&file));
        set(&file, 0o666);
        assert!(other.may_write(&file));
        set(dir.path(), 0o700);
        assert!(!other.may_write(&file), "its folder is closed to them");
    }

    #[test]
    fn a_file_is_readable_only_through_searchable_folders() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap_or_default()
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        mode(dir.path(), 0o755);
        let open = dir.path().join("open.toml");
        let secret = dir.path().join("secret.toml");
        std::fs::write(&open, "").unwrap_or_default();
        std::fs::write(&secret, "").unwrap_or_default();
        mode(&open, 0o644);
        mode(&secret, 0o600);
        let stranger = Caller {
            uid: 4_000_000,
            gid: 4_000_000,
            groups: Vec::new(),
        };
        assert!(stranger.may_read(&open));
        assert!(!stranger.may_read(&secret));
        assert!(!stranger.may_read(&dir.path().join("missing.toml")));
        // A symlink of its own to the secret is judged where it leads.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&secret, &link).unwrap_or_default();
        assert!(!stranger.may_read(&link));
        mode(dir.path(), 0o700);
        assert!(!stranger.may_read(&open), "its folder is closed");
        mode(dir.path(), 0o755);
    }

    #[test]
    fn root_and_members_of_the_group_may_use_the_api() {
        let etc = "root:x:0:\nrkstack:x:990:alice\nusers:x:100:\n";
        let g = group_gid(etc, "rkstack");
        assert_eq!(g, Some(990));
        assert_eq!(group_gid(etc, "nope"), None);
        assert!(allowed(0, 0, &[], None));
        assert!(allowed(1000, 990, &[], g));
        assert!(allowed(1000, 1000, &[100, 990], g));
        assert!(!allowed(1000, 1000, &[100], g));
        assert!(!allowed(1000, 1000, &[990], None));
        let status = "Name:\tsh\nGroups:\t100 990 \nVmRSS:\t1 kB\n";
        assert_eq!(status_groups(status), vec![100, 990]);
    }
}
