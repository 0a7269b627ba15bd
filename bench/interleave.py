#!/usr/bin/env python3
"""Runs commands in turn, one run of each per round, and writes the times
as hyperfine's --export-json does ({"results": [{"command", "times"}]}).
A machine whose speed drifts (a VM sharing its host) slows every command
of a round alike, so ratios between them hold where back-to-back series
(hyperfine's) do not.

    interleave.py RUNS OUT.json NAME=COMMAND...   (COMMAND split on spaces)
"""
import json, os, sys, time

WARMUP = 10


def main():
    runs, out = int(sys.argv[1]), sys.argv[2]
    cmds = [a.split("=", 1) for a in sys.argv[3:]]
    times = {name: [] for name, _ in cmds}
    null = os.open(os.devnull, os.O_WRONLY)
    for r in range(WARMUP + runs):
        for name, cmd in cmds:
            argv = cmd.split()
            t = time.perf_counter()
            pid = os.posix_spawnp(argv[0], argv, os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{name}: {cmd} failed ({status})")
            if r >= WARMUP:
                times[name].append(time.perf_counter() - t)
    with open(out, "w") as f:
        json.dump({"results": [{"command": n, "times": times[n]} for n, _ in cmds]}, f)


if __name__ == "__main__":
    main()
