// SHA256SUMS as `sha256sum` writes it and systemd-sysupdate reads it: "<64 hex> <' ' or '*'><name>" per line.

export type Sums = Map<string, string>;

const LINE = /^([0-9a-fA-F]{64}) [ *](.+)$/;

/** Parses a SHA256SUMS file; throws naming the first line that is not in sha256sum's format. */
export function parseSums(text: string, file = 'SHA256SUMS'): Sums {
  const sums: Sums = new Map();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    const m = LINE.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: not a sha256sum line: '${line.slice(0, 80)}'`);
    sums.set(m[2], m[1].toLowerCase());
  });
  return sums;
}

/** Sorted by name so that a folder's SHA256SUMS does not depend on the order of publishing. */
export function renderSums(sums: Sums): string {
  return [...sums.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, hex]) => `${hex}  ${name}\n`)
    .join('');
}
