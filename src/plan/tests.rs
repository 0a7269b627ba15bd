//! Golden tests: a plan's text is the contract of `rkstack plan` and of the
//! supervisor's log line before it executes a plan.

use std::path::Path;

use super::*;
use crate::config;

fn desired(src: &str) -> DesiredState {
    let stack = config::parse(src, Path::new("/t/stack.toml")).unwrap_or_else(|e| panic!("{e}"));
    DesiredState::from_stack(stack)
}

const BASE: &str = r#"
name = "demo"
[networks.backend]
subnet = "10.89.0.0/24"
[containers.db]
image = "host"
command = ["/bin/db"]
networks = ["backend"]
health = { command = ["/bin/true"] }
[containers.web]
image = "host"
command = ["/bin/web"]
depends_on = { db = "healthy" }
networks = ["backend"]
resources = { memory = "128M", pids = 100 }
[containers.worker]
image = "host"
command = ["/bin/worker"]
depends_on = ["db"]
"#;

/// The plan for `new` against a stack that runs exactly as `old`.
fn plan(old: &str, new: &str) -> String {
    let observed = ObservedState::from_desired(&desired(old));
    reconcile(&desired(new), &observed).to_string()
}

#[test]
fn everything_new_in_dependency_order() {
    let p = reconcile(&desired(BASE), &ObservedState::default());
    assert_eq!(
        p.to_string(),
        "\
stack demo: create 1 network, start 3 containers
  create  network    backend  new in file
  start   container  db       new in file
  start   container  web      new in file
  start   container  worker   new in file
"
    );
    assert!(!p.is_noop());
}

#[test]
fn nothing_to_do() {
    let p = reconcile(&desired(BASE), &ObservedState::from_desired(&desired(BASE)));
    assert!(p.is_noop());
    assert_eq!(
        p.to_string(),
        "\
stack demo: nothing to do (3 containers unchanged)
  keep    network    backend  unchanged
  keep    container  db       unchanged
  keep    container  web      unchanged
  keep    container  worker   unchanged
"
    );
}

#[test]
fn command_changed_recreates_only_that_container() {
    let new = BASE.replace("/bin/worker", "/bin/worker2");
    assert_eq!(
        plan(BASE, &new),
        "\
stack demo: recreate 1 container, keep 2 containers
  stop    container  worker   recreate: command changed
  keep    network    backend  unchanged
  keep    container  db       unchanged
  keep    container  web      unchanged
  start   container  worker   recreate: command changed
"
    );
}

#[test]
fn several_keys_changed_are_all_named() {
    let new = BASE.replace(
        "command = [\"/bin/worker\"]",
        "command = [\"/bin/w\"]\nenv = { A = \"1\" }\nread_only = true",
    );
    assert!(
        plan(BASE, &new).contains(
            "  stop    container  worker   recreate: command, env and read_only changed\n"
        )
    );
}

#[test]
fn only_limits_changed_updates_in_place() {
    let new = BASE.replace(
        "memory = \"128M\", pids = 100",
        "memory = \"256M\", pids = 100, cpus = 0.5",
    );
    assert_eq!(
        plan(BASE, &new),
        "\
stack demo: update 1 container, keep 2 containers
  keep    network    backend  unchanged
  keep    container  db       unchanged
  update  container  web      memory limit 128M → 256M, cpus unlimited → 0.5: applied in place
  keep    container  worker   unchanged
"
    );
    let p = reconcile(&desired(&new), &ObservedState::from_desired(&desired(BASE)));
    let update = p.ops.iter().find(|o| o.action == Action::Update).unwrap();
    assert_eq!(update.limits.as_ref().unwrap().memory, Some(256 << 20));
}

#[test]
fn policy_only_changes_touch_nothing() {
    let new = BASE.replace(
        "command = [\"/bin/worker\"]",
        "command = [\"/bin/worker\"]\nrestart = \"always\"\nstop_timeout = \"3s\"\nlogging = { max_files = 9 }",
    );
    assert!(reconcile(&desired(&new), &ObservedState::from_desired(&desired(BASE))).is_noop());
}

#[test]
fn container_added_and_removed() {
    let new = BASE
        .replace("[containers.worker]", "[containers.cron]")
        .replace("/bin/worker", "/bin/cron");
    assert_eq!(
        plan(BASE, &new),
        "\
stack demo: start 1 container, stop 1 container, keep 2 containers
  stop    container  worker   removed from file
  keep    network    backend  unchanged
  keep    container  db       unchanged
  start   container  cron     new in file
  keep    container  web      unchanged
"
    );
}

#[test]
fn network_changed_recreates_its_members_only() {
    // worker depends on db but is not on the network: it goes on running.
    let new = BASE.replace("10.89.0.0/24", "10.90.0.0/24");
    assert_eq!(
        plan(BASE, &new),
        "\
stack demo: recreate 1 network, recreate 2 containers, keep 1 container
  stop    container  web      recreate: network backend is recreated
  stop    container  db       recreate: network backend is recreated
  remove  network    backend  recreate: gateway and subnet changed
  create  network    backend  recreate: gateway and subnet changed
  start   container  db       recreate: network backend is recreated
  start   container  web      recreate: network backend is recreated
  keep    container  worker   unchanged
"
    );
}

#[test]
fn a_recreated_dependency_restarts_only_the_dependents_that_ask() {
    // As compose: `restart = true` on the dependency; without it the
    // dependent keeps running through the dependency's recreate.
    let old = BASE.replace(
        "depends_on = { db = \"healthy\" }",
        "depends_on = { db = { condition = \"healthy\", restart = true } }",
    );
    let new = old.replace("/bin/db", "/bin/db2");
    assert_eq!(
        plan(&old, &new),
        "\
stack demo: recreate 1 container, restart 1 container, keep 1 container
  stop    container  web      restart: dependency db is restarted (restart = true)
  stop    container  db       recreate: command changed
  keep    network    backend  unchanged
  start   container  db       recreate: command changed
  start   container  web      restart: dependency db is restarted (restart = true)
  keep    container  worker   unchanged
"
    );
    // Adding or dropping the flag changes nothing that runs.
    assert!(
        plan(BASE, &old).contains("nothing to do"),
        "{}",
        plan(BASE, &old)
    );
}

#[test]
fn removed_network_goes_after_its_members_stop() {
    let new = r#"
name = "demo"
[containers.db]
image = "host"
command = ["/bin/db"]
"#;
    assert_eq!(
        plan(BASE, new),
        "\
stack demo: remove 1 network, recreate 1 container, stop 2 containers
  stop    container  worker   removed from file
  stop    container  web      removed from file
  stop    container  db       recreate: networks changed
  remove  network    backend  removed from file
  start   container  db       recreate: networks changed
"
    );
}

#[test]
fn stop_order_is_reverse_of_start_order() {
    let chain = r#"
name = "chain"
[containers.a]
image = "host"
command = ["a"]
[containers.b]
image = "host"
command = ["b"]
depends_on = ["a"]
[containers.c]
image = "host"
command = ["c"]
depends_on = ["b"]
"#;
    let d = desired(chain);
    let order: Vec<&str> = d.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
    let empty = desired("name = \"chain\"\n");
    let p = reconcile(&empty, &ObservedState::from_desired(&d));
    let stops: Vec<&str> = p.ops.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(stops, ["c", "b", "a"]);
}

#[test]
fn hash_ignores_policy_keys_and_is_pinned() {
    let a = desired(BASE);
    let b = desired(&BASE.replace(
        "depends_on = [\"db\"]",
        "depends_on = []\nrestart = \"always\"\nstart_limit = { burst = 3 }\nstop_signal = \"SIGINT\"",
    ));
    let hash = |d: &DesiredState| d.container("worker").unwrap().hash.clone();
    assert_eq!(hash(&a), hash(&b));
    let c = desired(&BASE.replace("/bin/worker", "/bin/other"));
    assert_ne!(hash(&a), hash(&c));
    // Resource limits are hashed apart: a limit change is no recreate.
    let web = |d: &DesiredState| d.container("web").unwrap().hash.clone();
    assert_eq!(web(&a), web(&desired(&BASE.replace("128M", "1G"))));
    // Pinned: a change of the encoding must come with a new HASH_VERSION.
    assert_eq!(
        hash(&a),
        "v1:5ca06d488efc4b901af68737bcbf748eb09d2a4f1c65f9ccf46302165fe6c635"
    );
}

#[test]
fn older_hash_version_is_named() {
    let d = desired(BASE);
    let mut observed = ObservedState::from_desired(&d);
    for r in observed.containers.values_mut() {
        r.hash = r.hash.replace("v1:", "v0:");
    }
    let p = reconcile(&d, &observed).to_string();
    assert!(p.contains("recreate: spec format changed (v0 → v1)"), "{p}");
}

#[test]
fn plan_serializes_for_the_api() {
    let p = reconcile(&desired(BASE), &ObservedState::default());
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["ops"][0]["action"], "create");
    assert_eq!(v["ops"][0]["target"], "network");
    assert_eq!(v["ops"][1]["why"], "new");
    // Records round-trip through JSON (the supervisor's state file).
    let o = ObservedState::from_desired(&desired(BASE));
    let back: ObservedState = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
}
