/**
 * `mkportable ls IMAGE [PATH]`: one `ls -l`-like line per entry of the image (or of the subtree at PATH):
 *
 *   drwxr-xr-x  0/0       60 2024-01-01T00:00:00Z /etc
 *   lrwxrwxrwx  0/0        7 2024-01-01T00:00:00Z /bin -> usr/bin
 *   crw-rw-rw-  0/0     1, 3 2024-01-01T00:00:00Z /dev/null
 *
 * Columns: mode string, uid/gid, size (major, minor for devices), mtime in UTC, path, and the symlink target.
 * Bytes of names and targets that are not UTF-8, and control characters, are shown as `\xHH`.
 */
import { MkportableError } from '../../errors.js';
import { parseEscapes } from '../../formats/bytenames.js';
import { printable } from './errors.js';
import { openImage, type NodeStat, type NodeType, type SquashfsImage } from './image.js';

const TYPE_CHAR: Record<NodeType, string> = {
  dir: 'd',
  file: '-',
  symlink: 'l',
  block: 'b',
  char: 'c',
  fifo: 'p',
  socket: 's',
};

/** `ls -l` mode string: type character and rwx triplets with setuid/setgid/sticky as s/S, s/S, t/T. */
export function formatMode(type: NodeType, mode: number): string {
  const rwx = (bits: number, special: boolean, on: string, off: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? on : off) : bits & 1 ? 'x' : '-');
  return (
    TYPE_CHAR[type] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  );
}

export function formatTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

function sizeColumn(stat: NodeStat): string {
  return stat.type === 'block' || stat.type === 'char' ? `${stat.major}, ${stat.minor}` : String(stat.size);
}


/**
 * A path typed by a person, as the image names it: as given when the image has it, else with each `\xHH` read
 * as that byte (the form ls prints names that are not UTF-8 in).
 */
export async function pathArgument(img: SquashfsImage, path: string): Promise<string> {
  const parsed = parseEscapes(path);
  if (parsed === path) return path;
  try {
    await img.stat(path);
    return path;
  } catch (e) {
    if (e instanceof MkportableError && e.code === 'PATH_NOT_FOUND') return parsed;
    throw e;
  }
}

export async function listCommand(image: string | SquashfsImage, path = '/'): Promise<string> {
  const img = typeof image === 'string' ? await openImage(image) : image;
  try {
    const rows: string[][] = [];
    for await (const { path: p, stat } of img.walk(await pathArgument(img, path))) {
      // Control characters escaped so a hostile name cannot rewrite the terminal.
      const name = printable(p, Infinity) + (stat.type === 'symlink' ? ` -> ${printable(stat.target ?? '', Infinity)}` : '');
      rows.push([formatMode(stat.type, stat.mode), `${stat.uid}/${stat.gid}`, sizeColumn(stat), formatTime(stat.mtime), name]);
    }
    const idWidth = Math.max(...rows.map((r) => r[1].length));
    const sizeWidth = Math.max(...rows.map((r) => r[2].length));
    return rows.map((r) => `${r[0]} ${r[1].padEnd(idWidth)} ${r[2].padStart(sizeWidth)} ${r[3]} ${r[4]}\n`).join('');
  } finally {
    if (typeof image === 'string') await img.close();
  }
}
