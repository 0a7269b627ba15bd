//! The rules of a container's own keys: capabilities, dependencies,
//! volumes and mounts, images and commands, limits and security, verity.

use super::*;

#[test]
fn rejects_unknown_capability() {
    let e = errs(&container(
        "security = { capabilities = { add = [\"SYS_ADMN\"] } }\n",
    ));
    assert_eq!(
        e,
        [
            "5:38: containers.c.security.capabilities.add: unknown capability \"SYS_ADMN\"; did you mean \"CAP_SYS_ADMIN\"?"
        ]
    );
}

#[test]
fn rejects_cycle_naming_it() {
    let src = format!(
        "{HEAD}[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\ndepends_on = [\"b\"]\n\
         [containers.b]\nimage = \"host\"\ncommand = [\"x\"]\ndepends_on = [\"c\"]\n\
         [containers.c]\nimage = \"host\"\ncommand = [\"x\"]\ndepends_on = {{ a = \"started\" }}\n"
    );
    let e = errs(&src);
    assert_eq!(
        e,
        ["13:16: containers.c.depends_on: dependency cycle: a → b → c → a"]
    );
    let e = errs(&container("depends_on = [\"c\"]\n"));
    has(&e, "cannot depend on itself");
}

#[test]
fn rejects_missing_dependency_and_unhealthy_wait() {
    let e = errs(&container("depends_on = [\"dd\"]\n"));
    assert_eq!(
        e,
        ["5:15: containers.c.depends_on: no container named \"dd\""]
    );
    let src = format!(
        "{HEAD}[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\n[containers.b]\nimage = \"host\"\ncommand = [\"x\"]\ndepends_on = {{ a = \"healthy\" }}\n"
    );
    has(&errs(&src), "has no [health] check");
}

#[test]
fn depends_on_restart_is_a_flag_beside_the_condition() {
    let src = format!(
        "{HEAD}[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\n[containers.b]\nimage = \"host\"\ncommand = [\"x\"]\n\
         depends_on = {{ a = {{ condition = \"started\", restart = true }} }}\n"
    );
    let s = ok(&src);
    let b = &s.containers["b"];
    assert!(b.restart_with.iter().any(|n| n.as_str() == "a"));
    assert_eq!(b.depends_on.values().next(), Some(&Condition::Started));
    let bad = src.replace("restart = true", "restart = \"yes\"");
    has(&errs(&bad), "containers.b.depends_on.a.restart");
    let missing = src.replace("condition = \"started\", ", "");
    has(&errs(&missing), "missing \"condition\"");
    let unknown = src.replace("restart = true", "required = true");
    has(&errs(&unknown), "required");
}

#[test]
fn rejects_missing_volume_and_bad_mounts() {
    let e = errs(&container(
        "mounts = [{ type = \"volume\", source = \"data\", target = \"/d\" }]\n",
    ));
    assert_eq!(
        e,
        ["5:39: containers.c.mounts: no volume named \"data\" in [volumes]"]
    );
    has(
        &errs(&container(
            "mounts = [{ type = \"bind\", source = \"/x\", target = \"rel\" }]\n",
        )),
        "must be absolute",
    );
    has(
        &errs(&container(
            "mounts = [{ type = \"bind\", source = \"/x\", target = \"/a/../b\" }]\n",
        )),
        "\"..\"",
    );
    has(
        &errs(&container(
            "mounts = [{ type = \"tmpfs\", target = \"/t\" }, { type = \"tmpfs\", target = \"/t/\" }]\n",
        )),
        "two mounts target /t",
    );
    has(
        &errs(&container(
            "mounts = [{ type = \"tmpfs\", source = \"x\", target = \"/t\" }]\n",
        )),
        "tmpfs mounts take no source",
    );
    has(
        &errs(&container(
            "mounts = [{ type = \"nfs\", target = \"/t\" }]\n",
        )),
        "expected one of bind, volume, tmpfs",
    );
}

#[test]
fn rejects_missing_image_and_command() {
    let e = errs(&format!("{HEAD}[containers.a]\ncommand = [\"x\"]\n"));
    assert_eq!(
        e,
        [
            "2:13: containers.a: missing required key \"image\" (like image = \"host\" or \"dir:/srv/rootfs\")"
        ]
    );
    has(
        &errs(&format!("{HEAD}[containers.a]\nimage = \"dir:/r\"\n")),
        "missing \"command\"",
    );
    ok(&format!(
        "{HEAD}[containers.a]\nimage = \"docker://alpine:3\"\n"
    ));
    has(
        &errs(&container("command = []\n").replace("command = [\"/bin/true\"]\n", "")),
        "must not be empty",
    );
    has(
        &errs(&format!(
            "{HEAD}[containers.a]\nimage = \"/srv/x\"\ncommand = [\"x\"]\n"
        )),
        "did you mean \"dir:/srv/x\"?",
    );
    // A typo of `host` is that, not a registry image.
    has(
        &errs(&format!(
            "{HEAD}[containers.a]\nimage = \"hots\"\ncommand = [\"x\"]\n"
        )),
        "did you mean \"host\"?",
    );
}

#[test]
fn rejects_bad_limits_and_security() {
    has(
        &errs(&container(
            "resources = { memory = \"64M\", memory_reservation = \"128M\" }\n",
        )),
        "above the memory limit",
    );
    has(
        &errs(&container("resources = { cpus = 0 }\n")),
        "cpus: cpus 0 is out of range",
    );
    has(
        &errs(&container("resources = { cpu_weight = 0 }\n")),
        "out of range (1..=10000)",
    );
    has(
        &errs(&container("resources = { cpuset = \"3-1\" }\n")),
        "invalid cpuset",
    );
    has(
        &errs(&container("resources = { devices = [\"/etc/passwd\"] }\n")),
        "not a device path",
    );
    has(
        &errs(&container(
            "resources = { devices = [{ path = \"/dev/x\", access = \"rwx\" }] }\n",
        )),
        "invalid access",
    );
    has(
        &errs(&container("resources = { rlimits = { nofles = 10 } }\n")),
        "did you mean \"nofile\"?",
    );
    has(
        &errs(&container(
            "resources = { rlimits = { nofile = { soft = 20, hard = 10 } } }\n",
        )),
        "soft limit is above",
    );
    has(
        &errs(&container("security = { seccomp = \"\" }\n")),
        "must not be empty",
    );
    has(
        &errs(&container("security = { user_namespace = \"maybe\" }\n")),
        "expected one of off, auto",
    );
    has(
        &errs(&container(
            "security = { user_namespace = { uid = \"0:1:0\", gid = \"0:1:1\" } }\n",
        )),
        "range is empty",
    );
    has(
        &errs(&container(
            "security = { user_namespace = { uid = [\"0:1000:10\", \"5:2000:10\"], gid = \"0:1:1\" } }\n",
        )),
        "overlaps another map",
    );
    has(
        &errs(&container(
            "restart_backoff = { initial = \"1m\", max = \"1s\" }\n",
        )),
        "longer than max",
    );
    has(
        &errs(&container("stop_signal = \"SIGTREM\"\n")),
        "did you mean \"SIGTERM\"?",
    );
    has(&errs(&container("user = \"a b\"\n")), "invalid user");
    has(
        &errs(&container(
            "health = { command = [\"x\"], interval = \"0s\" }\n",
        )),
        "longer than 0s",
    );
    has(
        &errs(&container("logging = { max_files = 0 }\n")),
        "out of range",
    );
    has(
        &errs(&container("logging = { driver = \"journal\" }\n")),
        "did you mean \"journald\"?",
    );
    has(
        &errs(&format!("{HEAD}[update]\nrollback = \"aut\"\n")),
        "did you mean \"auto\"?",
    );
    has(
        &errs(&format!("{HEAD}[update]\ntimeout = \"0s\"\n")),
        "update.timeout: must be longer than 0s",
    );
    has(
        &errs(&format!("{HEAD}[update]\nkepe = 3\n")),
        "did you mean \"keep\"?",
    );
    has(
        &errs(&format!("{HEAD}[networks.n]\nsubnet = \"10.1.0.1/24\"\n")),
        "did you mean \"10.1.0.0/24\"?",
    );
    has(
        &errs(&format!(
            "{HEAD}[networks.n]\nsubnet = \"10.1.0.0/24\"\nnat = true\ninternal = true\n"
        )),
        "exclude each other",
    );
    has(
        &errs(&format!(
            "{HEAD}[networks.n]\ndriver = \"none\"\nsubnet = \"10.1.0.0/24\"\n"
        )),
        "only bridge networks take subnet",
    );
}

#[test]
fn verity_is_for_filesystem_images_with_a_hex_root_hash() {
    let hash = "ab".repeat(32);
    let s = ok(&format!(
        "{HEAD}[containers.c]\nimage = \"squashfs:/srv/app.sqfs\"\ncommand = [\"/x\"]\nverity = {{ root_hash = \"{}\" }}\n",
        hash.to_uppercase()
    ));
    let v = s.containers["c"].verity.as_ref().unwrap();
    assert_eq!(v.root_hash, hash);
    assert_eq!(v.hash_file, Path::new("/srv/app.sqfs.verity"));
    let s = ok(&format!(
        "{HEAD}[containers.c]\nimage = \"erofs:/srv/app.erofs\"\ncommand = [\"/x\"]\nverity = {{ root_hash = \"{hash}\", hash_file = \"tree\" }}\n"
    ));
    assert_eq!(
        s.containers["c"].verity.as_ref().unwrap().hash_file,
        Path::new("/etc/rkstack/tree")
    );
    let e = errs(&container(&format!(
        "verity = {{ root_hash = \"{hash}\" }}\n"
    )));
    has(
        &e,
        "5:10: containers.c.verity: only squashfs: and erofs: images",
    );
    let e = errs(&format!(
        "{HEAD}[containers.c]\nimage = \"squashfs:/a\"\ncommand = [\"/x\"]\nverity = {{ root_hash = \"xyz\" }}\n"
    ));
    has(
        &e,
        "5:24: containers.c.verity.root_hash: a root hash is 32 to 128 hex digits",
    );
    let e = errs(&format!(
        "{HEAD}[containers.c]\nimage = \"squashfs:/a\"\ncommand = [\"/x\"]\nverity = {{ hash_file = \"/t\" }}\n"
    ));
    has(&e, "containers.c.verity: missing \"root_hash\"");
}
