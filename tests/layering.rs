//! The dependency rule of architecture.md, checked: sandbox and network know
//! nothing of the stack file, the planner or the supervisor; the planner
//! does no I/O and knows nothing of what executes its plans.

use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

fn forbid(dir: &str, words: &[&str]) {
    for (file, text) in sources(dir) {
        for w in words {
            assert!(
                !text.contains(w),
                "{file} uses {w}: against the module layering of architecture.md"
            );
        }
    }
}

#[test]
fn lower_layers_do_not_reach_up() {
    forbid(
        "sandbox",
        &[
            "crate::config",
            "crate::plan",
            "crate::supervisor",
            "crate::network",
        ],
    );
    forbid(
        "network",
        &[
            "crate::config",
            "crate::plan",
            "crate::supervisor",
            "crate::sandbox",
        ],
    );
    forbid(
        "config",
        &[
            "crate::plan",
            "crate::supervisor",
            "crate::sandbox",
            "crate::network",
        ],
    );
    // The API is a client of the supervisor, never the other way round:
    // the supervisor knows control requests, not HTTP.
    forbid("supervisor", &["crate::api", "axum", "hyper"]);
    forbid("sandbox", &["crate::api", "crate::image"]);
    forbid(
        "image",
        &[
            "crate::config",
            "crate::plan",
            "crate::supervisor",
            "crate::api",
        ],
    );
    forbid("network", &["crate::api"]);
    // A container is made for `up` and `run` alike and knows neither.
    forbid(
        "container",
        &["crate::supervisor", "crate::api", "crate::plan"],
    );
}

/// The supervisor decides; it acts on the machine only through the
/// `container::Launcher` and `network::NetOps` seams, which the binary's
/// entry point joins to the real implementations.
#[test]
fn the_supervisor_acts_only_through_its_seams() {
    forbid(
        "supervisor",
        &[
            "network::linux",
            "network::nft",
            "network::netlink",
            "network::LinuxNet",
            "LinuxLauncher",
            "sandbox::spawn",
            "sandbox::exec",
            "container::linux",
        ],
    );
}

/// HTTP is `api/`'s business alone: the request vocabulary (`control/`)
/// names failures by kind, and `api/server/` gives each its status.
/// (`image/registry.rs` speaks HTTP to registries, as a client of theirs.)
#[test]
fn no_http_status_outside_the_api() {
    for dir in [
        "config",
        "container",
        "control",
        "host",
        "network",
        "plan",
        "sandbox",
        "supervisor",
    ] {
        forbid(dir, &["StatusCode", "status: u16", "axum", "hyper::"]);
    }
    forbid(
        "control",
        &[
            "crate::supervisor",
            "crate::api",
            "crate::sandbox",
            "crate::network",
            "crate::container",
            "std::fs",
            "libc::",
        ],
    );
    forbid("plan", &["crate::control"]);
    forbid("host", &["crate::supervisor", "crate::api"]);
}

#[test]
fn the_planner_is_pure() {
    forbid(
        "plan",
        &[
            "crate::sandbox",
            "crate::network",
            "crate::supervisor",
            "std::fs",
            "std::process",
            "Instant::now",
            "SystemTime::now",
            "libc::",
        ],
    );
}

/// The crate's top-level modules depend on each other without a circle
/// (config → plan → supervisor → ..., never back): each names only those
/// below it.
#[test]
fn the_modules_form_no_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_dir() && name != "cli" {
            modules.push(name);
        } else if let Some(m) = name.strip_suffix(".rs")
            && !matches!(m, "lib" | "main")
        {
            modules.push(m.to_string());
        }
    }
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let texts: Vec<String> = if src.join(m).is_dir() {
            sources(m).into_iter().map(|(_, t)| t).collect()
        } else {
            vec![std::fs::read_to_string(src.join(format!("{m}.rs"))).unwrap()]
        };
        for t in texts {
            for part in t.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != *m && modules.contains(&name) {
                    uses.entry(m.clone()).or_default().insert(name);
                }
            }
        }
    }
    // Depth-first search for a way back to where it started.
    fn reaches(
        uses: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for next in uses.get(from).into_iter().flatten() {
            path.push(next.clone());
            if next == to || (seen.insert(next.clone()) && reaches(uses, next, to, seen, path)) {
                return true;
            }
            path.pop();
        }
        false
    }
    for m in &modules {
        let mut path = vec![m.clone()];
        assert!(
            !reaches(&uses, m, m, &mut BTreeSet::new(), &mut path),
            "modules in a circle: {}",
            path.join(" -> ")
        );
    }
}
