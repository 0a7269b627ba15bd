//! Where the hierarchies are: read from the mount table, so one host's
//! v1, hybrid or pure v2 layout (or a scratch tree in tests) is one value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupError, io_err};

/// Which hierarchies exist and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
    /// Per-controller hierarchies (`memory` → `/sys/fs/cgroup/memory`).
    V1 {
        controllers: BTreeMap<String, PathBuf>,
    },
}

/// The v1 controllers a hierarchy can hold. A container joins every
/// mounted v1 hierarchy, these and the named ones (`name=systemd`): its
/// cgroup namespace then has its own group as the root of each, so a
/// container allowed to mount cgroupfs (`SYS_ADMIN`) finds no hierarchy's
/// real root, whose `release_agent` the kernel runs as root on the host.
const V1_CONTROLLERS: &[&str] = &[
    "memory",
    "pids",
    "cpu",
    "cpuacct",
    "cpuset",
    "blkio",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

/// The key of a hybrid host's cgroup2 hierarchy among the v1 ones (it
/// holds no controller rkstack sets limits with; `:` is in no v1 name).
pub const UNIFIED: &str = ":unified";

impl Layout {
    /// Reads the mount table (`/proc/self/mountinfo` text). A cgroup2 mount
    /// with controllers at `expected_v2` makes a pure v2 layout; otherwise
    /// the v1 controller mounts are used (hybrid hosts included).
    pub fn from_mountinfo(text: &str) -> Result<Layout, CgroupError> {
        let mut controllers = BTreeMap::new();
        let mut v2: Option<PathBuf> = None;
        // Any whole cgroup2 mount: the one unified hierarchy of a hybrid host.
        let mut unified: Option<PathBuf> = None;
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (Some(mnt), Some(fstype)) = (fields.get(4), post.first()) else {
                continue;
            };
            let mnt = unescape(mnt);
            if *fstype == "cgroup2" && unified.is_none() && fields.get(3) == Some(&"/") {
                unified = Some(mnt.clone());
            }
            match *fstype {
                "cgroup2"
                    if mnt == Path::new("/sys/fs/cgroup")
                        || v2.is_none() && !mnt.starts_with("/sys/fs/cgroup/") =>
                {
                    v2 = Some(mnt);
                }
                "cgroup" => {
                    let opts = post.get(2).copied().unwrap_or("");
                    for o in opts.split(',') {
                        if V1_CONTROLLERS.contains(&o) || o.starts_with("name=") {
                            controllers
                                .entry(o.to_string())
                                .or_insert_with(|| mnt.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        if !controllers.is_empty() {
            // Hybrid: the container has its own group in the cgroup2
            // hierarchy too, for the reason it joins every v1 one: left in
            // rkstack's, a container allowed to mount cgroupfs would find
            // the host's tree there and make groups that outlive it.
            if let Some(u) = unified {
                controllers.insert(UNIFIED.to_string(), u);
            }
            return Ok(Layout::V1 { controllers });
        }
        match v2 {
            Some(root) => Ok(Layout::V2 { root }),
            None => Err(CgroupError::NotMounted("/proc/self/mountinfo".into())),
        }
    }

    pub fn detect() -> Result<Layout, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err(Path::new("/proc/self/mountinfo"), "read"))?;
        Layout::from_mountinfo(&text)
    }
}

/// A path of mountinfo as it is.
pub(crate) fn unescape(s: &str) -> PathBuf {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(Ok(v)) = s.get(i + 1..i + 4).map(|o| u8::from_str_radix(o, 8))
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}
