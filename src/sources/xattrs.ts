import type { Source } from './source.js';

/** A Source that knows extended attributes (archive and image sources: from the tar headers). */
export interface XattrSource extends Source {
  xattrs(path: string): Promise<Record<string, Uint8Array> | undefined>;
}

/** Namespaces squashfs can store; others (system.posix_acl_*, …) are left out. */
const STORABLE = ['user.', 'trusted.', 'security.'];

/** The xattrs of `path` that an image can hold, or undefined when the source has none (or cannot tell). */
export async function sourceXattrs(source: Source, path: string): Promise<Record<string, Uint8Array> | undefined> {
  const get = (source as Partial<XattrSource>).xattrs;
  if (typeof get !== 'function') return undefined;
  const all = await get.call(source, path);
  if (!all) return undefined;
  const kept = Object.entries(all).filter(([k]) => STORABLE.some((p) => k.startsWith(p) && k.length > p.length));
  return kept.length ? Object.fromEntries(kept) : undefined;
}
