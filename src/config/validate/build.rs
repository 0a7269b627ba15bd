//! `build`: how a container's `localhost/` image is built.

use super::*;

impl Cx<'_> {
    /// `build = "DIR"` or `build = { context = "DIR", file = "...", args =
    /// { ... }, target = "..." }`; paths relative to the stack file.
    pub(super) fn build(&mut self, v: &Node, key: &str) -> Option<Build> {
        if let Kind::Str(_) = &v.kind {
            let context = self.host_path(v, key)?;
            return Some(Build {
                context,
                file: None,
                args: BTreeMap::new(),
                target: None,
            });
        }
        let t = self.table(v, key, BUILD_KEYS)?;
        let context = match t.get("context") {
            Some(e) => self.host_path(&e.value, &format!("{key}.context"))?,
            None => {
                self.err_key(&v.span, key, "missing \"context\" (the folder to build)");
                return None;
            }
        };
        let file = match t.get("file") {
            Some(e) => Some(self.host_path(&e.value, &format!("{key}.file"))?),
            None => None,
        };
        let args = match t.get("args") {
            Some(e) => self.env(&e.value, &format!("{key}.args"))?,
            None => BTreeMap::new(),
        };
        let target = match t.get("target") {
            Some(e) => Some(self.str(&e.value, &format!("{key}.target"))?.to_string()),
            None => None,
        };
        Some(Build {
            context,
            file,
            args,
            target,
        })
    }
}
