//! One test per validation rule (`rejects_*`), asserting the exact line and
//! column, plus happy paths per section and every example file. Here: the
//! file as a whole (keys, types, values, defaults, syntax, examples);
//! `containers.rs` the rules of a container's own keys; `networks.rs`
//! addresses, subnets and ports.

use std::path::Path;

use super::*;

mod containers;
mod networks;

pub(super) const HEAD: &str = "name = \"t\"\n";

pub(super) fn ok(src: &str) -> Stack {
    match parse(src, Path::new("/etc/rkstack/t.toml")) {
        Ok(s) => s,
        Err(e) => panic!("expected valid, got:\n{e}"),
    }
}

/// Every problem as `LINE:COL: message`.
pub(super) fn errs(src: &str) -> Vec<String> {
    match parse(src, Path::new("/etc/rkstack/t.toml")) {
        Ok(_) => panic!("expected problems in:\n{src}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect(),
    }
}

pub(super) fn has(errs: &[String], want: &str) {
    assert!(
        errs.iter().any(|e| e.contains(want)),
        "no problem containing {want:?} in:\n{}",
        errs.join("\n")
    );
}

pub(super) fn container(body: &str) -> String {
    format!("{HEAD}[containers.c]\nimage = \"host\"\ncommand = [\"/bin/true\"]\n{body}")
}

#[test]
fn minimal_container_gets_defaults() {
    let s = ok(&container(""));
    let c = &s.containers["c"];
    assert_eq!(c.hostname, "c");
    assert_eq!(c.restart, RestartPolicy::No);
    assert_eq!(c.stop_timeout.to_string(), "10s");
    assert_eq!(c.stop_signal.name(), "SIGTERM");
    assert_eq!(c.security.capabilities.len(), 14);
    assert!(c.security.no_new_privileges);
    assert_eq!(c.security.seccomp, Seccomp::Default);
    assert_eq!(c.network, NetworkMode::Loopback);
    assert_eq!(c.workdir, Path::new("/"));
    assert_eq!(s.summary(), "1 container, 0 networks");
}

#[test]
fn every_key_parses() {
    let s = ok(r#"
name = "full"
[networks.backend]
driver = "bridge"
subnet = "10.89.0.0/24"
gateway = "10.89.0.1"
nat = true
internal = false
[networks.quiet]
driver = "none"
[volumes.data]
path = "data"
[containers.db]
image = "dir:rootfs"
command = ["/bin/db"]
health = { command = "test -f /ok", interval = "5s", timeout = "2s", retries = 3, start_period = "10s" }
[containers.web]
image = "dir:/srv/rootfs/web"
pull_policy = "never"
command = ["/bin/httpd", "-f", "-p", "8080"]
env = { PORT = "8080", DEBUG = 1, ON = true }
workdir = "/srv"
user = "1000:1000"
hostname = "web.local"
restart = "always"
restart_backoff = { initial = "100ms", max = "30s", reset_after = "60s" }
start_limit = { burst = 5, interval = "60s" }
depends_on = { db = "healthy" }
stop_signal = "SIGQUIT"
stop_timeout = "1m30s"
read_only = true
networks = { backend = { ip = "10.89.0.10", aliases = ["www"] }, quiet = {} }
ports = ["8080:8080/tcp", "127.0.0.1:5353:53/udp"]
mounts = [
  { type = "bind",   source = "/srv/config", target = "/etc/app", read_only = true },
  { type = "volume", source = "data",        target = "/data" },
  { type = "tmpfs",  target = "/tmp", size = "64M", mode = "1777" },
  "/srv/logs:/logs:ro",
]
[containers.web.resources]
memory = "128M"
memory_reservation = "64M"
cpus = 0.5
cpu_weight = 100
cpuset = "0-1"
pids = 256
io_weight = 100
io_limits = [{ device = "/dev/vda", read_bps = "10M", write_bps = 1048576, read_iops = 10, write_iops = 100 }]
devices = [{ path = "/dev/ttyUSB0", access = "rw" }, "/dev/fuse"]
rlimits = { nofile = 1024, core = 0, stack = "unlimited", nproc = { soft = 10, hard = 20 } }
[containers.web.security]
capabilities = { drop = ["ALL"], add = ["NET_BIND_SERVICE"] }
seccomp = "profiles/web.json"
no_new_privileges = false
user_namespace = { uid = "0:100000:65536", gid = ["0:100000:1000", "1000:101000:64536"] }
masked_paths = ["/proc/cpuinfo"]
apparmor = "rkstack-default"
selinux_label = "system_u:system_r:container_t:s0"
[containers.web.logging]
max_size = "10M"
max_files = 3
"#);
    let web = &s.containers["web"];
    assert_eq!(web.security.capabilities, ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(
        web.security.seccomp,
        Seccomp::Profile("/etc/rkstack/profiles/web.json".into())
    );
    assert_eq!(
        s.volumes["data"].path.as_deref(),
        Some(Path::new("/etc/rkstack/data"))
    );
    assert_eq!(
        s.containers["db"].image,
        ImageRef::Dir {
            path: "/etc/rkstack/rootfs".into()
        }
    );
    assert_eq!(web.env["DEBUG"], "1");
    assert_eq!(web.depends_on.values().next(), Some(&Condition::Healthy));
    assert_eq!(web.resources.cpuset.as_deref(), Some(&[0, 1][..]));
    assert_eq!(web.resources.rlimits["stack"].hard, None);
    assert_eq!(web.resources.devices[0].access, "rw");
    assert_eq!(
        web.mounts[3],
        Mount::Bind {
            source: "/srv/logs".into(),
            target: "/logs".into(),
            read_only: true
        }
    );
    let NetworkMode::Networks(a) = &web.network else {
        panic!()
    };
    assert_eq!(
        a.iter().map(|a| a.network.as_str()).collect::<Vec<_>>(),
        ["backend", "quiet"]
    );
    assert_eq!(s.networks["quiet"].driver, Driver::None);
    assert_eq!(
        s.containers["db"].health.as_ref().unwrap().command,
        ["test", "-f", "/ok"]
    );
}

#[test]
fn defaults_merge_and_container_wins() {
    let s = ok(&format!(
        "{HEAD}[defaults]\nrestart = \"always\"\nenv = {{ A = \"1\", B = \"2\" }}\nresources = {{ pids = 10, memory = \"8M\" }}\n\
         [containers.a]\nimage = \"host\"\ncommand = [\"x\"]\nrestart = \"no\"\nenv = {{ B = \"3\" }}\nresources = {{ pids = 20 }}\n\
         [containers.b]\nimage = \"host\"\ncommand = [\"x\"]\n"
    ));
    let a = &s.containers["a"];
    assert_eq!(a.restart, RestartPolicy::No);
    assert_eq!(a.env["A"], "1");
    assert_eq!(a.env["B"], "3");
    assert_eq!(a.resources.pids, Some(20));
    assert_eq!(a.resources.memory, Some(ByteSize(8 << 20)));
    assert_eq!(s.containers["b"].restart, RestartPolicy::Always);
}

#[test]
fn rejects_bad_value_in_defaults_once_pointing_at_defaults() {
    let e = errs(&format!(
        "{HEAD}[defaults]\nrestart = \"sometimes\"\n[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\n[containers.b]\nimage = \"host\"\ncommand = [\"x\"]\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("3:11: defaults.restart: expected one of"),
        "{e:?}"
    );
}

#[test]
fn rejects_unknown_key_with_suggestion() {
    let e = errs(&container("imgae = \"x\"\n"));
    assert_eq!(
        e,
        ["5:1: unknown key \"containers.c.imgae\"; did you mean \"image\"?"]
    );
    let e = errs(&format!("{HEAD}[container.x]\n"));
    assert_eq!(
        e,
        ["2:2: unknown key \"container\"; did you mean \"containers\"?"]
    );
    let e = errs(&container("[containers.c.resources]\nmemroy = \"1G\"\n"));
    has(
        &e,
        "6:1: unknown key \"containers.c.resources.memroy\"; did you mean \"memory\"?",
    );
}

#[test]
fn rejects_wrong_type() {
    let e = errs(&container("read_only = \"yes\"\n"));
    assert_eq!(
        e,
        ["5:13: containers.c.read_only: expected true or false, found a string"]
    );
    let e = errs(&container("command2 = 1\nports = 8080\n"));
    has(
        &e,
        "6:9: containers.c.ports: expected an array of strings, found an integer",
    );
}

#[test]
fn rejects_bad_duration() {
    let e = errs(&container("stop_timeout = \"10 seconds\"\n"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("5:16: containers.c.stop_timeout: invalid duration \"10 seconds\""),
        "{e:?}"
    );
}

#[test]
fn rejects_bad_size() {
    let e = errs(&container("resources = { memory = \"12Q\" }\n"));
    assert!(
        e[0].starts_with("5:24: containers.c.resources.memory: invalid size \"12Q\""),
        "{e:?}"
    );
    let e = errs(&container("resources = { memory = 10 }\n"));
    has(&e, "memory limit 10 is below 6M");
    has(
        &errs(&container("resources = { pids = 0 }\n")),
        "pids 0 would let no process start",
    );
    has(
        &errs(&container("user = \"0:99999999999\"\n")),
        "gid 99999999999 is out of range",
    );
}

#[test]
fn rejects_missing_name_and_bad_names() {
    has(
        &errs("[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\n"),
        "1:1: missing required key \"name\"",
    );
    has(
        &errs(&format!(
            "{HEAD}[containers.Web]\nimage = \"host\"\ncommand = [\"x\"]\n"
        )),
        "2:13: invalid key: invalid name \"Web\"",
    );
    has(
        &errs("name = \"this-stack-name-is-far-too-long-for-us\"\n"),
        "at most 31",
    );
    // One-off containers (`rkstack run`) live under the stack "run".
    has(
        &errs("name = \"run\"\n"),
        "1:8: name: \"run\" is reserved for the one-off containers of `rkstack run`",
    );
}

#[test]
fn collects_every_problem_in_one_run() {
    let src = format!(
        "{HEAD}[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\nrestart = \"sometimes\"\nstop_timeout = \"forever\"\nresources = {{ memory = \"lots\" }}\nfoo = 1\n"
    );
    let e = errs(&src);
    assert_eq!(e.len(), 4, "{e:?}");
    // Sorted by position in the file.
    assert!(
        e[0].starts_with("5:11:")
            && e[1].starts_with("6:16:")
            && e[2].starts_with("7:24:")
            && e[3].starts_with("8:1:"),
        "{e:?}"
    );
}

#[test]
fn rejects_syntax_errors_with_location() {
    let e = errs("name = \"t\"\n[containers.a\n");
    assert!(e[0].starts_with("2:"), "{e:?}");
    let e = errs("name = \"t\"\nname = \"u\"\n");
    assert!(
        e[0].starts_with("2:1:") && e[0].contains("duplicate"),
        "{e:?}"
    );
    let e = errs("name = 99999999999999999999\n");
    assert!(e[0].starts_with("1:8:"), "{e:?}");
}

#[test]
fn load_reports_file_problems_each_in_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    assert!(matches!(load(&missing), Err(ConfigError::NotFound { .. })));
    assert!(
        load(&missing)
            .unwrap_err()
            .to_string()
            .ends_with("nope.toml: no such file")
    );
    assert!(matches!(
        load(dir.path()),
        Err(ConfigError::IsDirectory { .. })
    ));
    let bin = dir.path().join("bin.toml");
    std::fs::write(&bin, b"name = \"t\"\n# caf\xe9\n").unwrap();
    let e = load(&bin).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("bin.toml:2:6: the file is not valid UTF-8 text"),
        "{e}"
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, container("")).unwrap();
    assert_eq!(load(&good).unwrap().name.as_str(), "t");
}

#[test]
fn every_example_stack_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = load(&path) {
                panic!("{}:\n{e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} examples");
}
