#!/usr/bin/env bash
# Creates (or reuses) a cached Debian root file system that boots under systemd-nspawn and runs
# systemd-portabled: bookworm (Debian 12, systemd 252) or trixie (Debian 13, systemd 257, which
# also has systemd-sysupdate and systemd-pull). Prints the rootfs path on stdout; all other output
# goes to stderr, and only on failure (the debootstrap log tail is shown then) or with --progress.
#
#   portabled-rootfs.sh [--progress] [SUITE]     SUITE: bookworm (default) or trixie
#
#   MKPORTABLE_ROOTFS_CACHE   where the rootfs lives (default /var/cache/mkportable/SUITE-portabled)
#   MKPORTABLE_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   --progress                debootstrap's "I: ..." steps go to stderr as they happen
#
# The cache is built in a temporary directory next to the final path and renamed into place
# only once it is complete (it then contains the stamp file below), so an interrupted run never
# leaves a half-built tree that a later run would reuse. Concurrent callers are serialised with
# flock(1). The cache is never modified after creation: containers run on an overlay of it.
set -euo pipefail

PROGRESS=0
SUITE=bookworm
for arg in "$@"; do
  case "$arg" in
    --progress) PROGRESS=1 ;;
    -*) printf 'portabled-rootfs: unknown option %s\n' "$arg" >&2; exit 2 ;;
    *) SUITE="$arg" ;;
  esac
done
case "$SUITE" in
  bookworm) PACKAGES=systemd,systemd-sysv,dbus,systemd-container ;;
  # gpg: systemd-pull verifies SHA256SUMS.gpg by running it (sysupdate's url-file sources).
  trixie) PACKAGES=systemd,systemd-sysv,dbus,systemd-container,gpg ;;
  *) printf 'portabled-rootfs: unknown suite %s (bookworm or trixie)\n' "$SUITE" >&2; exit 2 ;;
esac
CACHE="${MKPORTABLE_ROOTFS_CACHE:-/var/cache/mkportable/${SUITE}-portabled}"
MIRROR="${MKPORTABLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bump when the customisation below changes: an existing cache with another stamp is rebuilt.
STAMP_VERSION=1
STAMP_FILE=.mkportable-rootfs-stamp
STAMP="mkportable-rootfs v${STAMP_VERSION} ${SUITE} ${PACKAGES}"

die() { printf 'portabled-rootfs: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
# shellcheck source=cached-tree.sh
. "$(dirname "${BASH_SOURCE[0]}")/cached-tree.sh"
cache_reuse_or_lock portabled-rootfs
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
cache_begin_build debootstrap.log

ROOT="$TMP/rootfs"
if [ "$PROGRESS" = 1 ]; then
  printf 'portabled-rootfs: creating the Debian %s rootfs cache in %s (once, about a minute)\n' "$SUITE" "$CACHE" >&2
  # Phases as they start, and a running count while packages download/unpack/configure.
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" 2>&1 | tee "$LOG" |
      awk -v pfx="portabled-rootfs: " '
        /^I: (Retrieving (InRelease|Packages)|Resolving dependencies|Installing core|Unpacking required|Unpacking the base|Configuring required|Configuring the base|Base system installed)/ {
          sub(/^I: /, ""); print pfx $0; fflush(); next }
        /^I: (Retrieving|Extracting|Unpacking|Configuring) / {
          n[$2]++; if (n[$2] % 25 == 0) { print pfx tolower($2) " " n[$2] " packages"; fflush() } }' >&2; then
    die "debootstrap failed"
  fi
else
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$LOG" 2>&1; then
    die "debootstrap failed"
  fi
fi

{
  echo "--- customising"

  # Fixed identity. A populated machine-id also avoids first-boot logic (ConditionFirstBoot=).
  # Every container from this cache shares it; they are never registered with a host machined.
  tr -d '-' </proc/sys/kernel/random/uuid >"$ROOT/etc/machine-id"
  echo portabled-test >"$ROOT/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tportabled-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
  : >"$ROOT/etc/fstab"

  # Units that only slow down boot, need hardware/consoles, or fail in a container sharing the
  # host network. Masking keeps "systemctl is-system-running" at "running" and boot < 1 s.
  for unit in \
      console-getty.service getty@.service serial-getty@.service container-getty@.service \
      getty.target getty-static.service \
      systemd-networkd-wait-online.service systemd-networkd.service systemd-networkd.socket \
      systemd-resolved.service systemd-timesyncd.service systemd-logind.service \
      systemd-firstboot.service systemd-machine-id-commit.service \
      systemd-hwdb-update.service systemd-journal-catalog-update.service \
      systemd-update-utmp.service systemd-update-utmp-runlevel.service \
      systemd-pstore.service systemd-remount-fs.service \
      apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
      e2scrub_reap.service fstrim.timer man-db.timer systemd-tmpfiles-clean.timer \
      cron.service; do
    ln -sfn /dev/null "$ROOT/etc/systemd/system/$unit"
  done

  # Keep the journal in memory (small, nothing persisted in the overlay) and quiet on the console.
  mkdir -p "$ROOT/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\nForwardToConsole=no\n' \
    >"$ROOT/etc/systemd/journald.conf.d/10-mkportable.conf"

  # portablectl is in systemd-container; make sure the daemon and its profiles are there.
  test -x "$ROOT/usr/bin/portablectl"
  test -e "$ROOT/lib/systemd/system/systemd-portabled.service"
  test -d "$ROOT/lib/systemd/portable/profile/default"
  mkdir -p "$ROOT/var/lib/portables" "$ROOT/etc/portables"
  if [ "$SUITE" = trixie ]; then
    test -x "$ROOT/usr/lib/systemd/systemd-sysupdate"
    test -x "$ROOT/usr/lib/systemd/systemd-pull"
    test -x "$ROOT/usr/bin/gpg"
  fi

  # Smaller tree = faster copies/overlays; none of this is needed at runtime.
  rm -rf "$ROOT/var/cache/apt/"*.bin "$ROOT/var/cache/apt/archives/"*.deb \
         "$ROOT/var/lib/apt/lists/"* "$ROOT/usr/share/doc/"* "$ROOT/usr/share/man/"* \
         "$ROOT/usr/share/info/"* "$ROOT/usr/share/locale/"* "$ROOT/var/log/"*.log
} >>"$LOG" 2>&1 || die "customising the rootfs failed"

cache_install "$ROOT"
