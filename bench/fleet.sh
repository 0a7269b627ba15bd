#!/usr/bin/env bash
# A simulated fleet rolled out to through Mender (tests/fleet.rs): DEVICES
# devices (default 50), each with its own mount and network namespaces,
# cgroups, folders, supervisor and Mender client; v2 as a signed full
# bundle, v3 that never becomes healthy (every device rolls back by
# itself), v4 as a delta. Prints the time per device and the bytes each
# device received for every rollout, then one device's history.
# Needs root, docker-registry, skopeo, mender-client and mender-artifact
# (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
FLEET_DEVICES=${DEVICES:-50} cargo test --release -q --test fleet a_simulated_fleet -- --nocapture 2>&1 |
  grep -E '^fleet:|^GEN|^[0-9]+\*? ' 
