#!/usr/bin/env bash
# Every test, nothing skipped, on a fresh Debian 12 machine: installs the Debian packages the tests use (as root),
# installs the npm dependencies, then runs the suite with CI=true, where a skipped test is a failure.
# `npm test` alone runs what this machine can run and says what it skips.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
  echo "test-all: the image tests need root (loop mounts, systemd-nspawn): run it with sudo" >&2
  exit 1
fi
# squashfs-tools(-ng): peers and checkers; systemd-container + debootstrap: real portabled in nspawn (Debian 12 and
# 13 rootfs caches are built on first use); memcached: the network-daemon example's binaries; postgresql-15,
# postgresql-client-15, nginx-light: real services proven from the host's packages; liblzma-dev, zlib1g-dev:
# headers for the native addon built at install (xz, and gzip through the system zlib); libdeflate0: gzip's default engine; nix-bin, patchelf: real Nix store paths; umoci, skopeo: real OCI/docker
# images; gpg, python3: signed release folders served over HTTP to systemd-sysupdate; xz-utils, zstd, lz4, attr,
# libcap2-bin, binutils, gcc, util-linux: reference tools the tests compare against (util-linux's `script` gives
# the progress test a terminal); musl, musl-tools: a musl loader and musl-gcc for Alpine-like trees; libc6-i386: a
# 32-bit glibc loader to read; cryptsetup-bin (veritysetup), gdisk (sgdisk), openssl: dm-verity, GPT and signature
# references; qemu-system-x86, linux-image-amd64, initramfs-tools, e2fsprogs, kmod: the VM that runs dm-verity on a
# real kernel.
packages=(squashfs-tools squashfs-tools-ng systemd-container debootstrap memcached liblzma-dev zlib1g-dev libdeflate0
  postgresql-15 postgresql-client-15 nginx-light
  xz-utils zstd lz4 attr libcap2-bin binutils gcc libc6-dev python3 make g++
  nix-bin patchelf umoci skopeo bzip2 gpg gpgv util-linux musl musl-tools libc6-i386
  cryptsetup-bin gdisk openssl qemu-system-x86 linux-image-amd64 initramfs-tools e2fsprogs kmod)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test-all: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# memcached, PostgreSQL and nginx are only sources of real binaries for the tests: keep them from running on the host.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now memcached postgresql nginx >/dev/null 2>&1 || true
fi
pkill -x memcached 2>/dev/null || true
pkill -x nginx 2>/dev/null || true
command -v pg_ctlcluster >/dev/null 2>&1 && { pg_ctlcluster 15 main stop >/dev/null 2>&1 || true; }
npm ci --no-audit --no-fund
CI=true npm test
