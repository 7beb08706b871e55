// The installed package's own folder, found from a module inside it: src/… under tsx, dist/src/… when compiled,
// in a checkout, a global install or npx's cache alike.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'mkportable') return (cached = dir);
      } catch {
        /* not ours */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`mkportable: no package.json of mkportable above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** mkportable's own native addon (xz, xattrs, SEEK_DATA): its loader, which finds what node-gyp built at install. */
export function nativeAddonPath(): string {
  return path.join(packageRoot(), 'src/native/index.cjs');
}
