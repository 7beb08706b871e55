import type { Source, SourceStat } from './source.js';
import { sourceXattrs } from './xattrs.js';

/**
 * Layers seen as one Source, the way the overlay mount of ExtensionImages= or systemd-sysext shows them: the
 * first layer that has a path wins, and a folder lists the names of that folder in every layer below it too
 * (down to a layer where the path is not a folder, which hides the rest).
 */
export function overlaySource(layers: readonly Source[], name = layers.map((l) => l.name).join(' over ')): Source & { layerOf(path: string): Promise<Source | undefined> } {
  // Which layer each path was found in, so hostPath() (synchronous) can answer for paths already looked at.
  const seen = new Map<string, Source>();
  const top = async (p: string): Promise<{ layer: Source; stat: SourceStat } | undefined> => {
    for (const layer of layers) {
      const stat = await layer.lstat(p);
      if (stat) {
        seen.set(p, layer);
        return { layer, stat };
      }
    }
    return undefined;
  };
  const owner = async (p: string): Promise<Source> => {
    const t = await top(p);
    if (!t) throw Object.assign(new Error(`${p}: no such file or directory in ${name}`), { code: 'ENOENT' });
    return t.layer;
  };
  return {
    name,
    async layerOf(p) {
      return (await top(p))?.layer;
    },
    async lstat(p) {
      return (await top(p))?.stat ?? null;
    },
    readlink: async (p) => (await owner(p)).readlink(p),
    async readdir(p) {
      const names = new Set<string>();
      for (const layer of layers) {
        const st = await layer.lstat(p);
        if (!st) continue;
        if (st.type !== 'dir') break;
        for (const n of await layer.readdir(p)) names.add(n);
      }
      return [...names].sort();
    },
    read: async (p, offset, length) => (await owner(p)).read(p, offset, length),
    readFile: async (p) => (await owner(p)).readFile(p),
    hostPath: (p) => seen.get(p)?.hostPath(p),
    // Known only once the owning layer is: the closure asks for xattrs by path.
    async xattrs(p: string) {
      return sourceXattrs(await owner(p), p);
    },
  } as Source & { layerOf(path: string): Promise<Source | undefined>; xattrs(p: string): Promise<Record<string, Uint8Array> | undefined> };
}
