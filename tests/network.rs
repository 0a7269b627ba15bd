//! Bridge networks for real, as root: names, addresses, subnets, a
//! network changed by a reload, adoption after a crash, names asked of the
//! host's resolver. Each test runs rkstack inside a network namespace it
//! creates (`unshare -n`), so the host's own network is never touched and
//! all traffic stays between the test's namespaces. Published ports are in
//! ports.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::net::*;
use common::*;
const TWO_NETWORKS: &str = r#"
[networks.back]
subnet = "10.123.0.0/24"
[networks.other]
subnet = "10.124.0.0/24"
[networks.quiet]
subnet = "10.125.0.0/24"
internal = true
[containers.srv]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "mkdir -p /tmp/www; echo hello-from-srv > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
networks = { back = { ip = "10.123.0.50", aliases = ["web"] } }
[containers.cli]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.3; wget -q -O- http://web:8080/ && echo by-alias; wget -q -O- http://srv:8080/ && echo by-name; sleep 1000"]
networks = ["back"]
depends_on = ["srv"]
[containers.stranger]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.3; timeout 1 wget -q -O- http://10.123.0.50:8080/ || echo unreachable; sleep 1000"]
networks = ["other"]
depends_on = ["srv"]
[containers.hermit]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "ip route; echo routes-done; sleep 1000"]
networks = ["quiet"]
"#;

#[test]
fn containers_reach_each_other_by_name_and_nothing_is_left_behind() {
    require_root!();
    let mut up = NetUp::start(&unique("net"), TWO_NETWORKS);
    up.wait_for(|u| u.log_of("cli").contains("by-name"), "cli reaches srv");
    let cli = up.log_of("cli");
    assert_eq!(cli.matches("hello-from-srv").count(), 2, "{cli}");
    assert!(cli.contains("by-alias") && cli.contains("by-name"));
    up.wait_for(
        |u| u.log_of("stranger").contains("unreachable"),
        "the other network is cut off",
    );
    assert!(!up.log_of("stranger").contains("hello-from-srv"));
    up.wait_for(
        |u| u.log_of("hermit").contains("routes-done"),
        "internal network",
    );
    let hermit = up.log_of("hermit");
    assert!(
        !hermit.contains("default"),
        "an internal network has a default route:\n{hermit}"
    );
    assert!(hermit.contains("10.125.0.0/24"), "{hermit}");
    // The static address is the one asked for; names come from the
    // stack's name server on the gateway, not from a list of peers.
    let hosts = up.file(&format!("state/{}/etc/srv/hosts", up.name));
    assert!(hosts.contains("10.123.0.50\tsrv web"), "{hosts}");
    let cli_hosts = up.file(&format!("state/{}/etc/cli/hosts", up.name));
    assert!(!cli_hosts.contains("srv"), "{cli_hosts}");
    let resolv = up.file(&format!("state/{}/etc/cli/resolv.conf", up.name));
    assert!(resolv.starts_with("nameserver 10.123.0.1\n"), "{resolv}");
    let (links, addrs) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
    assert!(!addrs.contains("10.12"), "addresses left behind:\n{addrs}");
}

#[test]
fn addresses_are_stable_and_a_new_member_is_found_by_name() {
    require_root!();
    let body = r#"
[networks.back]
subnet = "10.126.0.0/24"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.5; ip -o addr show eth0; ip -o link show eth0; sleep 1000"]
networks = ["back"]
restart = "always"
restart_backoff = { initial = "50ms" }
"#;
    let mut up = NetUp::start(&unique("ipam"), body);
    let first = up.pid("a");
    up.wait_for(|u| u.log_of("a").contains("inet 10.126.0."), "address");
    // No IPv6 link-local address on an IPv4 network, in the container or
    // on the bridge's ports: nothing floods the bridge as members join.
    assert!(!up.log_of("a").contains("inet6"), "{}", up.log_of("a"));
    let host = Command::new("nsenter")
        .args([
            "-t",
            &up.supervisor_pid().to_string(),
            "-n",
            "ip",
            "-o",
            "addr",
        ])
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout);
    assert!(host.contains(" rkb"), "{host}");
    assert!(
        !host.contains(" rkv"),
        "a bridge port has an address:\n{host}"
    );
    let addr = |log: &str| {
        log.lines()
            .filter_map(|l| l.split("inet ").nth(1))
            .map(|a| a.split('/').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // SAFETY: killing a container process this test's stack started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    // Both runs' output whole: the address and then the link line.
    up.wait_for(
        |u| addr(&u.log_of("a")).len() >= 2 && u.log_of("a").matches("link/ether ").count() >= 2,
        "restarted",
    );
    let seen = addr(&up.log_of("a"));
    assert_eq!(seen[0], seen[1], "the address changed across a restart");
    // And its MAC with it, derived from the address: the neighbours' ARP
    // entries stay right (a new one left it unreachable until they expired).
    let macs: Vec<String> = up
        .log_of("a")
        .lines()
        .filter_map(|l| l.split("link/ether ").nth(1))
        .map(|m| m.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(macs.len() >= 2, "{}", up.log_of("a"));
    assert_eq!(macs[0], macs[1], "the MAC changed across a restart");
    let o: Vec<u8> = seen[0].split('.').map(|b| b.parse().unwrap()).collect();
    assert_eq!(
        macs[0],
        format!("02:6b:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
    // A container joins: a finds it by name, and neither a's process nor
    // its files were touched.
    let a_pid = up.pid("a");
    let hosts = PathBuf::from(format!("state/{}/etc/a/hosts", up.name));
    let a_hosts = up.file(hosts.to_str().unwrap());
    up.write(&format!("{body}[containers.b]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\nnetworks = [\"back\"]\n"));
    up.pid("b");
    let b = up.wait_until_resolved("a", "b");
    assert!(b.starts_with("10.126.0."), "{b}");
    assert_eq!(up.pid("a"), a_pid);
    assert_eq!(up.file(hosts.to_str().unwrap()), a_hosts);
    let (links, _) = up.stop();
    assert!(!links.contains("rkb"), "a bridge was left behind:\n{links}");
}

#[test]
fn a_subnet_the_host_already_routes_is_refused() {
    require_root!();
    let body = r#"
[networks.clash]
subnet = "10.127.1.0/24"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["clash"]
"#;
    // The test's namespace routes 10.127.0.0/16 already (a bridge of its own).
    let mut up = NetUp::start_after(
        &unique("clash"),
        body,
        "ip link add rkt-br0 type bridge && ip addr add 10.127.0.1/16 dev rkt-br0 && ip link set rkt-br0 up",
    );
    up.wait_for(
        |u| u.file("events.log").contains("a: failed to start"),
        "refused",
    );
    let events = up.file("events.log");
    assert!(
        events.contains(
            "network clash: not made: 10.127.1.0/24 overlaps the host's route to 10.127.0.0/16"
        ),
        "{events}"
    );
    assert!(events.contains("network clash is not up"), "{events}");
    let (links, _) = up.stop();
    assert!(!links.contains("rkb"), "a bridge was left behind:\n{links}");
}

#[test]
fn a_restarted_container_announces_its_address_and_serves_again_at_once() {
    require_root!();
    let body = r#"
[networks.front]
subnet = "10.129.0.0/24"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "mkdir -p /tmp/www; echo served > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"]
networks = { front = { ip = "10.129.0.20" } }
ports = ["18090:8080"]
restart = "always"
restart_backoff = { initial = "50ms" }
# Keeps the bridge's carrier up while web restarts (a bridge without ports
# drops its neighbour entries).
[containers.other]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["front"]
"#;
    let mut up = NetUp::start(&unique("garp"), body);
    let first = up.pid("web");
    let ns = up.file("pid").trim().to_string();
    // Under load: the host's neighbour entry for the container is in use.
    for _ in 0..5 {
        fetch_until(&ns, "http://127.0.0.1:18090/", "served");
    }
    // A neighbour that knew the address at another MAC (as after another
    // container had it), fresh, so it would be believed for half a minute.
    let bridge = sh_in(&ns, "ip -o -4 addr show | awk '/10.129.0.1\\//{print $2}'");
    assert!(bridge.starts_with("rkb"), "{bridge}");
    sh_in(
        &ns,
        &format!(
            "ip neigh replace 10.129.0.20 lladdr 02:00:00:00:00:01 dev {bridge} nud reachable"
        ),
    );
    let planted = sh_in(&ns, "ip neigh show 10.129.0.20");
    assert!(planted.contains("02:00:00:00:00:01"), "{planted}");
    // SAFETY: a container process this test's stack started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    up.wait_count("web: started (pid ", 2);
    // The new start announced itself: the host's entry has its MAC again
    // (the wrong one would be believed for half a minute otherwise), and
    // the port answers as soon as httpd does.
    up.wait_for(
        |_| sh_in(&ns, "ip neigh show 10.129.0.20").contains("02:6b:0a:81:00:14"),
        "the host's neighbour entry has the container's MAC again",
    );
    fetch_until(&ns, "http://127.0.0.1:18090/", "served");
    up.stop();
}

#[test]
fn a_reload_that_changes_a_network_recreates_it_and_its_members_only() {
    require_root!();
    let body = |subnet: &str| {
        format!(
            r#"
[networks.a]
subnet = "{subnet}"
[networks.b]
subnet = "10.134.0.0/24"
[containers.x]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "ip -o -4 addr show eth0; sleep 1000"]
networks = ["a"]
[containers.y]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["b"]
"#
        )
    };
    let mut up = NetUp::start(&unique("netchg"), &body("10.133.0.0/24"));
    up.wait_for(|u| u.log_of("x").contains("inet 10.133.0."), "x on a");
    let y = up.pid("y");
    let x = up.pid("x");
    up.write(&body("10.135.0.0/24"));
    up.wait_for(
        |u| u.log_of("x").contains("inet 10.135.0."),
        "x on the new a",
    );
    assert_ne!(up.pid("x"), x, "x kept its process on a recreated network");
    assert_eq!(up.pid("y"), y, "y was touched");
    let addrs = up.host("ip -o -4 addr");
    assert!(addrs.contains("10.135.0.1/24"), "{addrs}");
    assert!(
        !addrs.contains("10.133.0.1"),
        "the old gateway stayed:\n{addrs}"
    );
    let (links, _) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
}

#[test]
fn after_a_supervisor_crash_its_networks_are_adopted_or_removed() {
    require_root!();
    let keep = r#"
[networks.keep]
subnet = "10.136.0.0/24"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "ip -o -4 addr show eth0; sleep 1000"]
networks = ["keep"]
[containers.c]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "ip -o -4 addr show eth0; sleep 1000"]
networks = ["keep"]
"#;
    let gone = r#"
[networks.gone]
subnet = "10.137.0.0/24"
nat = true
[containers.b]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["gone"]
ports = ["18137:80"]
"#;
    let mut up = NetUp::start_runs(&unique("crash"), &format!("{keep}{gone}"), "true", 2);
    let a = up.pid("a");
    let b = up.pid("b");
    let c = up.pid("c");
    up.wait_for(|u| u.log_of("c").contains("inet 10.136.0."), "c's address");
    let c_addr = up.log_of("c");
    assert_eq!(
        up.host("ip -o link show type bridge | grep -c rkb").trim(),
        "2"
    );
    assert!(up.host("nft list tables").contains("rkstack"));
    let first = up.supervisor();
    // SAFETY: killing the rkstack this test started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    up.wait_for(
        |_| {
            !std::path::Path::new(&format!("/proc/{first}/status")).exists()
                || up.supervisor() != first
        },
        "the supervisor is gone",
    );
    // While it is down, c dies, and the file drops a network and its
    // member and adds a container that sorts before c.
    // SAFETY: killing a container process this test's stack started.
    unsafe { libc::kill(c, libc::SIGKILL) };
    up.write(&format!(
        "{keep}[containers.aa]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\nnetworks = [\"keep\"]\n"
    ));
    up.again();
    up.wait_for(
        |u| {
            u.file("events.log")
                .contains("b: cleaned up after the previous supervisor")
        },
        "b cleaned up",
    );
    up.wait_for(
        |u| {
            u.file("events.log")
                .contains(&format!("a: adopted (pid {a})"))
        },
        "a adopted",
    );
    up.wait_for(
        |_| up.host("ip -o link show type bridge | grep -c rkb").trim() == "1",
        "the dropped network's bridge is removed",
    );
    up.wait_for(
        |_| {
            let rules = up.host("nft list ruleset");
            !rules.contains("18137") && !rules.contains("10.137.0.0/24")
        },
        "the dropped network's rules are removed",
    );
    up.wait_for(
        |_| !std::path::Path::new(&format!("/proc/{b}/status")).exists(),
        "b's process is gone",
    );
    assert!(up.log_of("a").contains("inet 10.136.0."));
    // c started again with the address it had.
    up.wait_for(
        |u| u.log_of("c").matches("inet 10.136.0.").count() == 2,
        "c restarted",
    );
    let lines: Vec<String> = up
        .log_of("c")
        .lines()
        .filter_map(|l| l.split("inet ").nth(1))
        .map(|a| a.split('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        lines[0], lines[1],
        "c's address changed:\n{c_addr}\n{lines:?}"
    );
    let (links, _) = up.stop();
    assert_eq!(links.lines().count(), 1, "links left behind:\n{links}");
}

/// A resolver for the test's namespace: any A question on 127.0.0.1:53 is
/// answered 10.200.0.9, any other with no records.
const FAKE_RESOLVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(OUT + "/resolver-up", "w").close()
while True:
    q, a = s.recvfrom(512)
    end = 12
    while q[end]:
        end += q[end] + 1
    qtype = q[end + 1] * 256 + q[end + 2]
    end += 5
    with open(OUT + "/asked", "a") as f:
        f.write(repr(q[12:end]) + "\n")
    if qtype == 1:
        ans = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + bytes([10, 200, 0, 9])
        s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:end] + ans, a)
    else:
        s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + q[12:end], a)
"#;

#[test]
fn names_outside_the_stack_are_asked_of_the_hosts_resolver_but_not_from_an_internal_network() {
    require_root!();
    let body = r#"
[networks.out]
subnet = "10.138.0.0/24"
[networks.shut]
subnet = "10.139.0.0/24"
internal = true
[containers.open]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["out"]
[containers.closed]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
networks = ["shut"]
"#;
    let work = tempfile::tempdir().unwrap();
    let d = work.path().display().to_string();
    std::fs::write(
        work.path().join("resolver.py"),
        format!("OUT = {d:?}\n{FAKE_RESOLVER}"),
    )
    .unwrap();
    std::fs::write(
        work.path().join("resolv.conf"),
        "nameserver 127.0.0.1\nsearch lab.test\n",
    )
    .unwrap();
    // The resolver is ended when the test ends, whatever happened.
    struct EndResolver(std::path::PathBuf);
    impl Drop for EndResolver {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(&self.0)
                .unwrap_or_default()
                .trim()
                .parse::<i32>()
            {
                // SAFETY: ending the resolver this test started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
    let _resolver = EndResolver(work.path().join("resolver.pid"));
    let setup = format!(
        "mount --bind {d}/resolv.conf /etc/resolv.conf && (python3 {d}/resolver.py & echo $! > {d}/resolver.pid); \
         while [ ! -e {d}/resolver-up ]; do sleep 0.02; done"
    );
    let mut up = NetUp::start_with_mounts(&unique("fwd"), body, &setup);
    up.pid("open");
    up.pid("closed");
    let resolv = up.file(&format!("state/{}/etc/open/resolv.conf", up.name));
    assert_eq!(resolv, "nameserver 10.138.0.1\nsearch lab.test\n");
    assert_eq!(up.wait_until_resolved("open", "example.test"), "10.200.0.9");
    let asked_before = std::fs::read_to_string(work.path().join("asked")).unwrap_or_default();
    let out = up.rk(&[
        "exec",
        "closed",
        "--",
        "/bin/busybox",
        "nslookup",
        "-type=a",
        "example.test",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("10.200.0.9"),
        "an internal network reached out:\n{text}"
    );
    let asked_after = std::fs::read_to_string(work.path().join("asked")).unwrap_or_default();
    assert_eq!(asked_before, asked_after, "the question went out");
    up.stop();
}
