#!/usr/bin/env python3
"""Control API latency, whole process, as root: `GET /v1/containers` of a
50-container stack (busybox sleep) over the unix socket, N requests (default
5000) on one keep-alive connection and N/5 on a new connection each; p50,
p99 and max in ms, measured by this client (its own overhead included).
Also the supervisor's RSS after the load. Needs busybox-static."""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "bench"))
from unix_http import UnixConn, busybox_rootfs, pct  # noqa: E402
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
rk = os.path.join(root, "target/release/rkstack")
n = int(os.environ.get("N", "5000"))
work = tempfile.mkdtemp(prefix="rkstack-bench.")


try:
    fs = os.path.join(work, "rootfs")
    busybox_rootfs(fs)
    stack = os.path.join(work, "stack.toml")
    with open(stack, "w") as f:
        f.write(f'name = "benchapi"\n[defaults]\nimage = "dir:{fs}"\n'
                'command = ["/bin/sleep", "1000"]\nstop_signal = "SIGKILL"\n')
        for i in range(int(os.environ.get("C", "50"))):
            f.write(f"[containers.c{i}]\n")
    base = [rk, "--state-dir", os.path.join(work, "state"), "--data-dir", os.path.join(work, "data")]
    subprocess.run(base + ["up", "-d", stack], check=True, stdout=subprocess.DEVNULL)
    sock = os.path.join(work, "state/benchapi.sock")
    c = UnixConn(sock)
    for _ in range(100):  # warm-up
        c.request("GET", "/v1/containers"); c.getresponse().read()
    keep = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/v1/containers")
        body = c.getresponse().read()
        keep.append(time.perf_counter() - t)
    fresh = []
    for _ in range(n // 5):
        t = time.perf_counter()
        c2 = UnixConn(sock)
        c2.request("GET", "/v1/containers")
        c2.getresponse().read()
        c2.close()
        fresh.append(time.perf_counter() - t)
    health = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/v1/health")
        c.getresponse().read()
        health.append(time.perf_counter() - t)
    pid = int(open(os.path.join(work, "state/benchapi.lock")).read().strip())
    rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
    print(f"GET /v1/containers, 50 containers, answer {len(body)} bytes")
    print(f"  keep-alive ({n}):      p50 {pct(keep, .5):.3f} ms  p99 {pct(keep, .99):.3f} ms  max {max(keep)*1000:.3f} ms")
    print(f"  new connection ({n//5}): p50 {pct(fresh, .5):.3f} ms  p99 {pct(fresh, .99):.3f} ms  max {max(fresh)*1000:.3f} ms")
    print(f"  for scale, GET /v1/health ({n}): p50 {pct(health, .5):.3f} ms  p99 {pct(health, .99):.3f} ms")
    print(f"  supervisor RSS after the load: {rss} KiB")
    subprocess.run(base + ["down"], check=True, stdout=subprocess.DEVNULL)
finally:
    shutil.rmtree(work, ignore_errors=True)
