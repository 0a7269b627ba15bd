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

#[cfg(test)]
mod tests {
    use super::*;

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
