//! `rkstack check` and `rkstack plan` as a user runs them: exit codes, stdout, stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rkstack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkstack"))
        .args(args)
        .output()
        .expect("run rkstack")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/stacks")
        .join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_demo_with_a_summary() {
    let out = rkstack(&["check", example("demo.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: 3 containers, 1 network, 1 volume\nthe device needs: nftables (the nft program; nf_tables with nat, fib and masquerade) for ports, NAT and network separation; bridge and veth\n"
    );
}

#[test]
fn check_json_prints_the_effective_configuration() {
    let out = rkstack(&["check", "--json", example("demo.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // [defaults] applied: restart comes from there for db; web sets its own.
    assert_eq!(v["containers"]["db"]["restart"], "on-failure");
    assert_eq!(v["containers"]["web"]["restart"], "always");
    assert_eq!(v["containers"]["worker"]["stop_timeout"], "5s");
    assert_eq!(v["networks"]["backend"]["gateway"], "10.89.0.1");
}

/// `check --effective` writes a stack file that checks to the same
/// effective configuration, from another folder.
#[test]
fn check_effective_is_a_stack_file_of_the_same_stack() {
    let demo = example("demo.toml");
    let out = rkstack(&["check", "--effective", demo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("effective.toml");
    std::fs::write(&again, &out.stdout).unwrap();
    let json = |f: &std::path::Path| {
        let o = rkstack(&["check", "--json", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(json(&demo), json(&again), "{}", text(&out.stdout));
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        r#"name = "broken"
[networks.a]
subnet = "10.1.0.0/16"
[networks.b]
subnet = "10.1.2.0/24"
[containers.web]
image = "host"
command = ["/bin/true"]
restart = "alwyas"
stop_timeout = "10 seconds"
depends_on = ["db"]
networks = { a = { ip = "10.2.0.5" }, c = {} }
ports = ["8080:80"]
resources = { memory = "12Q" }
security = { capabilities = { add = ["NET_ADMN"] } }
colour = "blue"
[containers.db]
image = "host"
command = ["/bin/true"]
depends_on = ["web"]
networks = ["a"]
ports = ["8080:81"]
"#,
    )
    .unwrap();
    let f = file.display().to_string();
    let out = rkstack(&["check", &f]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    for want in [
        format!("{f}:5:10: networks.b.subnet: 10.1.2.0/24 overlaps 10.1.0.0/16"),
        format!(
            "{f}:9:11: containers.web.restart: expected one of no, on-failure, always, unless-stopped, found \"alwyas\"; did you mean \"always\"?"
        ),
        format!("{f}:10:16: containers.web.stop_timeout: invalid duration"),
        format!("{f}:11:15: containers.web.depends_on: dependency cycle: db → web → db"),
        format!("{f}:12:25: containers.web.networks: 10.2.0.5 is outside the subnet 10.1.0.0/16"),
        format!("{f}:12:39: containers.web.networks: no network named \"c\""),
        format!(
            "{f}:13:10: containers.web.ports: host port 8080 is already published by container \"db\""
        ),
        format!("{f}:14:24: containers.web.resources.memory: invalid size \"12Q\""),
        format!(
            "{f}:15:38: containers.web.security.capabilities.add: unknown capability \"NET_ADMN\""
        ),
        format!("{f}:16:1: unknown key \"containers.web.colour\""),
        format!("{f}: 10 problems found"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn check_names_file_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = rkstack(&["check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing.toml: no such file"),
        "{}",
        text(&out.stderr)
    );
    let out = rkstack(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is a directory, not a stack file"));
}

#[test]
fn what_the_host_lacks_is_a_warning_and_with_strict_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"s\"\n[containers.a]\nimage = \"dir:{r}\"\ncommand = [\"/bin/true\"]\nuser = \"app\"\n\
             mounts = [{{ type = \"bind\", source = \"{d}/gone\", target = \"/x\" }}]\n\
             [containers.b]\nimage = \"dir:{d}/nope\"\ncommand = [\"/bin/true\"]\n",
            r = root.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = rkstack(&["check", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for want in [
        "warning: on this host: a: bind source ",
        "warning: on this host: a: user \"app\" is not in ",
        "warning: on this host: b: rootfs ",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    assert!(text(&out.stdout).starts_with("ok: 2 containers"));
    let out = rkstack(&["check", "--strict", f]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).matches("error: on this host: ").count(),
        3
    );
    // A user the rootfs lists, and everything there: nothing to say.
    std::fs::create_dir_all(dir.path().join("gone")).unwrap();
    std::fs::create_dir_all(dir.path().join("nope")).unwrap();
    std::fs::write(root.join("etc/passwd"), "app:x:1000:1000::/:/bin/sh\n").unwrap();
    let out = rkstack(&["check", "--strict", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn bad_usage_exits_2() {
    let out = rkstack(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rkstack(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let f = example("demo.toml");
    let a = rkstack(&["--stack", "demo", "check", f.to_str().unwrap()]);
    let b = rkstack(&["check", f.to_str().unwrap(), "--stack", "demo"]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn plan_of_the_demo_against_nothing() {
    let out = rkstack(&["plan", example("demo.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
stack demo: create 1 network, start 3 containers
  create  network    backend  new in file
  start   container  db       new in file
  start   container  web      new in file
  start   container  worker   new in file
"
    );
    let out = rkstack(&["plan", "--json", example("demo.toml").to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["stack"], "demo");
    assert_eq!(v["ops"].as_array().unwrap().len(), 4);
}

#[test]
fn check_compiles_the_seccomp_profiles_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"sc\"\n[containers.a]\nimage = \"host\"\ncommand = [\"/bin/true\"]\nsecurity = {{ seccomp = \"{}\" }}\n",
            profile.display()
        ),
    )
    .unwrap();
    let good = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#;
    std::fs::write(&profile, good).unwrap();
    let out = rkstack(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(&profile, good.replace("SCMP_ACT_ALLOW", "SCMP_ACT_BOGUS")).unwrap();
    let out = rkstack(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("SCMP_ACT_BOGUS"),
        "{}",
        text(&out.stderr)
    );
}

/// Every web server the examples and the README start serves a folder of
/// its own (`httpd -h DIR`): one without serves the whole image, and on
/// `image = "host"` that is the host's files.
#[test]
fn example_web_servers_serve_a_folder_made_for_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("examples/stacks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.push(root.join("README.md"));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text
            .lines()
            .filter(|l| l.contains("httpd") && (l.contains("\"-p\"") || l.contains("httpd -f")))
        {
            assert!(
                line.contains("\"-h\"") || line.contains(" -h "),
                "{}: a web server without its own folder: {line}",
                f.display()
            );
        }
    }
}

/// `up` and `run` without root say so at once, instead of failing later
/// on a cgroup or a mount.
#[test]
fn up_and_run_without_root_say_they_need_it() {
    for args in [
        vec!["up", "/nonexistent/stack.toml"],
        vec!["run", "dir:/", "--", "/bin/true"],
    ] {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let out = if root {
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_rkstack"))
                .args(&args)
                .output()
                .expect("setpriv")
        } else {
            rkstack(&args)
        };
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("{} needs root", args[0])),
            "{}",
            text(&out.stderr)
        );
    }
}

#[cfg(feature = "docs")]
#[test]
fn completions_and_manual_pages_are_generated() {
    let out = rkstack(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("_rkstack()"),
        "{}",
        text(&out.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = rkstack(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for page in [
        "rkstack.1",
        "rkstack-up.1",
        "rkstack-ps.1",
        "rkstack-logs.1",
    ] {
        let p = dir.path().join(page);
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(t.contains(".TH"), "{page} is no manual page");
    }
}

/// A command's help starts with its own options; the global, remote and
/// registry ones follow under their headings.
#[test]
fn help_puts_a_commands_own_options_first_and_groups_the_rest() {
    let out = rkstack(&["ps", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    let at = |s: &str| {
        help.find(s)
            .unwrap_or_else(|| panic!("no {s:?} in\n{help}"))
    };
    assert!(at("--quiet") < at("Global options:"), "{help}");
    assert!(
        at("Global options:") < at("Remote access (--host):"),
        "{help}"
    );
    assert!(at("Remote access (--host):") < at("--token-file"), "{help}");
    assert!(at("Registries:") < at("--insecure-registry"), "{help}");
}

#[test]
fn logs_of_a_stack_that_is_down_are_read_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("data/s/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        logs.join("a.log.1"),
        "2026-11-30T17:59:00.000Z stdout zero\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("a.log"),
        "2026-11-30T18:00:00.000Z stdout one\n2026-11-30T18:00:05.000Z stderr two\n",
    )
    .unwrap();
    std::fs::write(logs.join("b.log"), "2026-11-30T18:00:01.000Z stdout bee\n").unwrap();
    let data = dir.path().join("data");
    let state = dir.path().join("state");
    let logs_of = |args: &[&str]| {
        let mut all = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "logs",
        ];
        all.extend_from_slice(args);
        rkstack(&all)
    };
    // Every container, prefixed, rotations first; the only stack there.
    let out = logs_of(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a | zero\na | one\nb | bee\n");
    assert_eq!(text(&out.stderr), "a | two\n");
    // --tail, --since (a UTC time) and -t, on one of them.
    let out = logs_of(&["--stack", "s", "--tail", "2", "-t", "a"]);
    assert_eq!(
        text(&out.stdout),
        "2026-11-30T18:00:00.000Z stdout one\n2026-11-30T18:00:05.000Z stderr two\n"
    );
    let out = logs_of(&["--since", "2026-11-30T18:00:01Z"]);
    assert_eq!(text(&out.stdout), "b | bee\n");
    assert_eq!(text(&out.stderr), "a | two\n");
    let out = logs_of(&["--since", "1m", "a"]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    // A bad --since is a usage error; an unknown container is named.
    assert_eq!(logs_of(&["--since", "yesterday"]).status.code(), Some(2));
    let out = logs_of(&["c"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no log of c"),
        "{}",
        text(&out.stderr)
    );
}
