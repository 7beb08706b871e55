/**
 * Which DPS architecture a DDI's partitions are typed with: the ELF machine of the image's executables (of any ELF
 * file when no executable is one), the most common one winning; the build host's when the image holds no ELF.
 */
import { MkportableError, type BuildWarning } from '../errors.js';
import { architectureOfElf, hostArchitecture } from '../formats/dps.js';
import { isElfMagic } from '../formats/elf.js';
import { walkTree, type ImageTree } from '../plan/tree.js';

async function elfHeader(tree: ImageTree, p: string): Promise<Uint8Array | undefined> {
  const e = tree.entries.get(p);
  if (e?.type !== 'file' || e.size < 20) return undefined;
  const c = e.content;
  return c.kind === 'bytes' ? c.data.subarray(0, 20) : c.source.read(c.path, 0, 20);
}

export async function detectArchitecture(tree: ImageTree, warnings: BuildWarning[]): Promise<string> {
  const files = walkTree(tree).filter((p) => tree.entries.get(p)!.type === 'file');
  const unknown = new Set<number>();
  // Executables first: only when none is an ELF file are the other files read (a header each).
  const count = async (paths: string[]) => {
    const counts = new Map<string, number>();
    for (const p of paths) {
      const head = await elfHeader(tree, p);
      if (!head || !isElfMagic(head)) continue;
      const cls = head[4] === 2 ? 64 : 32;
      const endian = head[5] === 2 ? 'big' : 'little';
      const machine = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint16(18, endian === 'little');
      const arch = architectureOfElf(machine, cls, endian);
      if (arch) counts.set(arch, (counts.get(arch) ?? 0) + 1);
      else unknown.add(machine);
    }
    return counts;
  };
  const isExecutable = (p: string) => (tree.entries.get(p)!.mode & 0o111) !== 0;
  let counts = await count(files.filter(isExecutable));
  if (counts.size === 0) counts = await count(files.filter((p) => !isExecutable(p)));
  if (counts.size === 0) {
    if (unknown.size) {
      throw new MkportableError('ARCHITECTURE_UNKNOWN', `the image's ELF files are for machine ${[...unknown].join(', ')}, which has no DPS partition type; set 'architecture'`, 'architecture');
    }
    const host = hostArchitecture();
    if (!host) throw new MkportableError('ARCHITECTURE_UNKNOWN', `no ELF file in the image and no DPS architecture for this host (${process.arch}); set 'architecture'`, 'architecture');
    return host;
  }
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (ranked.length > 1) {
    warnings.push({
      code: 'ARCHITECTURE_MIXED',
      message: `ELF files of several architectures (${ranked.map(([a, n]) => `${a}: ${n}`).join(', ')}); the DDI is typed ${ranked[0][0]}, set 'architecture' to choose`,
      subject: 'architecture',
    });
  }
  return ranked[0][0];
}
