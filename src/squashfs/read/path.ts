/**
 * Path policy for lookups inside an image. Paths are taken relative to the image root whether or not they start with
 * '/'; empty and '.' components are dropped. '..' is kept: it is resolved against the directory actually reached
 * (after following symlinks), and never climbs above the root.
 */
export const MAX_SYMLINK_HOPS = 40;

export function pathComponents(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/** The canonical absolute spelling of a path that names no symlinks: '/a/b'. */
export function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** '/a/b/../c' → '/a/c' lexically (for display of a walk's starting point). */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const c of pathComponents(path)) {
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}
