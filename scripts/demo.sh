#!/usr/bin/env bash
# The main job on a fresh machine: build rkstack and bring up the demo stack
# of examples/stacks/demo.toml. It needs no image download: its containers run
# from the host's own filesystem (image = "host").
#
# Until the supervisor lands, this checks the demo stack and prints the plan
# that `rkstack up` will execute.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/rkstack
stack=examples/stacks/demo.toml
"$bin" check "$stack"
"$bin" plan "$stack"
