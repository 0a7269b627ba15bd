#!/usr/bin/env python3
"""`ps` while a container is being stopped, whole process, as root: a
stack of 10 busybox containers, one of which ignores its stop signal
(stop_timeout 10 s, then SIGKILL). `POST /v1/containers/slow/stop` is sent
on one connection; while it waits, `GET /v1/containers` is asked on another
connection as fast as it answers, and its latency (p50, p99, max in ms, as
this client measures it) is printed with how long the stop took. Needs
busybox-static."""
import os, shutil, subprocess, sys, tempfile, threading, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "bench"))
from unix_http import UnixConn, pct, rkstack_binary, stack_up  # noqa: E402
rk = rkstack_binary(root)
work = tempfile.mkdtemp(prefix="rkstack-bench.")
try:
    base, sock = stack_up(rk, work, "benchstop",
                          '[containers.slow]\ncommand = ["/bin/sh", "-c", "trap \'\' TERM; while true; do sleep 1; done"]\n'
                          'stop_signal = "SIGTERM"\nstop_timeout = "10s"\n', applets=("sleep", "sh"))
    done = threading.Event()
    took = []

    def stop():
        c = UnixConn(sock)
        t = time.perf_counter()
        c.request("POST", "/v1/containers/slow/stop")
        c.getresponse().read()
        took.append(time.perf_counter() - t)
        done.set()

    c = UnixConn(sock)
    for _ in range(100):  # warm-up
        c.request("GET", "/v1/containers"); c.getresponse().read()
    threading.Thread(target=stop).start()
    time.sleep(0.2)
    lat, states = [], set()
    while not done.is_set():
        t = time.perf_counter()
        c.request("GET", "/v1/containers")
        body = c.getresponse().read()
        lat.append(time.perf_counter() - t)
        if b'"stopping"' in body:
            states.add("stopping")
    print(f"stop of a container that ignores SIGTERM (stop_timeout 10 s): answered after {took[0]:.2f} s")
    print(f"GET /v1/containers meanwhile ({len(lat)} requests, 10 containers): "
          f"p50 {pct(lat, .5):.3f} ms  p99 {pct(lat, .99):.3f} ms  max {max(lat)*1000:.3f} ms"
          f"  (shown stopping: {'yes' if states else 'no'})")
    subprocess.run(base + ["down"], check=True, stdout=subprocess.DEVNULL)
finally:
    shutil.rmtree(work, ignore_errors=True)
