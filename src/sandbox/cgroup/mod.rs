//! Control groups, v1, hybrid (v1 controllers beside a cgroup2 mount that
//! holds few or none) and pure v2. The filesystem root is a parameter, so
//! the v2 path is tested against scratch trees as well as the kernel.

mod layout;
mod usage;
mod v1;
mod v2;

pub(crate) use layout::unescape;
pub use layout::{Layout, UNIFIED};
pub use usage::{Events, Usage, UsageReader};

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup filesystem is mounted (looked in {0})")]
    NotMounted(String),
    #[error("cgroup {path}: {action}")]
    Io {
        path: String,
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("cgroup: the {controller} controller is not available here (needed for {what})")]
    Missing { controller: String, what: String },
}

fn io_err(path: &Path, action: impl Into<String>) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.display().to_string();
    let action = action.into();
    move |source| CgroupError::Io {
        path,
        action,
        source,
    }
}

/// Limits in cgroup terms (the caller converts from the stack file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub memory_low: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_weight: Option<u32>,
    pub cpuset: Option<String>,
    pub pids: Option<u64>,
    pub io_weight: Option<u32>,
    pub io: Vec<IoLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoLimit {
    pub major: u32,
    pub minor: u32,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

/// One container's cgroup (a directory per v1 controller, or one v2 directory).
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    /// Relative path under each hierarchy's root: `rkstack/STACK/NAME`.
    rel: PathBuf,
}

const CPU_PERIOD: u64 = 100_000;

impl Cgroup {
    pub fn new(layout: Layout, rel: impl Into<PathBuf>) -> Cgroup {
        Cgroup {
            layout,
            rel: rel.into(),
        }
    }

    /// Every directory of this cgroup, by controller (`""` for v2).
    pub fn dirs(&self) -> Vec<(String, PathBuf)> {
        match &self.layout {
            Layout::V2 { root } => vec![(String::new(), root.join(&self.rel))],
            Layout::V1 { controllers } => {
                // Controllers co-mounted (cpu,cpuacct) share a directory: list it once.
                let mut seen = Vec::new();
                let mut out = Vec::new();
                for (c, root) in controllers {
                    if !seen.contains(root) {
                        seen.push(root.clone());
                        out.push((c.clone(), root.join(&self.rel)));
                    }
                }
                out
            }
        }
    }

    /// The `cgroup.procs` files a process writes itself to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => Some(root.join(&self.rel)),
            Layout::V1 { controllers } => controllers.get(controller).map(|r| r.join(&self.rel)),
        }
    }

    /// Creates the directories (and, on v2, enables the controllers along the
    /// way); whether the container's own were all made now (a new group has
    /// every limit at its default: see [`Cgroup::apply_new`]). Another
    /// container's clean-up may remove a shared parent at the same moment;
    /// the walk is then simply done again.
    pub fn create(&self) -> Result<bool, CgroupError> {
        let mut tries = 0;
        loop {
            match self.create_once() {
                Err(CgroupError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && tries < 5 =>
                {
                    tries += 1
                }
                other => return other,
            }
        }
    }

    /// Whether the groups are cgroup v1 ones (a hybrid host's included).
    pub fn is_v1(&self) -> bool {
        matches!(self.layout, Layout::V1 { .. })
    }

    /// On a hybrid host, the group in the cgroup2 hierarchy alone (the
    /// container's first process is born in it, so it must be there
    /// before the rest, which [`Cgroup::create`] makes).
    pub fn create_unified(&self) -> Result<(), CgroupError> {
        let Layout::V1 { controllers } = &self.layout else {
            return Ok(());
        };
        let Some(root) = controllers.get(UNIFIED) else {
            return Ok(());
        };
        self.make_levels(root, false).map(|_| ())
    }

    /// Makes every level of the group's path under `root` (filling each
    /// v1 cpuset); whether the group itself is new.
    fn make_levels(&self, root: &Path, cpuset: bool) -> Result<bool, CgroupError> {
        let mut cur = root.to_path_buf();
        let mut new = false;
        for comp in self.rel.components() {
            cur.push(comp);
            new = make_dir(&cur)?;
            if cpuset {
                fill_cpuset(&cur, root, false)?;
            }
        }
        Ok(new)
    }

    fn create_once(&self) -> Result<bool, CgroupError> {
        match &self.layout {
            Layout::V2 { root } => {
                let mut cur = root.clone();
                let mut new = false;
                for comp in self.rel.components() {
                    let available =
                        std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
                    let want: Vec<String> = ["cpu", "cpuset", "io", "memory", "pids"]
                        .iter()
                        .filter(|c| available.split_whitespace().any(|a| a == **c))
                        .map(|c| format!("+{c}"))
                        .collect();
                    if !want.is_empty() {
                        let f = cur.join("cgroup.subtree_control");
                        // Enabling is idempotent; refuse only if nothing could be enabled.
                        let _ = std::fs::write(&f, want.join(" "));
                    }
                    cur.push(comp);
                    new = make_dir(&cur)?;
                }
                Ok(new)
            }
            Layout::V1 { controllers } => {
                let mut all_new = true;
                // Each hierarchy once (co-mounted controllers share one).
                let mut roots: Vec<(&PathBuf, bool)> = Vec::new();
                for (c, root) in controllers {
                    match roots.iter_mut().find(|(r, _)| *r == root) {
                        Some((_, cpuset)) => *cpuset |= c == "cpuset",
                        None => roots.push((root, c == "cpuset")),
                    }
                }
                // A hybrid host's cgroup2 group holds no limits: made
                // before (`create_unified`) or now, it is as good as new.
                let unified = controllers.get(UNIFIED);
                for (root, cpuset) in roots {
                    let limited = Some(root) != unified;
                    // The leaf first: its parents exist but for the first
                    // container (or after a stack's last one went).
                    let leaf = root.join(&self.rel);
                    let new = match std::fs::create_dir(&leaf) {
                        Ok(()) => true,
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            all_new &= self.make_levels(root, cpuset)? || !limited;
                            continue;
                        }
                        Err(e) => return Err(io_err(&leaf, "create")(e)),
                    };
                    if cpuset {
                        // A v1 cpuset starts empty and admits no task until
                        // filled from its parent; a parent made by a
                        // supervisor killed before it filled it is filled now.
                        fill_cpuset(&leaf, root, new)?;
                    }
                    all_new &= new || !limited;
                }
                Ok(all_new)
            }
        }
    }

    fn write(
        &self,
        controller: &str,
        file: &str,
        value: &str,
        what: &str,
    ) -> Result<(), CgroupError> {
        let dir = self
            .dir_of(controller)
            .ok_or_else(|| CgroupError::Missing {
                controller: controller.into(),
                what: what.into(),
            })?;
        let path = dir.join(file);
        if matches!(self.layout, Layout::V2 { .. }) && !path.exists() {
            return Err(CgroupError::Missing {
                controller: controller.into(),
                what: what.into(),
            });
        }
        std::fs::write(&path, value).map_err(io_err(&path, format!("write {value:?}")))
    }

    /// An unset limit back to its default, written only where the file says
    /// otherwise: a new group has the defaults already, and some writes are
    /// not cheap (a CPU quota makes the kernel walk every task group to
    /// check the bandwidth, a cost that grows with the number of containers).
    fn reset(
        &self,
        controller: &str,
        file: &str,
        value: &str,
        what: &str,
        is_default: &dyn Fn(&str) -> bool,
    ) -> Result<(), CgroupError> {
        let now = self
            .dir_of(controller)
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok());
        if now.as_deref().map(str::trim).is_some_and(is_default) {
            return Ok(());
        }
        self.write(controller, file, value, what)
    }

    /// Writes every limit (unset ones back to their defaults), now or on a running container.
    pub fn apply(&self, l: &Limits) -> Result<(), CgroupError> {
        self.apply_limits(l, false)
    }

    /// Writes the limits that are set, to a group [`Cgroup::create`] has
    /// just made (its unset ones are at their defaults already).
    pub fn apply_new(&self, l: &Limits) -> Result<(), CgroupError> {
        self.apply_limits(l, true)
    }

    /// A container's limits and (v1) device rules, on a group `create`
    /// has just made (`new`) or one that was there.
    pub fn configure(&self, l: &Limits, devices: &[String], new: bool) -> Result<(), CgroupError> {
        self.apply_limits(l, new)?;
        self.restrict_devices(devices)
    }

    fn apply_limits(&self, l: &Limits, new: bool) -> Result<(), CgroupError> {
        if matches!(self.layout, Layout::V2 { .. }) {
            self.apply_v2(l, new)
        } else {
            self.apply_v1(l, new)
        }
    }

    fn dir_has(&self, file: &str) -> bool {
        self.dir_of("").is_some_and(|d| d.join(file).exists())
    }

    /// Pids still in the cgroup, or in any cgroup the container made
    /// under it (with `CAP_SYS_ADMIN` it can mount its hierarchy and do so).
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for (_, top) in self.dirs() {
            for d in subtree(&top) {
                let text = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for p in text.lines().filter_map(|l| l.trim().parse().ok()) {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// Kills whatever is left in the cgroup (it stays, for the next run);
    /// whether anything was.
    pub fn kill_all(&self) -> bool {
        for round in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                return round > 0;
            }
            for p in pids {
                // SAFETY: signalling processes inside our own container's cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    /// How many levels of `rel` go with the container, its own first.
    /// Parents are removed only where rkstack made them (`rkstack/...`),
    /// never in a tree someone delegated to us. A stack's `rkstack/STACK/`
    /// (and `rkstack/`, when empty) goes with its last container; the
    /// one-off containers' `rkstack/run/` and `rkstack/` stay, empty, as
    /// docker's `docker/` does: making and removing them at every
    /// `rkstack run` cost 0.8–1.3 ms of its start.
    fn removable_depth(&self) -> usize {
        let levels = self.rel.components().count();
        if !self.rel.starts_with("rkstack") {
            return 1;
        }
        // `run`: config's `ONE_OFF_STACK`, a name no stack file may take.
        let kept = if self.rel.starts_with("rkstack/run") {
            2
        } else {
            0
        };
        levels.saturating_sub(kept).max(1)
    }

    /// Kills whatever is left and removes the directories (leaf first, then
    /// the empty parents rkstack made, see `removable_depth`).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        // Most often the container's processes are gone and it made no
        // groups of its own: each directory goes at the first try, and
        // nothing is read (a v1 `cgroup.procs` read costs the kernel a
        // list of pids). The kernel refuses to remove a group that still
        // holds a process or a group.
        let mut busy = Vec::new();
        for (_, dir) in self.dirs() {
            if self.remove_group(&dir).is_err() {
                busy.push(dir);
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        self.kill_all();
        for dir in busy {
            // Cgroups the container made under its own go first, deepest
            // first: the kernel removes only empty ones.
            let mut inner = subtree(&dir);
            inner.pop();
            for d in inner {
                if let Err(e) = std::fs::remove_dir(&d)
                    && e.kind() != io::ErrorKind::NotFound
                    && first_err.is_none()
                {
                    first_err = Some(io_err(&d, "remove")(e));
                }
            }
            if let Err(e) = self.remove_group(&dir)
                && first_err.is_none()
            {
                first_err = Some(io_err(&dir, "remove")(e));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Removes the group at `dir` (gone already is fine) and the empty
    /// parents that go with it (see `removable_depth`); a parent still in
    /// use by another container stays.
    fn remove_group(&self, dir: &Path) -> io::Result<()> {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut d = dir.to_path_buf();
        for _ in 1..self.removable_depth() {
            if !d.pop() {
                break;
            }
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Makes `dir`; whether it is new (false: it was there).
fn make_dir(dir: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(dir, "create")(e)),
    }
}

/// A small cgroup file's text (one read; cgroup files have no size to ask).
fn read_small(path: &Path) -> String {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// Fills a v1 cpuset's empty `cpus` and `mems` from its parent's (filling
/// an empty parent first, up to `root`). `empty`: known to be empty (new).
fn fill_cpuset(dir: &Path, root: &Path, empty: bool) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if !empty && !read_small(&dir.join(f)).is_empty() {
            continue;
        }
        let mut v = read_small(&parent.join(f));
        if v.is_empty() && parent != root && parent.starts_with(root) {
            fill_cpuset(parent, root, false)?;
            v = read_small(&parent.join(f));
        }
        std::fs::write(dir.join(f), &v).map_err(io_err(&dir.join(f), "write"))?;
    }
    Ok(())
}

/// `top` and every cgroup below it, children before their parents (the
/// order to remove them in). Symlinks are not followed; a tree deeper
/// than any real one (64 levels) is not walked further.
fn subtree(top: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    fn walk(d: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        // A directory's link count is 2 plus its subdirectories on
        // cgroupfs (kernfs): most containers made none, and their
        // folders are not read.
        let leaf = std::fs::metadata(d).is_ok_and(|m| m.nlink() == 2);
        if !leaf
            && depth < 64
            && let Ok(entries) = std::fs::read_dir(d)
        {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), depth + 1, out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    if top.is_dir() {
        walk(top, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
