//! How a container joins networks (`networks`) and publishes ports.

use super::*;

impl Cx<'_> {
    pub(super) fn networks(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<NetworkMode> {
        let mut out = Vec::new();
        let mut ok = true;
        let host_alone = |cx: &mut Self, span: &Span, n: usize| {
            if n > 1 {
                cx.err_key(
                    span,
                    key,
                    "\"host\" shares the host's network and cannot be combined with other networks",
                );
            }
        };
        match &v.kind {
            Kind::Str(s) if s == "host" => return Some(NetworkMode::Host),
            Kind::Str(s) if s == "none" => return Some(NetworkMode::Loopback),
            Kind::Array(items) => {
                for (s, span) in self.strings(v, key)? {
                    if s == "host" {
                        host_alone(self, &span, items.len());
                        if items.len() == 1 {
                            return Some(NetworkMode::Host);
                        }
                        ok = false;
                        continue;
                    }
                    match self.name(&s, &span, key) {
                        Some(n) => {
                            sp.networks.push((span, None));
                            sp.aliases.push(Vec::new());
                            out.push(Attachment {
                                network: n,
                                ip: None,
                                aliases: Vec::new(),
                            });
                        }
                        None => ok = false,
                    }
                }
            }
            Kind::Table(t) => {
                for e in &t.entries {
                    let k = format!("{key}.{}", e.key);
                    if e.key == "host" {
                        host_alone(self, &e.key_span, t.entries.len());
                        if t.entries.len() == 1 {
                            return Some(NetworkMode::Host);
                        }
                        ok = false;
                        continue;
                    }
                    let Some(n) = self.name(&e.key, &e.key_span, key) else {
                        ok = false;
                        continue;
                    };
                    let Some(at) = self.table(&e.value, &k, ATTACH_KEYS) else {
                        ok = false;
                        continue;
                    };
                    let mut ip = None;
                    let mut ip_span = None;
                    if let Some(ipe) = at.get("ip") {
                        ip = self.parsed(&ipe.value, &format!("{k}.ip"), |s| {
                            s.parse::<IpAddr>()
                                .map_err(|_| format!("{s:?} is not an IP address"))
                        });
                        ok &= ip.is_some();
                        ip_span = Some(ipe.value.span.clone());
                    }
                    let mut aliases = Vec::new();
                    let mut alias_spans = Vec::new();
                    if let Some(ae) = at.get("aliases") {
                        match self.strings(&ae.value, &format!("{k}.aliases")) {
                            Some(list) => {
                                for (a, span) in list {
                                    match types::hostname(&a) {
                                        Ok(a) => {
                                            aliases.push(a);
                                            alias_spans.push(span);
                                        }
                                        Err(m) => {
                                            self.err_key(&span, &format!("{k}.aliases"), m);
                                            ok = false;
                                        }
                                    }
                                }
                            }
                            None => ok = false,
                        }
                    }
                    sp.networks.push((e.key_span.clone(), ip_span));
                    sp.aliases.push(alias_spans);
                    out.push(Attachment {
                        network: n,
                        ip,
                        aliases,
                    });
                }
            }
            _ => {
                self.type_err(v, key, "an array of network names, a table, or \"host\"");
                return None;
            }
        }
        ok.then_some(NetworkMode::Networks(out))
    }

    pub(super) fn ports(&mut self, v: &Node, key: &str, sp: &mut Spans) -> Option<Vec<PortSpec>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (s, span) in self.strings(v, key)? {
            match PortSpec::parse(&s) {
                Ok(p) => {
                    out.push(p);
                    sp.ports.push(span);
                }
                Err(m) => {
                    self.err_key(&span, key, m);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}
