#!/usr/bin/env python3
"""Scale and leaks: a stack of N busybox `sleep` containers (default 1,000)
under `rkstack up -d`; then `ps` over the API, a reload that changes one
container (until its new process runs), and R reloads that each change
that one container again: the supervisor's RSS and open descriptors after
10, R/4, R/2, 3R/4 and R of them (a leak grows with R; the allocator's
high-water mark does not). Then `down`.

    N=1000 R=1000 python3 bench/scale.py      (root; RK=path for another build)
    NET=1 ...   all containers on one bridge, the supervisor in a network
                namespace of its own (unshare -n): no bridge on the host
"""
import json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from unix_http import UnixConn, busybox_rootfs, pct, rkstack_binary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", "1000"))
R = int(os.environ.get("R", "1000"))
NET = os.environ.get("NET") == "1"


def stack_text(fs, version):
    out = [f'name = "scale"\n[defaults]\nimage = "dir:{fs}"\n'
           'command = ["/bin/sleep", "1000"]\nstop_signal = "SIGKILL"\n']
    if NET:
        out.append('[networks.n]\nsubnet = "10.78.0.0/20"\n')
    for i in range(N):
        out.append(f"[containers.c{i}]\n")
        if NET:
            out.append('networks = ["n"]\n')
        if i == 0:
            out.append(f'env = {{ V = "{version}" }}\n')
    return "".join(out)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def get(sock, path):
    c = UnixConn(sock)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body)


def pid_of_c0(sock):
    return get(sock, "/v1/containers/c0").get("pid")


def usage(pid):
    """RSS in KiB, and open descriptors: (all, API connections among them)."""
    time.sleep(0.5)  # API connections the bench closed are closed on its side too
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return rss, (len(links), sum(1 for l in links if l.startswith("socket:")))


def main():
    rk = rkstack_binary(ROOT)
    work = tempfile.mkdtemp(prefix="rkstack-scale.")
    sup = None
    base = []
    try:
        fs = os.path.join(work, "rootfs")
        busybox_rootfs(fs)
        stack = os.path.join(work, "stack.toml")
        write(stack, stack_text(fs, 0))
        base = [rk, "--state-dir", os.path.join(work, "state"), "--data-dir", os.path.join(work, "data")]
        cmd = (["unshare", "-n"] if NET else []) + base + ["up", "-d", "--wait-timeout", "600", stack]
        t = time.monotonic()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        up_s = time.monotonic() - t
        sup = int("".join(ch for ch in out.split("supervisor pid ")[1].split()[0] if ch.isdigit()))
        sock = os.path.join(work, "state/scale.sock")
        times = []
        for _ in range(20):
            t = time.monotonic()
            get(sock, "/v1/containers")
            times.append(time.monotonic() - t)
        # One reload that changes one container: until its new process runs.
        version = 1
        old = pid_of_c0(sock)
        t = time.monotonic()
        write(stack, stack_text(fs, version))
        while pid_of_c0(sock) in (old, None):
            time.sleep(0.002)
        reload_ms = (time.monotonic() - t) * 1000
        after = {}
        for k in range(2, R + 1):
            version = k
            old = pid_of_c0(sock)
            write(stack, stack_text(fs, version))
            while pid_of_c0(sock) in (old, None):
                time.sleep(0.002)
            if k in (10, R // 4, R // 2, 3 * R // 4, R):
                after[k] = usage(sup)
        t = time.monotonic()
        os.kill(sup, 15)
        while os.path.exists(f"/proc/{sup}"):
            with open(f"/proc/{sup}/stat") as f:
                if ") Z " in f.read():
                    break
            time.sleep(0.005)
        down_s = time.monotonic() - t
        sup = None
        net = " on one bridge" if NET else ""
        print(f"{N} containers{net}: up -d {up_s:.1f} s; ps (GET /v1/containers) "
              f"p50 {pct(times, 0.5):.1f} ms, p90 {pct(times, 0.9):.1f} ms; a reload changing one "
              f"container until it runs again {reload_ms:.0f} ms; down {down_s:.1f} s")
        for k, (r, (f, socks)) in sorted(after.items()):
            print(f"after {k} reloads: supervisor RSS {r / 1024:.1f} MiB, {f} open descriptors "
                  f"({socks} sockets)")
    finally:
        if sup:
            # The bench failed half-way: stop what it started.
            subprocess.run(base + ["down"], capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
