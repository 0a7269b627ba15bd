#!/usr/bin/env bash
# The main job on a fresh machine (as root): build rkstack and run the demo
# stack of examples/stacks/demo.toml in the foreground. It needs no image
# download: its containers run from the host's own filesystem (image =
# "host") with the host's static busybox. Ctrl-C (SIGINT) stops the stack.
# DEMO_SECONDS=N stops it by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /bin/busybox ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
if ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi
if ! pkg-config --exists libseccomp 2>/dev/null && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev pkg-config >/dev/null
fi
cargo build --release --quiet
bin=target/release/rkstack
stack=examples/stacks/demo.toml
"$bin" check "$stack"
"$bin" plan "$stack"
echo "starting the demo stack; Ctrl-C stops it (logs: /var/lib/rkstack/demo/logs/)"
if [ -n "${DEMO_SECONDS:-}" ]; then
  exec timeout -s INT "$DEMO_SECONDS" "$bin" up "$stack"
fi
exec "$bin" up "$stack"
