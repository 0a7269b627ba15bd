#!/usr/bin/env python3
"""`ps` while a container logs flat out, whole process, as root: a stack of
10 busybox containers, one running `yes` (as fast as its pipe takes it).
`GET /v1/containers` is asked for 5 s on one connection; p50, p99 and max
in ms as this client measures them, and the log lines the supervisor wrote
per second meanwhile. RK=path runs another rkstack binary (to compare
builds). Needs busybox-static."""
import os, shutil, subprocess, sys, tempfile, time  # noqa: F401

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "bench"))
from unix_http import UnixConn, pct, rkstack_binary, stack_up  # noqa: E402
rk = rkstack_binary(root)
work = tempfile.mkdtemp(prefix="rkstack-bench.")
try:
    base, sock = stack_up(rk, work, "benchflat",
                          '[containers.loud]\ncommand = ["/bin/yes", "a line of log written as fast as it goes"]\n'
                          'logging = { max_size = "500M", max_files = 2 }\n', applets=("sleep", "yes"))
    log = os.path.join(work, "data/benchflat/logs/loud.log")
    c = UnixConn(sock)
    time.sleep(1)
    size0 = os.path.getsize(log)
    lat = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 5:
        t = time.perf_counter()
        c.request("GET", "/v1/containers")
        c.getresponse().read()
        lat.append(time.perf_counter() - t)
    took = time.perf_counter() - t0
    # Bytes the supervisor wrote meanwhile (one rotation at most: 500 MB).
    size1 = os.path.getsize(log)
    wrote = size1 - size0 if size1 >= size0 else size1 + 500_000_000 - size0
    print(f"GET /v1/containers while a container logs flat out ({len(lat)} requests in {took:.1f} s): "
          f"p50 {pct(lat, .5):.3f} ms  p99 {pct(lat, .99):.3f} ms  max {max(lat)*1000:.3f} ms")
    print(f"log written meanwhile: {wrote / took / 1e6:.1f} MB/s ({wrote / took / 48:,.0f} lines/s of 48 bytes)")
    subprocess.run(base + ["down"], check=True, stdout=subprocess.DEVNULL)
finally:
    shutil.rmtree(work, ignore_errors=True)
