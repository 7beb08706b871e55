import type { ImageTree } from '../plan/tree.js';
import { addEntry } from '../plan/add.js';
import { MOUNT_POINT_DIRS, MOUNT_POINT_FILES, OS_RELEASE_PATHS, STATE_DIRS, STICKY_DIRS } from '../systemd/portabled.js';

/**
 * What a portable image must carry for the service to start (portabled's rules, systemd/portabled.ts): the mount
 * points and the usual state folders. A tree taken whole from a rootfs gives these paths up to the skeleton.
 */
export const SKELETON_FILES = [OS_RELEASE_PATHS[0], ...MOUNT_POINT_FILES];
export const SKELETON_DIRS = [...MOUNT_POINT_DIRS, ...STATE_DIRS];

const text = (s: string) => new TextEncoder().encode(s);

/** Name service files used only when the sources bring none: enough for root/nobody lookups. */
export const MINIMAL_ETC: Record<string, string> = {
  '/etc/passwd': 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  '/etc/group': 'root:x:0:\nnogroup:x:65534:\n',
  // glibc ≥ 2.34 has the files and dns modules built in, so these lines need no libnss_* in the image.
  '/etc/nsswitch.conf': 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n',
};

export function addFile(tree: ImageTree, path: string, data: string | Uint8Array, mtime: number, reason: string, mode = 0o644): void {
  const bytes = typeof data === 'string' ? text(data) : data;
  addEntry(tree, path, { type: 'file', mode, uid: 0, gid: 0, mtime, reason, origin: 'generated', size: bytes.length, content: { kind: 'bytes', data: bytes } });
}

export function addMountPoints(tree: ImageTree, mtime: number): void {
  for (const dir of SKELETON_DIRS) {
    addEntry(tree, dir, { type: 'dir', mode: STICKY_DIRS.includes(dir) ? 0o1777 : 0o755, uid: 0, gid: 0, mtime, reason: 'mount point', origin: 'generated' });
  }
  for (const file of MOUNT_POINT_FILES) addFile(tree, file, '', mtime, 'mount point');
}

/**
 * Add passwd, group and nsswitch.conf unless the closure or contents already put them there; with `nssSystemd`
 * (the image carries nss-systemd) passwd and group are looked up in systemd's user database after the files.
 */
export function addMinimalEtc(tree: ImageTree, mtime: number, nssSystemd = false): void {
  for (const [p, body] of Object.entries(MINIMAL_ETC)) {
    const text = nssSystemd && p === '/etc/nsswitch.conf' ? body.replace(/^(passwd|group): files$/gm, '$1: files systemd') : body;
    if (!tree.entries.has(p)) addFile(tree, p, text, mtime, 'minimal name service file');
  }
}
