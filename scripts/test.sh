#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs on a fresh
# Debian-like machine (as root), then: rustfmt, clippy, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the build and the tests need. Installed only when missing.
need=()
command -v cc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need+=(libc6-dev)
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev)
# The sandbox tests' root filesystems are made of the host's static busybox.
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static || need+=(busybox-static)
command -v file >/dev/null || need+=(file)
# Networks: iproute2's ip; nsenter and unshare from util-linux.
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
command -v script >/dev/null || need+=(bsdutils)
# Filesystem images: squashfs and erofs.
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
command -v mkfs.erofs >/dev/null || need+=(erofs-utils)
# Registry pulls: a registry on loopback and the tool that pushes to it.
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v python3 >/dev/null || need+=(python3)
python3 -c "import yaml" 2>/dev/null || need+=(python3-yaml)
command -v nft >/dev/null || need+=(nftables)
# Appliance scenarios (tests/appliance): qemu, initramfs packing, strip/strings.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v strings >/dev/null || need+=(binutils)
# The systemd appliances' Debian bases.
command -v debootstrap >/dev/null || need+=(debootstrap)
# dm-verity hash trees for verified images.
command -v veritysetup >/dev/null || need+=(cryptsetup-bin)
# Fleet updates through Mender (tests/mender.rs): the client in standalone
# mode and the artifact tool.
command -v mender >/dev/null || need+=(mender-client)
command -v mender-artifact >/dev/null || need+=(mender-artifact)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing packages: ${need[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi

rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

# The arm64 appliance (tests/appliance, run.sh pid1 arm64): a cross
# toolchain, arm64 libseccomp and qemu-system-aarch64 from Debian, the
# aarch64 std from rustup. Where rustup cannot fetch it, that scenario is
# not run and the test says so; nothing else depends on it.
arm64_tools() {
  local arm=()
  command -v aarch64-linux-gnu-gcc >/dev/null || arm+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  [ -e /usr/lib/aarch64-linux-gnu/libseccomp.a ] || arm+=(libseccomp-dev:arm64)
  command -v qemu-system-aarch64 >/dev/null || arm+=(qemu-system-arm)
  if [ ${#arm[@]} -gt 0 ]; then
    echo "installing: ${arm[*]}"
    dpkg --add-architecture arm64 &&
      apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${arm[@]}" >/dev/null
  fi &&
    { rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu ||
      rustup target add aarch64-unknown-linux-gnu; }
}
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] && [ "$(id -u)" = 0 ]; then
  arm64_tools || echo "warning: the arm64 appliance's tools could not all be installed; it will not run" >&2
fi

# In CI every root test must run: one that would skip fails instead
# (RKSTACK_TEST_REQUIRE also takes arm64, nofile-hard or all).
if [ -n "${CI:-}" ]; then
  export RKSTACK_TEST_REQUIRE=${RKSTACK_TEST_REQUIRE:-root}
fi

# `rkstack run` leaves its empty parent groups (`rkstack/run/` in each
# cgroup hierarchy, by design); the suite takes them away when it ends.
remove_run_parents() {
  for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    rmdir "$h/rkstack/run" "$h/rkstack" 2>/dev/null || true
  done
}
trap remove_run_parents EXIT

cargo fmt --check
cargo clippy --all-targets -- -D warnings
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --no-fail-fast
else
  cargo test --lib --bins --tests --no-fail-fast
fi
