//! A stack under `rkstack up` inside a network namespace a test made
//! (`unshare -n`), and ways to talk from inside such namespaces.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use super::stack::Stack;
use super::*;

/// The shared stack fixture, brought up inside a network namespace the test
/// made (`unshare -n`); `child` is the shell that holds the namespace.
pub struct NetUp(Stack);

impl std::ops::Deref for NetUp {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl NetUp {
    pub fn start(stack: &str, body: &str) -> NetUp {
        NetUp::start_after(stack, body, "true")
    }

    /// Starts rkstack after `setup` ran in the test's network namespace.
    pub fn start_after(stack: &str, body: &str, setup: &str) -> NetUp {
        NetUp::start_runs(stack, body, setup, 1)
    }

    /// Like `start_after`, but rkstack is started `runs` times in the same
    /// namespace: after each run ends, the next waits for [`NetUp::again`].
    pub fn start_runs(stack: &str, body: &str, setup: &str, runs: usize) -> NetUp {
        NetUp::start_ns(stack, body, setup, runs, &["-n"])
    }

    /// Like `start_after`, with a mount namespace of the test's own too
    /// (`setup` may bind files over the host's, such as /etc/resolv.conf).
    pub fn start_with_mounts(stack: &str, body: &str, setup: &str) -> NetUp {
        NetUp::start_ns(stack, body, setup, 1, &["-n", "-m"])
    }

    pub fn start_ns(stack: &str, body: &str, setup: &str, runs: usize, unshare: &[&str]) -> NetUp {
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
    pub fn again(&self) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
    }

    /// The pid of the rkstack running now.
    pub fn supervisor(&self) -> i32 {
        self.file("pid").trim().parse().unwrap()
    }

    /// Runs `cmd` in the test's network namespace (where rkstack runs).
    pub fn host(&self, cmd: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.supervisor()))
            .args(["sh", "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The address `name` resolves to inside container `c` (busybox
    /// nslookup, asking the container's resolver), once it resolves.
    pub fn wait_until_resolved(&self, c: &str, name: &str) -> String {
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
    pub fn stop(&mut self) -> (String, String) {
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

/// Fetches a URL from inside the network namespace of `pid` (the test's
/// namespace, where rkstack runs): what the "host" of the stack sees.
pub fn fetch_in(pid: &str, url: &str) -> String {
    let py = "import urllib.request,sys\ntry:\n print(urllib.request.urlopen(sys.argv[1],timeout=2).read().decode().strip())\nexcept Exception as e:\n print('failed', e)";
    python_in(pid, py, &[url])
}

/// Fetches `url` from the network namespace of `pid` until it answers `want`
/// (10 s at most).
pub fn fetch_until(pid: &str, url: &str, want: &str) {
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
pub fn run_in(pid: impl std::fmt::Display, argv: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(argv)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a Python script in the network namespace of `pid`; its stdout.
pub fn python_in(pid: impl std::fmt::Display, script: &str, args: &[&str]) -> String {
    run_in(pid, &[&["python3", "-c", script], args].concat())
}

/// Runs a shell script in the network namespace of `pid`; its stdout.
pub fn sh_in(pid: &str, script: &str) -> String {
    run_in(pid, &["sh", "-c", script])
}

/// Sends a datagram from inside the network namespace of `pid` and returns
/// the answer (or "failed ...").
pub fn udp_in(pid: i32, host: &str, port: u16, msg: &str) -> String {
    let py = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\ntry:\n s.sendto(sys.argv[3].encode(),(sys.argv[1],int(sys.argv[2])))\n print(s.recv(600).decode())\nexcept Exception as e:\n print('failed',e)";
    python_in(pid, py, &[host, &port.to_string(), msg])
}
