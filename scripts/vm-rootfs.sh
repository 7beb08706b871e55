#!/usr/bin/env bash
# Creates (or reuses) a cached Debian 12 (bookworm) virtual machine for QEMU: an ext4 root file system image
# with systemd-portabled, udev, dmsetup and the kernel modules dm-verity needs, plus the host's Debian kernel
# (linux-image-amd64) and a small initrd made for it (initramfs-tools). It runs the real kernel's dm-verity,
# which containers cannot.
# Prints the cache folder on stdout (rootfs.img, vmlinuz, initrd.img); other output goes to stderr, on failure only.
#
# At boot the VM mounts its second disk (/dev/vdb) read-only at /run/mkportable-test, runs run.sh from it with all
# output on the second serial port (ttyS1), then powers off: test/support/vm.ts drives it.
#
#   MKPORTABLE_VM_CACHE       where it lives (default /var/cache/mkportable/bookworm-vm)
#   MKPORTABLE_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#
# Built in a temporary folder beside the cache and renamed into place once complete (with its stamp), serialised
# with flock(1), never modified afterwards (QEMU runs it with snapshot=on).
set -euo pipefail

CACHE="${MKPORTABLE_VM_CACHE:-/var/cache/mkportable/bookworm-vm}"
MIRROR="${MKPORTABLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,systemd-container,udev,dmsetup,kmod
STAMP_VERSION=2
STAMP_FILE=stamp

die() { printf 'vm-rootfs: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
# shellcheck source=cached-tree.sh
. "$(dirname "${BASH_SOURCE[0]}")/cached-tree.sh"

# The newest Debian kernel installed on the host that has its modules.
KVER=""
for k in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V); do
  if [ -d "/lib/modules/$k/kernel" ]; then KVER="$k"; fi
done
[ -n "$KVER" ] || die "no Debian kernel with modules in /boot (apt-get install linux-image-amd64)"
STAMP="mkportable-vm v${STAMP_VERSION} ${SUITE} ${PACKAGES} ${KVER}"

cache_reuse_or_lock vm-rootfs
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
command -v depmod >/dev/null || die "depmod not found (apt-get install kmod)"
command -v mkinitramfs >/dev/null || die "mkinitramfs not found (apt-get install initramfs-tools)"
cache_begin_build build.log

ROOT="$TMP/rootfs"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$LOG" 2>&1 || die "debootstrap failed"

{
  echo "--- customising"
  tr -d '-' </proc/sys/kernel/random/uuid >"$ROOT/etc/machine-id"
  echo mkportable-vm >"$ROOT/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tmkportable-vm\n' >"$ROOT/etc/hosts"
  : >"$ROOT/etc/fstab"

  # Nothing that waits for a network, a login or a timer: the VM boots straight to the test and powers off.
  for unit in \
      getty.target console-getty.service getty@.service serial-getty@.service \
      systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service \
      systemd-resolved.service systemd-timesyncd.service systemd-firstboot.service \
      systemd-hwdb-update.service systemd-journal-catalog-update.service systemd-pstore.service \
      apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service \
      fstrim.timer man-db.timer systemd-tmpfiles-clean.timer cron.service \
      systemd-logind.service systemd-user-sessions.service systemd-update-utmp.service \
      systemd-update-utmp-runlevel.service systemd-sysusers.service systemd-random-seed.service \
      systemd-journal-flush.service modprobe@drm.service modprobe@fuse.service; do
    ln -sfn /dev/null "$ROOT/etc/systemd/system/$unit"
  done
  mkdir -p "$ROOT/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\nForwardToConsole=no\n' >"$ROOT/etc/systemd/journald.conf.d/10-mkportable.conf"

  # What portable images and dm-verity need, loaded at boot rather than on demand.
  printf 'loop\nsquashfs\ndm_mod\ndm_verity\n' >"$ROOT/etc/modules-load.d/mkportable.conf"

  cat >"$ROOT/usr/local/sbin/mkportable-vm-test" <<'EOF'
#!/bin/sh
# Run the test disk's run.sh; everything it prints goes to the second serial port.
exec >/dev/ttyS1 2>&1
mkdir -p /run/mkportable-test
if ! mount -o ro /dev/vdb /run/mkportable-test; then
  echo "MKPORTABLE-VM: cannot mount the test disk"
  exit 1
fi
echo "MKPORTABLE-VM: start $(uname -r) $(systemctl --version | head -n1)"
sh /run/mkportable-test/run.sh
echo "MKPORTABLE-VM: exit $?"
EOF
  chmod 0755 "$ROOT/usr/local/sbin/mkportable-vm-test"
  cat >"$ROOT/etc/systemd/system/mkportable-vm-test.service" <<'EOF'
[Unit]
Description=mkportable test run
Requires=dev-vdb.device
After=dev-vdb.device multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mkportable-vm-test
TimeoutStartSec=900

[Install]
WantedBy=multi-user.target
EOF
  ln -sfn ../mkportable-vm-test.service "$ROOT/etc/systemd/system/multi-user.target.wants/mkportable-vm-test.service"
  mkdir -p "$ROOT/var/lib/portables" "$ROOT/etc/portables"

  # The kernel's modules for loop devices, squashfs, device-mapper and what they depend on; the initrd brings
  # virtio and ext4 for the root disk.
  M="$ROOT/lib/modules/$KVER"
  mkdir -p "$M/kernel"
  for d in kernel/drivers/md kernel/drivers/block kernel/drivers/virtio kernel/drivers/char kernel/fs/squashfs \
      kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib kernel/crypto kernel/arch/x86/crypto; do
    if [ -e "/lib/modules/$KVER/$d" ]; then
      mkdir -p "$M/$(dirname "$d")"
      cp -a "/lib/modules/$KVER/$d" "$M/$d"
    fi
  done
  cp -a /lib/modules/"$KVER"/modules.order /lib/modules/"$KVER"/modules.builtin* "$M/"
  depmod -b "$ROOT" "$KVER"

  rm -rf "$ROOT/var/cache/apt/"*.bin "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/var/lib/apt/lists/"* \
         "$ROOT/usr/share/doc/"* "$ROOT/usr/share/man/"* "$ROOT/usr/share/info/"* "$ROOT/usr/share/locale/"*

  echo "--- image"
  size_mb=$(( $(du -sm "$ROOT" | cut -f1) * 3 / 2 + 128 ))
  mkfs.ext4 -q -F -L mkportable-vm -d "$ROOT" "$TMP/rootfs.img" "${size_mb}M"
  cp "/boot/vmlinuz-$KVER" "$TMP/vmlinuz"
  # An initrd with only what mounts the root disk boots in half the time of the distribution's under TCG.
  cp -a /etc/initramfs-tools "$TMP/initramfs-conf"
  sed -i 's/^MODULES=.*/MODULES=list/' "$TMP/initramfs-conf/initramfs.conf"
  printf 'virtio_pci\nvirtio_blk\next4\n' >"$TMP/initramfs-conf/modules"
  mkinitramfs -d "$TMP/initramfs-conf" -o "$TMP/initrd.img" "$KVER"
  rm -rf "$TMP/initramfs-conf"
} >>"$LOG" 2>&1 || die "customising the VM failed"

remove_tree "$ROOT"
rm -f "$LOG"
cache_install "$TMP"
