//! Bridge networks for real, as root. Each test runs rkstack inside a
//! network namespace it creates (`unshare -n`), so the host's own network is
//! never touched and all traffic stays between the test's namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;

/// The shared stack fixture, brought up inside a network namespace the test
/// made (`unshare -n`); `child` is the shell that holds the namespace.
struct NetUp(Stack);

impl std::ops::Deref for NetUp {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl NetUp {
    fn start(stack: &str, body: &str) -> NetUp {
        NetUp::start_after(stack, body, "true")
    }

    /// Starts rkstack after `setup` ran in the test's network namespace.
    fn start_after(stack: &str, body: &str, setup: &str) -> NetUp {
        NetUp::start_runs(stack, body, setup, 1)
    }

    /// Like `start_after`, but rkstack is started `runs` times in the same
    /// namespace: after each run ends, the next waits for [`NetUp::again`].
    fn start_runs(stack: &str, body: &str, setup: &str, runs: usize) -> NetUp {
        NetUp::start_ns(stack, body, setup, runs, &["-n"])
    }

    /// Like `start_after`, with a mount namespace of the test's own too
    /// (`setup` may bind files over the host's, such as /etc/resolv.conf).
    fn start_with_mounts(stack: &str, body: &str, setup: &str) -> NetUp {
        NetUp::start_ns(stack, body, setup, 1, &["-n", "-m"])
    }

    fn start_ns(stack: &str, body: &str, setup: &str, runs: usize, unshare: &[&str]) -> NetUp {
        let mut up = Stack::named(stack, std::path::Path::new(rkstack()));
        // (busybox 1.35's `wget -T` crashes: tests bound wget with `timeout`.)
        for applet in ["wget", "httpd", "ip", "timeout"] {
            std::os::unix::fs::symlink("busybox", up.fs.path().join("bin").join(applet)).unwrap();
        }
        up.write(body);
        let script = format!(
            "ip link set lo up; {setup}; for run in $(seq {runs}); do \
               if [ $run -gt 1 ]; then while [ ! -e {d}/go ]; do [ -e {d}/stop ] && exit 0; sleep 0.02; done; rm {d}/go; fi; \
               {rk} --state-dir {d}/state --data-dir {d}/data up {d}/stack.toml 2>>{d}/events.log & echo $! > {d}/pid; wait $!; \
             done; ip -o link > {d}/links; ip -o addr > {d}/addrs; nft list tables > {d}/nft 2>&1",
            rk = rkstack(),
            d = up.dir.path().display()
        );
        let child = Command::new("unshare")
            .args(unshare)
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        up.child = Some(child);
        NetUp(up)
    }

    /// Lets the next run of rkstack start.
    fn again(&self) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
    }

    /// The pid of the rkstack running now.
    fn supervisor(&self) -> i32 {
        self.file("pid").trim().parse().unwrap()
    }

    /// Runs `cmd` in the test's network namespace (where rkstack runs).
    fn host(&self, cmd: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.supervisor()))
            .args(["sh", "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The address `name` resolves to inside container `c` (busybox
    /// nslookup, asking the container's resolver), once it resolves.
    fn wait_until_resolved(&self, c: &str, name: &str) -> String {
        let mut got = String::new();
        for _ in 0..100 {
            let out = self.rk(&["exec", c, "--", "/bin/busybox", "nslookup", "-type=a", name]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // The answer's "Address: ..." lines follow the server's.
            if let Some(a) = text
                .split(&format!("Name:\t{name}"))
                .nth(1)
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Address: ")))
            {
                return a.trim().to_string();
            }
            got = format!("{text}{}", stderr(&out));
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{name} never resolved in {c}:\n{got}");
    }

    /// SIGTERM to rkstack; returns the links and addresses left in the namespace.
    fn stop(&mut self) -> (String, String) {
        // SAFETY: signalling the rkstack this test started.
        unsafe { libc::kill(self.supervisor(), libc::SIGTERM) };
        let status = self.0.child.take().unwrap().wait().unwrap();
        assert!(status.success());
        (self.file("links"), self.file("addrs"))
    }
}

impl Drop for NetUp {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.child.take() {
            let _ = std::fs::write(self.dir.path().join("stop"), "");
            if let Ok(pid) = self.file("pid").trim().parse::<i32>() {
                // SAFETY: signalling the rkstack this test started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = c.wait();
        }
        // The fixture's own drop removes the stack's cgroups.
    }
}

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

/// Fetches a URL from inside the network namespace of `pid` (the test's
/// namespace, where rkstack runs): what the "host" of the stack sees.
fn fetch_in(pid: &str, url: &str) -> String {
    let py = "import urllib.request,sys\ntry:\n print(urllib.request.urlopen(sys.argv[1],timeout=2).read().decode().strip())\nexcept Exception as e:\n print('failed', e)";
    python_in(pid, py, &[url])
}

/// Fetches `url` from the network namespace of `pid` until it answers `want`
/// (10 s at most).
fn fetch_until(pid: &str, url: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = fetch_in(pid, url);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{url}: {got}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a program in the network namespace of `pid`; its stdout.
fn run_in(pid: impl std::fmt::Display, argv: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(argv)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a Python script in the network namespace of `pid`; its stdout.
fn python_in(pid: impl std::fmt::Display, script: &str, args: &[&str]) -> String {
    run_in(pid, &[&["python3", "-c", script], args].concat())
}

/// Runs a shell script in the network namespace of `pid`; its stdout.
fn sh_in(pid: &str, script: &str) -> String {
    run_in(pid, &["sh", "-c", script])
}

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

/// Sends a datagram from inside the network namespace of `pid` and returns
/// the answer (or "failed ...").
fn udp_in(pid: i32, host: &str, port: u16, msg: &str) -> String {
    let py = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\ntry:\n s.sendto(sys.argv[3].encode(),(sys.argv[1],int(sys.argv[2])))\n print(s.recv(600).decode())\nexcept Exception as e:\n print('failed',e)";
    python_in(pid, py, &[host, &port.to_string(), msg])
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
