//! `rkstack diff`: what a container changed in its writable layer, as
//! `docker diff` shows it: `A` added, `C` changed, `D` deleted.

use std::path::{Path, PathBuf};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// The changes of the overlay upper layer `upper` over `lowers`, by path.
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> Vec<Change> {
    let mut out = Vec::new();
    walk(upper, Path::new(""), lowers, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(upper: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(dir) = std::fs::read_dir(upper.join(rel)) else {
        return;
    };
    for e in dir.flatten() {
        let r = rel.join(e.file_name());
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        let path = format!("/{}", r.display());
        let in_lower = lowers.iter().any(|l| l.join(&r).symlink_metadata().is_ok());
        if m.file_type().is_char_device() && m.rdev() == 0 {
            // A whiteout: deleted from the image.
            if in_lower {
                out.push(Change { kind: 'D', path });
            }
            continue;
        }
        out.push(Change {
            kind: if in_lower { 'C' } else { 'A' },
            path,
        });
        if m.is_dir() {
            walk(upper, &r, lowers, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_and_deleted_paths_are_told_apart() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in [lower.join("etc"), upper.join("etc"), upper.join("new/dir")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(lower.join("etc/hosts"), "a").unwrap();
        std::fs::write(upper.join("etc/hosts"), "b").unwrap();
        std::fs::write(upper.join("new/dir/f"), "x").unwrap();
        let got: Vec<String> = diff(&upper, &[lower])
            .into_iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        assert_eq!(
            got,
            [
                "C /etc",
                "C /etc/hosts",
                "A /new",
                "A /new/dir",
                "A /new/dir/f"
            ]
        );
    }
}
