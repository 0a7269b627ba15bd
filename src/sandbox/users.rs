//! `user = "name[:group]"` looked up in the container's own `/etc/passwd` and
//! `/etc/group` (after pivot_root, so the lookup cannot leave the rootfs).

use super::channel::StepError;
use super::rootfs::errno_err;
use super::spec::UserSpec;

/// `(uid, gid, supplementary groups)`.
pub fn resolve(user: &UserSpec) -> Result<(u32, u32, Vec<u32>), StepError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (uid, gid, name) = match user {
        UserSpec::Id { uid, gid } => {
            let entry = passwd_by(&passwd, |f| f[2] == uid.to_string());
            let default_gid = entry
                .as_ref()
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(*uid);
            (
                *uid,
                gid.unwrap_or(default_gid),
                entry.map(|f| f[0].clone()),
            )
        }
        UserSpec::Name { name, group: g } => {
            let f = passwd_by(&passwd, |f| f[0] == *name).ok_or_else(|| {
                errno_err(
                    "user",
                    libc::ENOENT,
                    format!("no user {name:?} in the container's /etc/passwd"),
                )
            })?;
            let uid = f[2]
                .parse()
                .map_err(|_| errno_err("user", libc::EINVAL, format!("bad uid for {name}")))?;
            let mut gid = f[3]
                .parse()
                .map_err(|_| errno_err("user", libc::EINVAL, format!("bad gid for {name}")))?;
            if let Some(g) = g {
                gid = match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => group_by(&group, |f| f[0] == *g)
                        .and_then(|f| f[2].parse().ok())
                        .ok_or_else(|| {
                            errno_err(
                                "user",
                                libc::ENOENT,
                                format!("no group {g:?} in the container's /etc/group"),
                            )
                        })?,
                };
            }
            (uid, gid, Some(name.clone()))
        }
    };
    // Supplementary groups: every group listing the user by name.
    let mut groups = vec![gid];
    if let Some(n) = name {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4
                && f[3].split(',').any(|m| m == n)
                && let Ok(g) = f[2].parse::<u32>()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok((uid, gid, groups))
}

fn passwd_by(text: &str, pred: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
    text.lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && pred(f))
}

fn group_by(text: &str, pred: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
    text.lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && pred(f))
}
