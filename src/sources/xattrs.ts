import type { Source } from './source.js';

/** Namespaces squashfs can store; others (system.posix_acl_*, …) are left out. */
const STORABLE = ['user.', 'trusted.', 'security.'];

/** The xattrs of `path` that an image can hold, or undefined when the source has none (or cannot tell). */
export async function sourceXattrs(source: Source, path: string): Promise<Record<string, Uint8Array> | undefined> {
  if (!source.xattrs) return undefined;
  const all = await source.xattrs(path);
  if (!all) return undefined;
  const kept = Object.entries(all).filter(([k]) => STORABLE.some((p) => k.startsWith(p) && k.length > p.length));
  return kept.length ? Object.fromEntries(kept) : undefined;
}
