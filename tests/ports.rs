//! Published ports for real, as root: TCP and UDP answer from the host
//! side and from outside, go with `down`, and a port held by a socket or
//! published by another stack is refused before anything changes. Each
//! test runs rkstack inside a network namespace it creates (`unshare -n`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
#[test]
fn published_ports_answer_from_the_host_side_and_go_with_down() {
    require_root!();
    let body = r#"
[networks.front]
subnet = "10.128.0.0/24"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "mkdir -p /tmp/www; echo published-ok > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
networks = ["front"]
ports = ["18080:8080", "127.0.0.1:18081:8080"]
"#;
    let mut up = NetUp::start(&unique("ports"), body);
    up.pid("web");
    let pid = up.file("pid").trim().to_string();
    for url in [
        "http://127.0.0.1:18080/",
        "http://127.0.0.1:18081/",
        "http://10.128.0.1:18080/",
    ] {
        fetch_until(&pid, url, "published-ok");
    }
    // 127.0.0.1:18081 is published on loopback only: not on the bridge's address.
    assert!(fetch_in(&pid, "http://10.128.0.1:18081/").starts_with("failed"));
    // The ports are reserved: a program of the host cannot bind them (and
    // then wait for traffic that goes to the container), even with
    // SO_REUSEADDR; other ports it can.
    let bind = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ntry:\n s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(); print('bound')\nexcept OSError as e:\n print('refused', e.errno)";
    assert_eq!(python_in(&pid, bind, &["0.0.0.0", "18080"]), "refused 98");
    assert_eq!(python_in(&pid, bind, &["127.0.0.1", "18081"]), "refused 98");
    assert_eq!(python_in(&pid, bind, &["0.0.0.0", "18082"]), "bound");
    let (links, _) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
    assert!(
        !up.file("nft").contains("rkstack"),
        "nft table left behind: {}",
        up.file("nft")
    );
}

#[test]
fn a_host_port_held_by_a_socket_is_refused_before_anything_changes() {
    require_root!();
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("held");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{stack}\"\n[networks.n]\nsubnet = \"10.129.0.0/24\"\n[containers.web]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nnetworks = [\"n\"]\nports = [\"18090:80\"]\n",
            fs.path().display()
        ),
    )
    .unwrap();
    // In the test's own namespace: a listener holds port 18090 (0x46AA), then rkstack tries.
    let script = format!(
        "ip link set lo up; python3 -m http.server 18090 --bind 127.0.0.1 >/dev/null 2>&1 & h=$!; \
         for i in $(seq 100); do grep -q ':46AA 00000000:0000 0A' /proc/net/tcp && break; sleep 0.05; done; \
         timeout -s TERM 10 {rk} --state-dir {d}/state --data-dir {d}/data up {f}; echo exit=$?; ip -o link | grep -c rkb; kill $h",
        rk = rkstack(),
        d = dir.path().display(),
        f = file.display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "web: host port 18090/tcp is already in use on this host; nothing was started"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("exit=1"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with('0'),
        "a bridge was made: {stdout}"
    );
    assert_no_cgroups(&stack);
}

#[test]
fn a_published_udp_port_answers_from_the_host_side() {
    require_root!();
    let body = r#"
[networks.front]
subnet = "10.132.0.0/24"
[containers.dns]
image = "dir:ROOTFS"
command = ["/probe", "udp", "5353"]
networks = ["front"]
ports = ["15353:5353/udp"]
"#;
    let mut up = NetUp::start(&unique("udp"), body);
    up.wait_for(|u| u.log_of("dns").contains("udp listening"), "listening");
    let sup = up.supervisor();
    for (i, host) in ["127.0.0.1", "10.132.0.1"].iter().enumerate() {
        let msg = format!("hello{i}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = udp_in(sup, host, 15353, &msg);
            if got == format!("echo:{msg}") {
                break;
            }
            assert!(Instant::now() < deadline, "{host}: {got}");
        }
    }
    assert!(up.log_of("dns").contains("udp got hello1"));
    let (links, _) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
    assert!(!up.file("nft").contains("rkstack"), "{}", up.file("nft"));
}

#[test]
fn a_host_port_another_stack_publishes_is_refused() {
    require_root!();
    let body = r#"
[networks.n]
subnet = "10.138.0.0/24"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["n"]
ports = ["18138:80"]
"#;
    let first = unique("pub1");
    let mut up = NetUp::start(&first, body);
    up.pid("web");
    up.wait_for(
        |u| {
            u.file(&format!("state/{first}/state.json"))
                .contains("18138")
        },
        "the port is recorded",
    );
    let second = unique("pub2");
    let file = up.dir.path().join("second.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{second}\"\n{}",
            body.replace("10.138.", "10.139.")
                .replace("ROOTFS", &up.fs.path().display().to_string())
        ),
    )
    .unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", up.supervisor()))
        .arg(rkstack())
        .arg("--state-dir")
        .arg(up.dir.path().join("state"))
        .arg("--data-dir")
        .arg(up.dir.path().join("data"))
        .args(["up", "-d"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "web: host port 18138/tcp is already published by stack {first}"
        )),
        "{stderr}"
    );
    assert_eq!(
        up.host("ip -o link show type bridge | grep -c rkb").trim(),
        "1",
        "the second stack made its bridge"
    );
    let (links, _) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
    assert_no_cgroups(&second);
}

#[test]
fn published_ports_answer_from_outside_and_nat_reaches_out_while_networks_stay_apart() {
    require_root!();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "outside-ok\n").unwrap();
    // "Outside": another namespace behind a veth, 192.168.77.2, with a web
    // server. Forwarding starts off in the test's namespace (a new one
    // copies the host's IPv4 settings, which may have it on).
    let setup = format!(
        "echo 0 > /proc/sys/net/ipv4/ip_forward; \
         unshare -n timeout 60 sleep 60 >/dev/null 2>&1 & o=$!; echo $o > {w}/outside; \
         for i in $(seq 500); do [ \"$(readlink /proc/$o/ns/net)\" != \"$(readlink /proc/self/ns/net)\" ] && break; sleep 0.01; done; \
         ip link add rkt-out0 type veth peer name rkt-out1 netns $o && ip addr add 192.168.77.1/24 dev rkt-out0 && ip link set rkt-out0 up && \
         nsenter --net=/proc/$o/ns/net sh -c 'ip link set lo up; ip addr add 192.168.77.2/24 dev rkt-out1; ip link set rkt-out1 up' && \
         nsenter --net=/proc/$o/ns/net timeout 60 python3 -m http.server 9000 --bind 192.168.77.2 --directory {w} >/dev/null 2>&1 & echo $! > {w}/server",
        w = www.path().display()
    );
    let body = r#"
[networks.front]
subnet = "10.140.0.0/24"
nat = true
[networks.side]
subnet = "10.141.0.0/24"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "mkdir -p /tmp/www; echo inside-ok > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
networks = { front = { ip = "10.140.0.10" } }
ports = ["18200:8080"]
[containers.client]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.3; until timeout 1 wget -q -O- http://192.168.77.2:9000/; do sleep 0.2; done; echo reached-outside; sleep 1000"]
networks = ["front"]
[containers.stranger]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.5; timeout 1 wget -q -O- http://10.140.0.10:8080/ || echo cut-off; sleep 1000"]
networks = ["side"]
"#;
    let mut up = NetUp::start_after(&unique("outside"), body, &setup);
    up.wait_for(
        |u| u.log_of("client").contains("reached-outside"),
        "NAT out",
    );
    assert!(up.log_of("client").contains("outside-ok"));
    let outside: i32 = std::fs::read_to_string(www.path().join("outside"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    fetch_until(
        &outside.to_string(),
        "http://192.168.77.1:18200/",
        "inside-ok",
    );
    // Forwarding is on now, and still the other network cannot reach web.
    assert_eq!(up.host("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert!(up.file("events.log").contains("IPv4 forwarding turned on"));
    up.wait_for(
        |u| u.log_of("stranger").contains("cut-off"),
        "networks stay apart",
    );
    assert!(!up.log_of("stranger").contains("inside-ok"));
    let (links, _) = up.stop();
    let server: i32 = std::fs::read_to_string(www.path().join("server"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in [server, outside] {
        // SAFETY: ending what this test started (`timeout` passes it on).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    assert!(
        !links.contains("rkb") && !links.contains("rkv"),
        "left behind:\n{links}"
    );
}
