//! What a container's start needs from the host, checked before a reload
//! stops anything: a mistyped `dir:` path or a missing bind source must
//! not cost the working container it was to replace.

use std::path::Path;

use crate::config::{Container, ImageRef, Mount, Seccomp};

/// Why `c` could not start on this host now, one line each (empty: no
/// reason known before trying). Only what the host holds is looked at:
/// an image to pull is the pull's business.
pub fn problems(c: &Container) -> Vec<String> {
    let mut out = Vec::new();
    let name = c.name.as_str();
    let mut need = |path: &Path, dir: bool, what: &str| match std::fs::metadata(path) {
        Ok(m) if dir && !m.is_dir() => out.push(format!(
            "{name}: {what} {} is not a directory",
            path.display()
        )),
        Ok(_) => {}
        Err(e) => out.push(format!("{name}: {what} {}: {e}", path.display())),
    };
    match &c.image {
        ImageRef::Dir { path } => need(path, true, "rootfs"),
        ImageRef::Oci { layout, .. } => need(layout, true, "OCI layout"),
        ImageRef::Tar { path } | ImageRef::Squashfs { path } | ImageRef::Erofs { path } => {
            need(path, false, "image")
        }
        ImageRef::Host | ImageRef::Docker { .. } | ImageRef::Local { .. } => {}
    }
    if let Some(v) = &c.verity {
        need(&v.hash_file, false, "verity hash tree");
    }
    for m in &c.mounts {
        if let Mount::Bind { source, .. } = m {
            need(source, false, "bind source");
        }
    }
    if let Seccomp::Profile(p) = &c.security.seccomp {
        need(p, false, "seccomp profile");
    }
    if c.logging.driver == crate::config::LogDriver::Journald {
        let sock = Path::new(crate::host::journal::SOCKET);
        if std::fs::symlink_metadata(sock).is_err() {
            out.push(format!(
                "{name}: logging driver journald: no journal at {} (systemd-journald is not running)",
                sock.display()
            ));
        }
    }
    out.extend(crate::container::lower::seccomp_problem(c));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_rootfs_or_bind_source_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            "name = \"s\"\n[containers.c]\nimage = \"dir:{d}/nope\"\ncommand = [\"/bin/true\"]\n\
             mounts = [{{ type = \"bind\", source = \"{d}/gone\", target = \"/x\" }}]\n\
             [containers.ok]\nimage = \"dir:{d}\"\ncommand = [\"/bin/true\"]\n",
            d = dir.path().display()
        );
        let stack =
            crate::config::parse(&text, Path::new("/s.toml")).unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<String> = stack.containers.values().flat_map(problems).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(
            all[0].starts_with("c: rootfs ") && all[0].contains("nope"),
            "{all:?}"
        );
        assert!(
            all[1].starts_with("c: bind source ") && all[1].contains("gone"),
            "{all:?}"
        );
    }

    #[test]
    fn output_to_the_journal_needs_a_journal() {
        let text = "name = \"s\"\n[containers.c]\nimage = \"host\"\ncommand = [\"/bin/true\"]\n\
                    logging = { driver = \"journald\" }\n";
        let stack =
            crate::config::parse(text, Path::new("/s.toml")).unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<String> = stack.containers.values().flat_map(problems).collect();
        if Path::new(crate::host::journal::SOCKET).exists() {
            assert!(all.is_empty(), "{all:?}");
        } else {
            assert_eq!(
                all,
                [
                    "c: logging driver journald: no journal at /run/systemd/journal/socket (systemd-journald is not running)"
                ]
            );
        }
    }
}
