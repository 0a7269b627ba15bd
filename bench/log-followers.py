#!/usr/bin/env python3
"""Supervisor memory under log readers, whole process, as root: a
container writes SIZE bytes of log (default 1 GB, busybox `yes` of a 100-
byte line), then 10 clients ask for its whole log with follow=1 and never
read, and the supervisor's RSS is printed before and after (and how long
one client takes to read the whole log). RK=path runs another build.
Needs busybox-static and SIZE of free disk in the temporary folder."""
import os, shutil, socket, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "bench"))
from unix_http import rkstack_binary, stack_up  # noqa: E402
rk = rkstack_binary(root)
size = int(float(os.environ.get("SIZE", "1e9")))
work = tempfile.mkdtemp(prefix="rkstack-bench.")


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


try:
    line = "x" * 99
    base, sock = stack_up(rk, work, "benchlog",
                          f'[containers.loud]\ncommand = ["/bin/yes", "{line}"]\n'
                          'logging = { max_size = "4G", max_files = 2 }\n', applets=("sleep", "yes"), sleepers=0)
    log = os.path.join(work, "data/benchlog/logs/loud.log")
    t0 = time.time()
    while os.path.getsize(log) < size:
        time.sleep(0.5)
    subprocess.run(base + ["stop", "loud"], check=True, stdout=subprocess.DEVNULL)
    wrote = os.path.getsize(log)
    print(f"log: {wrote / 1e9:.2f} GB written in {time.time() - t0:.1f} s")
    pid = int(open(os.path.join(work, "state/benchlog.lock")).read().strip())
    before = rss(pid)
    idle = []
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"GET /v1/containers/loud/logs?follow=1 HTTP/1.1\r\nHost: rkstack\r\n\r\n")
        idle.append(s)
    time.sleep(3)
    after = rss(pid)
    print(f"supervisor RSS: {before / 1024:.1f} MiB, with 10 followers that never read: {after / 1024:.1f} MiB")
    for s in idle:
        s.close()
    t = time.time()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"GET /v1/containers/loud/logs HTTP/1.1\r\nHost: rkstack\r\nConnection: close\r\n\r\n")
    got = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    print(f"one client read the whole log ({got / 1e9:.2f} GB) in {time.time() - t:.1f} s, "
          f"supervisor RSS then {rss(pid) / 1024:.1f} MiB")
    subprocess.run(base + ["down"], check=True, stdout=subprocess.DEVNULL)
finally:
    shutil.rmtree(work, ignore_errors=True)
