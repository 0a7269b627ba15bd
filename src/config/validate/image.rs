//! A container's image: its reference (`image`), dm-verity (`verity`), and
//! the names of images built here (`localhost/NAME[:TAG]`).

use super::*;

impl Cx<'_> {
    pub(super) fn verity(&mut self, v: &Node, key: &str, image: &Path) -> Option<Verity> {
        let t = self.table(v, key, VERITY_KEYS)?;
        let root_hash = match t.get("root_hash") {
            Some(e) => {
                let h = self.str(&e.value, &format!("{key}.root_hash"))?;
                let hex = h.len() >= 32
                    && h.len() <= 128
                    && h.len() % 2 == 0
                    && h.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex {
                    self.err_key(
                        &e.value.span,
                        &format!("{key}.root_hash"),
                        "a root hash is 32 to 128 hex digits (as `veritysetup format` prints it)",
                    );
                    return None;
                }
                h.to_ascii_lowercase()
            }
            None => {
                self.err_key(&v.span, key, "missing \"root_hash\"");
                return None;
            }
        };
        let hash_file = match t.get("hash_file") {
            Some(e) => self.host_path(&e.value, &format!("{key}.hash_file"))?,
            None => {
                let mut p = image.as_os_str().to_owned();
                p.push(".verity");
                PathBuf::from(p)
            }
        };
        Some(Verity {
            root_hash,
            hash_file,
        })
    }

    pub(super) fn image(&mut self, v: &Node) -> Option<ImageRef> {
        let s = self.str(v, "image")?;
        let base = self.base.to_path_buf();
        let path = |p: &str| types::host_path(p, &base);
        let r = if s == "host" {
            Ok(ImageRef::Host)
        } else if let Some(p) = s.strip_prefix("dir:") {
            path(p).map(|path| ImageRef::Dir { path })
        } else if let Some(p) = s.strip_prefix("tar:") {
            path(p).map(|path| ImageRef::Tar { path })
        } else if let Some(p) = s.strip_prefix("squashfs:") {
            path(p).map(|path| ImageRef::Squashfs { path })
        } else if let Some(p) = s.strip_prefix("erofs:") {
            path(p).map(|path| ImageRef::Erofs { path })
        } else if let Some(p) = s.strip_prefix("oci:") {
            // oci:LAYOUT_DIR[:TAG]; a tag never holds '/'.
            let (dir, tag) = match p.rsplit_once(':') {
                Some((d, t)) if !t.is_empty() && !t.contains('/') => (d, Some(t.to_string())),
                _ => (p, None),
            };
            path(dir).map(|layout| ImageRef::Oci { layout, tag })
        } else if let Some(r) = s.strip_prefix("docker://") {
            docker_reference(r).map(|reference| ImageRef::Docker { reference })
        } else if s.starts_with("localhost/") {
            local_name(s).map(|name| ImageRef::Local { name })
        } else {
            let close = crate::config::types::did_you_mean(s, ["host"]);
            let hint = if !close.is_empty() {
                close
            } else if s.starts_with('/') || s.starts_with('.') {
                format!("; did you mean \"dir:{s}\"?")
            } else if !s.contains(':') || s.contains('/') {
                format!("; did you mean \"docker://{s}\"?")
            } else {
                String::new()
            };
            Err(format!(
                "unknown image reference {s:?}: expected host, dir:PATH, tar:PATH, oci:DIR[:TAG], docker://REPO[:TAG], localhost/NAME[:TAG] (built here), squashfs:PATH or erofs:PATH{hint}"
            ))
        };
        match r {
            Ok(i) => Some(i),
            Err(m) => {
                self.err_key(&v.span, "image", m);
                None
            }
        }
    }
}

fn docker_reference(r: &str) -> Result<String, String> {
    let valid = !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !r.starts_with('/')
        && !r.ends_with(['/', ':', '@']);
    let digest_ok = match r.split_once('@') {
        Some((_, d)) => d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())),
        None => true,
    };
    if valid && digest_ok {
        Ok(r.to_string())
    } else {
        Err(format!(
            "invalid image reference \"docker://{r}\": expected docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST]"
        ))
    }
}

/// `localhost/NAME[:TAG]`, the name of an image built here, with its tag
/// (`latest` when none is given).
pub fn local_name(s: &str) -> Result<String, String> {
    let n = s.strip_prefix("localhost/").unwrap_or(s);
    let slash = n.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match n[slash..].rfind(':') {
        Some(i) => (&n[..slash + i], &n[slash + i + 1..]),
        None => (n, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if repo_ok && tag_ok {
        Ok(format!("localhost/{repo}:{tag}"))
    } else {
        Err(format!(
            "{s:?}: not an image name (lowercase letters, digits, '.', '_', '-' and '/', then an optional :TAG)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::local_name;

    #[test]
    fn built_images_are_named_under_localhost() {
        let ok = |s: &str| local_name(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("app"), "localhost/app:latest");
        assert_eq!(ok("app:1"), "localhost/app:1");
        assert_eq!(ok("localhost/app:1"), "localhost/app:1");
        assert_eq!(ok("team/app"), "localhost/team/app:latest");
        assert_eq!(ok("team/app:1.2-rc_3"), "localhost/team/app:1.2-rc_3");
        for bad in ["App", "app:", ":1", "app/:1", "app:a b", ""] {
            assert!(local_name(bad).is_err(), "{bad}");
        }
    }
}
