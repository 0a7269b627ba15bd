//! The stacks running on this machine, found by their lock files under the
//! state directory (`STATE/STACK.lock`, held by each `rkstack up`), and what
//! they publish, from their state files.

use std::path::Path;

/// One running stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    /// The supervisor's pid, as written in its lock file.
    pub pid: Option<i32>,
}

/// The stacks whose supervisor runs now, by name.
pub fn running(state_dir: &Path) -> Vec<Running> {
    let Ok(dir) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut out: Vec<Running> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".lock")?.to_string();
            let pid = super::lockfile::holder(&e.path())?;
            Some(Running { name, pid })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub use super::state_file::Published;
use super::state_file::StateFile;

/// The store images the running stacks' containers are declared with:
/// (stack, reference).
pub fn images_in_use(state_dir: &Path) -> Vec<(String, String)> {
    running(state_dir)
        .into_iter()
        .flat_map(|r| {
            StateFile::read_or_default(state_dir, &r.name)
                .images
                .into_iter()
                .map(move |i| (r.name.clone(), i))
        })
        .collect()
}

/// The store's layers the running stacks' containers are made of now.
pub fn layers_in_use(state_dir: &Path) -> std::collections::BTreeSet<String> {
    running(state_dir)
        .into_iter()
        .flat_map(|r| {
            StateFile::read_or_default(state_dir, &r.name)
                .containers
                .into_values()
                .filter(|c| c.pid.is_some())
                .flat_map(|c| c.layers)
        })
        .collect()
}

/// The host ports published by the other running stacks: (stack, port).
pub fn published_by_others(state_dir: &Path, us: &str) -> Vec<(String, Published)> {
    running(state_dir)
        .into_iter()
        .filter(|r| r.name != us)
        .flat_map(|r| {
            StateFile::read_or_default(state_dir, &r.name)
                .published
                .into_iter()
                .map(move |p| (r.name.clone(), p))
        })
        .collect()
}

/// Whether the stack's supervisor was started in its unit's `supervisor`
/// leaf (see the state file's `placed_in_leaf`); false without a state.
pub fn placed_in_leaf(state_dir: &Path, stack: &str) -> bool {
    StateFile::read_or_default(state_dir, stack).placed_in_leaf
}

/// The image manifests (digests) the kept generations of every stack with
/// data under `data_dir` ran: the store keeps them for rollbacks.
pub fn kept_by_generations(data_dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("generations").is_dir())
        .flat_map(|e| {
            super::generations::Generations::open(&e.path().join("generations"), usize::MAX)
                .images()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_running_while_its_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("web.lock");
        std::fs::write(&lock, "4242").unwrap();
        std::fs::write(dir.path().join("idle.lock"), "1").unwrap();
        assert!(running(dir.path()).is_empty());
        let Ok(super::super::lockfile::Taken::Ours(f)) =
            super::super::lockfile::LockFile::take(&lock, "4242")
        else {
            panic!("not taken");
        };
        assert_eq!(
            running(dir.path()),
            vec![Running {
                name: "web".into(),
                pid: Some(4242)
            }]
        );
        std::fs::create_dir(dir.path().join("web")).unwrap();
        std::fs::write(
            dir.path().join("web/state.json"),
            r#"{"stack":"web","containers":{},"published":[{"proto":"tcp","port":8080}]}"#,
        )
        .unwrap();
        let p = published_by_others(dir.path(), "other");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1.port, 8080);
        assert!(published_by_others(dir.path(), "web").is_empty());
        drop(f);
        assert!(running(dir.path()).is_empty());
    }
}
