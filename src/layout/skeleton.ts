import type { ImageTree } from '../plan/tree.js';
import { addEntry } from '../plan/add.js';

/**
 * What a portable image must carry for the service to start: mount points portabled binds over on a read-only
 * image (missing ones fail the start with 226/NAMESPACE) and the usual state folders.
 */
export const MOUNT_POINT_FILES = ['/etc/machine-id', '/etc/resolv.conf'];
export const MOUNT_POINT_DIRS = ['/proc', '/sys', '/dev', '/run', '/tmp', '/var/tmp', '/var/lib', '/var/cache', '/var/log'];
const STICKY_DIRS = new Set(['/tmp', '/var/tmp']);

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
  for (const dir of MOUNT_POINT_DIRS) {
    addEntry(tree, dir, { type: 'dir', mode: STICKY_DIRS.has(dir) ? 0o1777 : 0o755, uid: 0, gid: 0, mtime, reason: 'mount point', origin: 'generated' });
  }
  for (const file of MOUNT_POINT_FILES) addFile(tree, file, '', mtime, 'mount point');
}

/** Add passwd, group and nsswitch.conf unless the closure or contents already put them there. */
export function addMinimalEtc(tree: ImageTree, mtime: number): void {
  for (const [p, body] of Object.entries(MINIMAL_ETC)) {
    if (!tree.entries.has(p)) addFile(tree, p, body, mtime, 'minimal name service file');
  }
}
