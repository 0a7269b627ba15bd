//! `mounts`: binds, volumes and tmpfs, in their table and short forms.

use super::*;

impl Cx<'_> {
    pub(super) fn mounts(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<Vec<Mount>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of mounts");
            return None;
        };
        let mut out: Vec<Mount> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let m = self.mount(item, &k, sp);
            match m {
                Some(m) => {
                    if let Err(e) = limits::mount_target(&m) {
                        self.err_key(&item.span, &k, e);
                        ok = false;
                    }
                    if out.iter().any(|o| o.target() == m.target()) {
                        self.err_key(
                            &item.span,
                            &k,
                            format!("two mounts target {}", m.target().display()),
                        );
                        ok = false;
                    }
                    out.push(m);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn mount(&mut self, item: &Node, k: &str, sp: &mut Spans) -> Option<Mount> {
        // Short form, as compose: "SOURCE:TARGET[:ro|rw]".
        if let Kind::Str(s) = &item.kind {
            let parts: Vec<&str> = s.split(':').collect();
            let (src, dst, ro) = match parts.as_slice() {
                [a, b] => (*a, *b, false),
                [a, b, "ro"] => (*a, *b, true),
                [a, b, "rw"] => (*a, *b, false),
                _ => {
                    self.err_key(
                        &item.span,
                        k,
                        format!("invalid mount {s:?}: expected SOURCE:TARGET[:ro]"),
                    );
                    return None;
                }
            };
            let target = match types::container_path(dst) {
                Ok(t) => t,
                Err(m) => {
                    self.err_key(&item.span, k, m);
                    return None;
                }
            };
            if src.starts_with('/') || src.starts_with('.') {
                let source = types::host_path(src, self.base).ok()?;
                return Some(Mount::Bind {
                    source,
                    target,
                    read_only: ro,
                });
            }
            let source = self.name(src, &item.span, k)?;
            sp.mount_sources.push(item.span.clone());
            return Some(Mount::Volume {
                source,
                target,
                read_only: ro,
            });
        }
        let t = self.table(item, k, MOUNT_KEYS)?;
        let Some(ty) = t.get("type") else {
            self.err_key(&item.span, k, "missing \"type\" (bind, volume or tmpfs)");
            return None;
        };
        #[derive(Clone, Copy)]
        enum Ty {
            Bind,
            Volume,
            Tmpfs,
        }
        let ty = self.choice(
            &ty.value,
            &format!("{k}.type"),
            &[
                ("bind", Ty::Bind),
                ("volume", Ty::Volume),
                ("tmpfs", Ty::Tmpfs),
            ],
        )?;
        let target = match t.get("target") {
            Some(e) => self.container_path(&e.value, &format!("{k}.target")),
            None => {
                self.err_key(
                    &item.span,
                    k,
                    "missing \"target\" (the path inside the container)",
                );
                None
            }
        };
        let read_only = match t.get("read_only") {
            Some(e) => self.bool(&e.value, &format!("{k}.read_only")),
            None => Some(false),
        };
        let not_for = |cx: &mut Self, keys: &[&str], what: &str| {
            for key in keys {
                if let Some(e) = t.get(key) {
                    cx.err_key(
                        &e.key_span,
                        &format!("{k}.{key}"),
                        format!("{what} mounts take no {key}"),
                    );
                }
            }
        };
        match ty {
            Ty::Bind | Ty::Volume => {
                not_for(
                    self,
                    &["size", "mode"],
                    if matches!(ty, Ty::Bind) {
                        "bind"
                    } else {
                        "volume"
                    },
                );
                let Some(src) = t.get("source") else {
                    self.err_key(&item.span, k, "missing \"source\"");
                    return None;
                };
                if matches!(ty, Ty::Bind) {
                    let source = self.host_path(&src.value, &format!("{k}.source"))?;
                    Some(Mount::Bind {
                        source,
                        target: target?,
                        read_only: read_only?,
                    })
                } else {
                    let s = self.str(&src.value, &format!("{k}.source"))?;
                    let source = self.name(s, &src.value.span, &format!("{k}.source"))?;
                    sp.mount_sources.push(src.value.span.clone());
                    Some(Mount::Volume {
                        source,
                        target: target?,
                        read_only: read_only?,
                    })
                }
            }
            Ty::Tmpfs => {
                not_for(self, &["source", "read_only"], "tmpfs");
                let size = match t.get("size") {
                    Some(e) => Some(self.size(&e.value, &format!("{k}.size"))?),
                    None => None,
                };
                let mode = match t.get("mode") {
                    Some(e) => Some(self.mode(&e.value, &format!("{k}.mode"))?),
                    None => None,
                };
                Some(Mount::Tmpfs {
                    target: target?,
                    size,
                    mode,
                })
            }
        }
    }
}
