//! Bind sources pinned where they resolved when the stack file was read.
//!
//! A bind source may pass through symlinks the user meant (`/var/run` →
//! `/run`): it is resolved once, the first time the supervisor reads it,
//! and every start of the container uses that resolved path, which the
//! sandbox opens refusing any symlink on the way. So a symlink that
//! appears later — a container with write access to a parent folder
//! swapping the source for a link to `/etc` — is refused with the path
//! that changed, never followed. A reload keeps a path's pin while the
//! file still writes that path; rkstack started anew resolves it again.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{Mount, Stack};

/// Written source → where it resolved.
#[derive(Debug, Default)]
pub struct Pins(HashMap<PathBuf, PathBuf>);

impl Pins {
    /// Replaces each bind source of `stack` by its pinned path (pinning
    /// the ones seen for the first time). A source that does not resolve
    /// now (missing) stays as written: its start says why.
    pub fn apply(&mut self, stack: &mut Stack) {
        for c in stack.containers.values_mut() {
            for m in &mut c.mounts {
                let Mount::Bind { source, .. } = m else {
                    continue;
                };
                if let Some(p) = self.0.get(source.as_path()) {
                    *source = p.clone();
                } else if let Ok(p) = std::fs::canonicalize(&*source) {
                    self.0.insert(source.clone(), p.clone());
                    *source = p;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_with_bind(source: &std::path::Path) -> Stack {
        let text = format!(
            "name = \"s\"\n[containers.c]\nimage = \"host\"\ncommand = [\"/bin/true\"]\n\
             mounts = [{{ type = \"bind\", source = \"{}\", target = \"/cfg\" }}]\n",
            source.display()
        );
        crate::config::parse(&text, std::path::Path::new("/s.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn source_of(s: &Stack) -> PathBuf {
        match s.containers.values().next().map(|c| &c.mounts[0]) {
            Some(Mount::Bind { source, .. }) => source.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_source_keeps_where_it_first_resolved() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let real = dir.path().join("real");
        let other = dir.path().join("other");
        std::fs::create_dir(&real).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(&other).unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
        let mut pins = Pins::default();
        let mut s = stack_with_bind(&link);
        pins.apply(&mut s);
        let real = std::fs::canonicalize(&real).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source_of(&s), real);
        // The link now points elsewhere: a reload of the same file keeps the pin.
        std::fs::remove_file(&link).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&other, &link).unwrap_or_else(|e| panic!("{e}"));
        let mut s = stack_with_bind(&link);
        pins.apply(&mut s);
        assert_eq!(source_of(&s), real);
    }
}
