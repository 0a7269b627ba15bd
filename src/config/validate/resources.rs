//! `resources`: memory, CPU, pids, I/O, devices and rlimits.

use super::*;

impl Cx<'_> {
    pub(super) fn resources(&mut self, v: &Node, key: &str) -> Option<Resources> {
        let t = self.table(v, key, RESOURCE_KEYS)?;
        let mut r = Resources::default();
        let mut ok = true;
        let k = |n: &str| format!("{key}.{n}");
        macro_rules! field {
            ($name:literal, $dst:expr, $e:expr) => {
                if let Some(e) = t.get($name) {
                    let got = $e(self, &e.value, &k($name));
                    ok &= got.is_some();
                    $dst = got;
                }
            };
        }
        field!("memory", r.memory, |cx: &mut Self, v: &Node, k: &str| {
            let s = cx.size(v, k)?;
            cx.checked(v, k, limits::memory(s))
        });
        field!(
            "memory_reservation",
            r.memory_reservation,
            |cx: &mut Self, v, k: &str| cx.size(v, k)
        );
        field!("cpus", r.cpus, |cx: &mut Self, v: &Node, k: &str| {
            let x = match v.kind {
                Kind::Float(x) => x,
                Kind::Int(n) => n as f64,
                _ => {
                    cx.type_err(v, k, "a number of CPUs like 0.5");
                    return None;
                }
            };
            cx.checked(v, k, limits::cpus(x))
        });
        field!("cpu_weight", r.cpu_weight, |cx: &mut Self, v, k: &str| cx
            .u32(v, k, 1, 10_000));
        field!("cpuset", r.cpuset, |cx: &mut Self, v, k: &str| cx.parsed(
            v,
            k,
            types::cpuset
        ));
        field!("pids", r.pids, |cx: &mut Self, v: &Node, k: &str| {
            let n = cx.int(v, k, 0, i64::MAX)?;
            cx.checked(v, k, limits::pids(n.unsigned_abs()))
        });
        field!("io_weight", r.io_weight, |cx: &mut Self, v, k: &str| cx
            .u32(v, k, 1, 10_000));
        if let (Some(m), Some(res)) = (r.memory, r.memory_reservation)
            && res > m
            && let Some(e) = t.get("memory_reservation")
        {
            self.err_key(
                &e.value.span,
                &k("memory_reservation"),
                format!("{res} is above the memory limit {m}"),
            );
            ok = false;
        }
        if let Some(e) = t.get("io_limits") {
            match self.io_limits(&e.value, &k("io_limits")) {
                Some(l) => r.io_limits = l,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("devices") {
            match self.devices(&e.value, &k("devices")) {
                Some(d) => r.devices = d,
                None => ok = false,
            }
        }
        if let Some(e) = t.get("rlimits") {
            match self.rlimits(&e.value, &k("rlimits")) {
                Some(l) => r.rlimits = l,
                None => ok = false,
            }
        }
        ok.then_some(r)
    }

    pub(super) fn dev_path(&mut self, v: &Node, key: &str) -> Option<PathBuf> {
        let p = self.container_path(v, key)?;
        if !p.starts_with("/dev") || p == Path::new("/dev") {
            self.err_key(
                &v.span,
                key,
                format!("{} is not a device path under /dev", p.display()),
            );
            return None;
        }
        Some(p)
    }

    pub(super) fn io_limits(&mut self, v: &Node, key: &str) -> Option<Vec<IoLimit>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of tables");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(t) = self.table(item, &k, IO_LIMIT_KEYS) else {
                ok = false;
                continue;
            };
            let device = match t.get("device") {
                Some(e) => self.dev_path(&e.value, &format!("{k}.device")),
                None => {
                    self.err_key(&item.span, &k, "missing \"device\"");
                    None
                }
            };
            let mut l = IoLimit {
                device: PathBuf::new(),
                read_bps: None,
                write_bps: None,
                read_iops: None,
                write_iops: None,
            };
            let mut good = device.is_some();
            for (name, slot) in [
                ("read_bps", &mut l.read_bps),
                ("write_bps", &mut l.write_bps),
            ] {
                if let Some(e) = t.get(name) {
                    *slot = self.size(&e.value, &format!("{k}.{name}"));
                    good &= slot.is_some();
                }
            }
            for (name, slot) in [
                ("read_iops", &mut l.read_iops),
                ("write_iops", &mut l.write_iops),
            ] {
                if let Some(e) = t.get(name) {
                    *slot = self
                        .int(&e.value, &format!("{k}.{name}"), 1, i64::MAX)
                        .map(|n| n.unsigned_abs());
                    good &= slot.is_some();
                }
            }
            if good && let Some(d) = device {
                l.device = d;
                out.push(l);
            } else {
                ok = false;
            }
        }
        ok.then_some(out)
    }

    pub(super) fn devices(&mut self, v: &Node, key: &str) -> Option<Vec<Device>> {
        let Kind::Array(items) = &v.kind else {
            self.type_err(v, key, "an array of devices");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let dev = if let Kind::Str(_) = item.kind {
                self.dev_path(item, &k).map(|path| Device {
                    path,
                    access: "rwm".into(),
                })
            } else {
                let t = self.table(item, &k, DEVICE_KEYS);
                let path = match t.and_then(|t| t.get("path")) {
                    Some(e) => self.dev_path(&e.value, &format!("{k}.path")),
                    None => {
                        if t.is_some() {
                            self.err_key(&item.span, &k, "missing \"path\"");
                        }
                        None
                    }
                };
                let access = match t.and_then(|t| t.get("access")) {
                    Some(e) => self.parsed(&e.value, &format!("{k}.access"), |s| {
                        if !s.is_empty() && s.chars().all(|c| "rwm".contains(c)) {
                            Ok(['r', 'w', 'm'].iter().filter(|c| s.contains(**c)).collect())
                        } else {
                            Err(format!("invalid access {s:?}: use letters r, w, m"))
                        }
                    }),
                    None => Some("rwm".to_string()),
                };
                match (path, access) {
                    (Some(path), Some(access)) => Some(Device { path, access }),
                    _ => None,
                }
            };
            match dev {
                Some(d) => out.push(d),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn rlimits(&mut self, v: &Node, key: &str) -> Option<BTreeMap<String, Rlimit>> {
        let t = self.table(v, key, RLIMIT_NAMES)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        let value = |cx: &mut Self, v: &Node, k: &str| -> Option<Option<u64>> {
            match &v.kind {
                Kind::Str(s) if s == "unlimited" || s == "infinity" => Some(None),
                _ => cx.int(v, k, 0, i64::MAX).map(|n| Some(n.unsigned_abs())),
            }
        };
        for e in &t.entries {
            if !RLIMIT_NAMES.contains(&e.key.as_ref()) {
                ok = false;
                continue;
            }
            let k = format!("{key}.{}", e.key);
            let lim = match &e.value.kind {
                Kind::Table(_) => {
                    let Some(lt) = self.table(&e.value, &k, RLIMIT_KEYS) else {
                        ok = false;
                        continue;
                    };
                    let soft = lt
                        .get("soft")
                        .map(|x| value(self, &x.value, &format!("{k}.soft")));
                    let hard = lt
                        .get("hard")
                        .map(|x| value(self, &x.value, &format!("{k}.hard")));
                    match (soft, hard) {
                        (Some(Some(s)), Some(Some(h))) => Some(Rlimit { soft: s, hard: h }),
                        (Some(Some(s)), None) => Some(Rlimit { soft: s, hard: s }),
                        (None, Some(Some(h))) => Some(Rlimit { soft: h, hard: h }),
                        (None, None) => {
                            self.err_key(&e.value.span, &k, "give soft, hard or both");
                            None
                        }
                        _ => None,
                    }
                }
                _ => value(self, &e.value, &k).map(|n| Rlimit { soft: n, hard: n }),
            };
            match lim {
                Some(l) => {
                    let over = match (l.soft, l.hard) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(s), Some(h)) => s > h,
                    };
                    if over {
                        self.err_key(&e.value.span, &k, "the soft limit is above the hard limit");
                        ok = false;
                    }
                    out.insert(e.key.to_string(), l);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}
