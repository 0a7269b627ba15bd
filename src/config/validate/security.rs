//! `security`: capabilities, seccomp, no_new_privileges, the user namespace
//! and masked paths.

use super::*;

impl Cx<'_> {
    pub(super) fn security(&mut self, v: &Node, key: &str) -> Option<Security> {
        let t = self.table(v, key, SECURITY_KEYS)?;
        let mut s = default_security();
        let mut ok = true;
        let k = |n: &str| format!("{key}.{n}");
        if let Some(e) = t.get("capabilities") {
            match self.capabilities(&e.value, &k("capabilities")) {
                Some(c) => s.capabilities = c,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("seccomp") {
            let base = self.base.to_path_buf();
            match self.parsed(&e.value, &k("seccomp"), |x| match x {
                "default" => Ok(Seccomp::Default),
                "unconfined" => Ok(Seccomp::Unconfined),
                p => types::host_path(p, &base).map(Seccomp::Profile),
            }) {
                Some(x) => s.seccomp = x,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("no_new_privileges") {
            match self.bool(&e.value, &k("no_new_privileges")) {
                Some(b) => s.no_new_privileges = b,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("user_namespace") {
            match self.userns(&e.value, &k("user_namespace")) {
                Some(u) => s.user_namespace = u,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("masked_paths") {
            let kk = k("masked_paths");
            match &e.value.kind {
                Kind::Str(x) if x == "default" => {}
                Kind::Array(_) => match self.strings(&e.value, &kk) {
                    Some(list) => {
                        for (p, span) in list {
                            match types::container_path(&p) {
                                Ok(p) => s.masked_paths.push(p),
                                Err(m) => {
                                    self.err_key(&span, &kk, m);
                                    ok = false;
                                }
                            }
                        }
                    }
                    None => ok = false,
                },
                _ => {
                    self.type_err(&e.value, &kk, "\"default\" or an array of paths");
                    ok = false;
                }
            }
        }
        for (name, slot) in [
            ("apparmor", &mut s.apparmor),
            ("selinux_label", &mut s.selinux_label),
        ] {
            if let Some(e) = t.get(name) {
                match self.str(&e.value, &k(name)) {
                    Some(x) if !x.is_empty() && !x.contains('\0') && !x.contains('\n') => {
                        *slot = Some(x.to_string())
                    }
                    Some(_) => {
                        self.err_key(&e.value.span, &k(name), "must be a non-empty single line");
                        ok = false;
                    }
                    None => ok = false,
                }
            }
        }
        ok.then_some(s)
    }

    pub(super) fn capabilities(&mut self, v: &Node, key: &str) -> Option<Vec<&'static str>> {
        let t = self.table(v, key, CAP_KEYS)?;
        let mut ok = true;
        let mut list = |cx: &mut Self, name: &str| -> Vec<CapName> {
            let Some(e) = t.get(name) else {
                return Vec::new();
            };
            let k = format!("{key}.{name}");
            let Some(items) = cx.strings(&e.value, &k) else {
                ok = false;
                return Vec::new();
            };
            items
                .into_iter()
                .filter_map(|(s, span)| match CapName::parse(&s) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        cx.err_key(&span, &k, m);
                        ok = false;
                        None
                    }
                })
                .collect()
        };
        let drop = list(self, "drop");
        let add = list(self, "add");
        ok.then(|| effective_capabilities(&drop, &add))
    }

    pub(super) fn userns(&mut self, v: &Node, key: &str) -> Option<UserNamespace> {
        match &v.kind {
            Kind::Str(_) => self
                .choice(v, key, &[("off", 0u8), ("auto", 1u8)])
                .map(|c| {
                    if c == 0 {
                        UserNamespace::Off
                    } else {
                        UserNamespace::Auto
                    }
                }),
            Kind::Table(_) => {
                let t = self.table(v, key, USERNS_KEYS)?;
                let maps = |cx: &mut Self, name: &str| -> Option<Vec<IdMap>> {
                    let k = format!("{key}.{name}");
                    let Some(e) = t.get(name) else {
                        cx.err_key(
                            &v.span,
                            key,
                            format!("missing \"{name}\" map, like {name} = \"0:100000:65536\""),
                        );
                        return None;
                    };
                    let items: Vec<(String, Span)> = match &e.value.kind {
                        Kind::Str(s) => vec![(s.to_string(), e.value.span.clone())],
                        _ => cx.strings(&e.value, &k)?,
                    };
                    let mut out: Vec<IdMap> = Vec::new();
                    for (s, span) in items {
                        match parse_idmap(&s) {
                            Ok(m) => {
                                if out.iter().any(|o| {
                                    ranges_overlap(o.inside, o.count, m.inside, m.count)
                                        || ranges_overlap(o.outside, o.count, m.outside, m.count)
                                }) {
                                    cx.err_key(
                                        &span,
                                        &k,
                                        format!("map {s:?} overlaps another map"),
                                    );
                                    return None;
                                }
                                out.push(m);
                            }
                            Err(msg) => {
                                cx.err_key(&span, &k, msg);
                                return None;
                            }
                        }
                    }
                    if out.is_empty() {
                        cx.err_key(&e.value.span, &k, "at least one map is needed");
                        return None;
                    }
                    Some(out)
                };
                let uid = maps(self, "uid");
                let gid = maps(self, "gid");
                Some(UserNamespace::Maps {
                    uid: uid?,
                    gid: gid?,
                })
            }
            _ => {
                self.type_err(v, key, "\"off\", \"auto\" or a table of uid/gid maps");
                None
            }
        }
    }
}

pub(super) fn default_security() -> Security {
    Security {
        capabilities: defaults::capabilities(),
        seccomp: Seccomp::Default,
        no_new_privileges: true,
        user_namespace: UserNamespace::Off,
        masked_paths: Vec::new(),
        apparmor: None,
        selinux_label: None,
    }
}

pub(super) fn ranges_overlap(a: u32, n: u32, b: u32, m: u32) -> bool {
    u64::from(a) < u64::from(b) + u64::from(m) && u64::from(b) < u64::from(a) + u64::from(n)
}

pub(super) fn parse_idmap(s: &str) -> Result<IdMap, String> {
    let bad =
        || format!("invalid id map {s:?}: expected INSIDE:OUTSIDE:COUNT, like \"0:100000:65536\"");
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(bad());
    };
    let (inside, outside, count) = (
        a.parse::<u32>().map_err(|_| bad())?,
        b.parse::<u32>().map_err(|_| bad())?,
        c.parse::<u32>().map_err(|_| bad())?,
    );
    if count == 0
        || u64::from(inside) + u64::from(count) > 1 << 32
        || u64::from(outside) + u64::from(count) > 1 << 32
    {
        return Err(format!(
            "invalid id map {s:?}: the range is empty or runs past 2^32"
        ));
    }
    Ok(IdMap {
        inside,
        outside,
        count,
    })
}
