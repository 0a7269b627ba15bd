#!/usr/bin/env bash
# The main job on a fresh machine: build rkstack and bring up the demo stack
# of examples/stacks/demo.toml. It needs no image download: its containers run
# from the host's own filesystem (image = "host").
#
# Until the supervisor lands, this checks the demo stack, prints the plan
# that `rkstack up` will execute, and runs one sandboxed container from the
# host's filesystem (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/rkstack
stack=examples/stacks/demo.toml
"$bin" check "$stack"
"$bin" plan "$stack"
"$bin" run --name demo-hello --cap-drop ALL --memory 16M host -- \
  /bin/sh -c 'echo "hello from $(hostname): pid $$, uid $(id -u), caps $(grep CapEff /proc/self/status | cut -f2), seccomp $(grep "^Seccomp:" /proc/self/status | cut -f2)"'
