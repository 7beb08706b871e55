/**
 * The UAPI Discoverable Partitions Specification as far as portable service images need it: the root,
 * root-verity and root-verity-sig partition types per architecture, the architecture names systemd uses, how an
 * ELF machine maps onto them, and the JSON object of a root-verity-sig partition.
 */
import os from 'node:os';
import type { Guid } from './gpt.js';

export interface DpsArchitecture {
  /** systemd's name, as in the labels "root-<name>". */
  name: string;
  root: Guid;
  verity: Guid;
  veritySig: Guid;
}

export const DPS_ARCHITECTURES: readonly DpsArchitecture[] = [
  { name: 'alpha', root: '6523f8ae-3eb1-4e2a-a05a-18b695ae656f', verity: 'fc56d9e9-e6e5-4c06-be32-e74407ce09a5', veritySig: 'd46495b7-a053-414f-80f7-700c99921ef8' },
  { name: 'arc', root: 'd27f46ed-2919-4cb8-bd25-9531f3c16534', verity: '24b2d975-0f97-4521-afa1-cd531e421b8d', veritySig: '143a70ba-cbd3-4f06-919f-6c05683a78bc' },
  { name: 'arm', root: '69dad710-2ce4-4e3c-b16c-21a1d49abed3', verity: '7386cdf2-203c-47a9-a498-f2ecce45a2d6', veritySig: '42b0455f-eb11-491d-98d3-56145ba9d037' },
  { name: 'arm64', root: 'b921b045-1df0-41c3-af44-4c6f280d3fae', verity: 'df3300ce-d69f-4c92-978c-9bfb0f38d820', veritySig: '6db69de6-29f4-4758-a7a5-962190f00ce3' },
  { name: 'ia64', root: '993d8d3d-f80e-4225-855a-9daf8ed7ea97', verity: '86ed10d5-b607-45bb-8957-d350f23d0571', veritySig: 'e98b36ee-32ba-4882-9b12-0ce14655f46a' },
  { name: 'loongarch64', root: '77055800-792c-4f94-b39a-98c91b762bb6', verity: 'f3393b22-e9af-4613-a948-9d3bfbd0c535', veritySig: '5afb67eb-ecc8-4f85-ae8e-ac1e7c50e7d0' },
  { name: 'mips', root: 'e9434544-6e2c-47cc-bae2-12d6deafb44c', verity: '7a430799-f711-4c7e-8e5b-1d685bd48607', veritySig: 'bba210a2-9c5d-45ee-9e87-ff2ccbd002d0' },
  { name: 'mips64', root: 'd113af76-80ef-41b4-bdb6-0cff4d3d4a25', verity: '579536f8-6a33-4055-a95a-df2d5e2c42a8', veritySig: '43ce94d4-0f3d-4999-8250-b9deafd98e6e' },
  { name: 'mips-le', root: '37c58c8a-d913-4156-a25f-48b1b64e07f0', verity: 'd7d150d2-2a04-4a33-8f12-16651205ff7b', veritySig: 'c919cc1f-4456-4eff-918c-f75e94525ca5' },
  { name: 'mips64-le', root: '700bda43-7a34-4507-b179-eeb93d7a7ca3', verity: '16b417f8-3e06-4f57-8dd2-9b5232f41aa6', veritySig: '904e58ef-5c65-4a31-9c57-6af5fc7c5de7' },
  { name: 'parisc', root: '1aacdb3b-5444-4138-bd9e-e5c2239b2346', verity: 'd212a430-fbc5-49f9-a983-a7feef2b8d0e', veritySig: '15de6170-65d3-431c-916e-b0dcd8393f25' },
  { name: 'ppc', root: '1de3f1ef-fa98-47b5-8dcd-4a860a654d78', verity: '98cfe649-1588-46dc-b2f0-add147424925', veritySig: '1b31b5aa-add9-463a-b2ed-bd467fc857e7' },
  { name: 'ppc64', root: '912ade1d-a839-4913-8964-a10eee08fbd2', verity: '9225a9a3-3c19-4d89-b4f6-eeff88f17631', veritySig: 'f5e2c20c-45b2-4ffa-bce9-2a60737e1aaf' },
  { name: 'ppc64-le', root: 'c31c45e6-3f39-412e-80fb-4809c4980599', verity: '906bd944-4589-4aae-a4e4-dd983917446a', veritySig: 'd4a236e7-e873-4c07-bf1d-bf6cf7f1c3c6' },
  { name: 'riscv32', root: '60d5a7fe-8e7d-435c-b714-3dd8162144e1', verity: 'ae0253be-1167-4007-ac68-43926c14c5de', veritySig: '3a112a75-8729-4380-b4cf-764d79934448' },
  { name: 'riscv64', root: '72ec70a6-cf74-40e6-bd49-4bda08e8f224', verity: 'b6ed5582-440b-4209-b8da-5ff7c419ea3d', veritySig: 'efe0f087-ea8d-4469-821a-4c2a96a8386a' },
  { name: 's390', root: '08a7acea-624c-4a20-91e8-6e0fa67d23f9', verity: '7ac63b47-b25c-463b-8df8-b4a94e6c90e1', veritySig: '3482388e-4254-435a-a241-766a065f9960' },
  { name: 's390x', root: '5eead9a9-fe09-4a1e-a1d7-520d00531306', verity: 'b325bfbe-c7be-4ab8-8357-139e652d2f6b', veritySig: 'c80187a5-73a3-491a-901a-017c3fa953e9' },
  { name: 'tilegx', root: 'c50cdd70-3862-4cc3-90e1-809a8c93ee2c', verity: '966061ec-28e4-4b2e-b4a5-1f0a825a1d84', veritySig: 'b3671439-97b0-4a53-90f7-2d5a8f3ad47b' },
  { name: 'x86', root: '44479540-f297-41b2-9af7-d131d5f0458a', verity: 'd13c5d3b-b5d1-422a-b29f-9454fdc89d76', veritySig: '5996fc05-109c-48de-808b-23fa0830b676' },
  { name: 'x86-64', root: '4f68bce3-e8cd-4db1-96e7-fbcaf984b709', verity: '2c7357ed-ebd2-46d9-aec1-23d437ec2bf5', veritySig: '41092b05-9fc8-4523-994f-2def0408b176' },
];

export function dpsArchitecture(name: string): DpsArchitecture | undefined {
  return DPS_ARCHITECTURES.find((a) => a.name === name);
}

export const ARCHITECTURE_NAMES = DPS_ARCHITECTURES.map((a) => a.name);

const ALIASES: Record<string, string> = { amd64: 'x86-64', x86_64: 'x86-64', aarch64: 'arm64', i386: 'x86', i686: 'x86', ppc64le: 'ppc64-le', ppc64el: 'ppc64-le' };

/** A user's architecture name in systemd's spelling (aliases such as amd64 and aarch64 are accepted); undefined if unknown. */
export function canonicalArchitecture(name: string): string | undefined {
  const n = ALIASES[name] ?? name;
  return dpsArchitecture(n) ? n : undefined;
}

export type DpsRole = 'root' | 'verity' | 'verity-sig';

/** Which architecture and role a partition type GUID stands for. */
export function dpsPartitionType(type: Guid): { arch: DpsArchitecture; role: DpsRole } | undefined {
  for (const arch of DPS_ARCHITECTURES) {
    if (arch.root === type) return { arch, role: 'root' };
    if (arch.verity === type) return { arch, role: 'verity' };
    if (arch.veritySig === type) return { arch, role: 'verity-sig' };
  }
  return undefined;
}

/** The partition label systemd-repart gives each role: "root-x86-64", "root-x86-64-verity", "root-x86-64-verity-sig". */
export function dpsLabel(arch: DpsArchitecture, role: DpsRole): string {
  return role === 'root' ? `root-${arch.name}` : `root-${arch.name}-${role}`;
}

// ELF e_machine values (elf.h).
const EM = { SPARC: 2, I386: 3, MIPS: 8, PARISC: 15, PPC: 20, PPC64: 21, S390: 22, ARM: 40, IA_64: 50, X86_64: 62, ARC_COMPACT: 93, TILEGX: 191, ARC_COMPACT2: 195, AARCH64: 183, RISCV: 243, LOONGARCH: 258, ALPHA: 0x9026 };

/** The DPS architecture of an ELF object, or undefined when the DPS has no root partition type for it. */
export function architectureOfElf(machine: number, elfClass: 32 | 64, endian: 'little' | 'big'): string | undefined {
  const le = endian === 'little';
  switch (machine) {
    case EM.X86_64: return 'x86-64';
    case EM.I386: return 'x86';
    case EM.AARCH64: return le ? 'arm64' : undefined;
    case EM.ARM: return le ? 'arm' : undefined;
    case EM.IA_64: return 'ia64';
    case EM.LOONGARCH: return elfClass === 64 ? 'loongarch64' : undefined;
    case EM.MIPS: return elfClass === 64 ? (le ? 'mips64-le' : 'mips64') : le ? 'mips-le' : 'mips';
    case EM.PARISC: return 'parisc';
    case EM.PPC: return le ? undefined : 'ppc';
    case EM.PPC64: return le ? 'ppc64-le' : 'ppc64';
    case EM.RISCV: return elfClass === 64 ? 'riscv64' : 'riscv32';
    case EM.S390: return elfClass === 64 ? 's390x' : 's390';
    case EM.ALPHA: return 'alpha';
    case EM.ARC_COMPACT:
    case EM.ARC_COMPACT2: return le ? 'arc' : undefined;
    case EM.TILEGX: return 'tilegx';
    default: return undefined;
  }
}

/** The DPS name of the machine this runs on. */
export function hostArchitecture(): string | undefined {
  const le = os.endianness() === 'LE';
  const map: Record<string, string> = {
    x64: 'x86-64', ia32: 'x86', arm64: 'arm64', arm: 'arm', loong64: 'loongarch64', riscv64: 'riscv64',
    s390x: 's390x', s390: 's390', ppc64: le ? 'ppc64-le' : 'ppc64', ppc: 'ppc', mips: 'mips', mipsel: 'mips-le',
  };
  return map[process.arch];
}

/** What systemd tries when the native root is missing: x86 under x86-64, arm under arm64. */
export function secondaryArchitecture(name: string): string | undefined {
  return ({ 'x86-64': 'x86', arm64: 'arm' } as Record<string, string>)[name];
}

/** The object a root-verity-sig partition holds, before its NUL padding. */
export interface VeritySignatureJson {
  rootHash: string;
  certificateFingerprint?: string;
  /** Base64 of the DER PKCS#7 signature. */
  signature: string;
}

/** Compact JSON, keys in the order systemd-repart writes them, NUL-padded to a multiple of 4096 and at least `minSize`. */
export function encodeSignaturePartition(sig: VeritySignatureJson, minSize: number): Uint8Array {
  const text = Buffer.from(JSON.stringify({ rootHash: sig.rootHash, certificateFingerprint: sig.certificateFingerprint, signature: sig.signature }), 'utf8');
  const size = Math.max(minSize, Math.ceil(text.length / 4096) * 4096);
  const out = new Uint8Array(size);
  out.set(text, 0);
  return out;
}

/** Read a root-verity-sig partition as systemd does; a string says why it would refuse it. */
export function parseSignaturePartition(data: Uint8Array): VeritySignatureJson | string {
  if (data.length > 4 << 20) return `the partition is ${data.length} bytes, systemd reads at most 4 MiB`;
  const nul = data.indexOf(0);
  if (nul >= 0 && data.subarray(nul).some((b) => b !== 0)) return 'non-NUL bytes follow the first NUL byte';
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.subarray(0, nul < 0 ? data.length : nul)).toString('utf8'));
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (typeof o.rootHash !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(o.rootHash)) return "'rootHash' is missing or not a hex string";
  if (typeof o.signature !== 'string' || !/^[A-Za-z0-9+/\s]*=*\s*$/.test(o.signature)) return "'signature' is missing or not base64";
  if (o.certificateFingerprint !== undefined && typeof o.certificateFingerprint !== 'string') return "'certificateFingerprint' is not a string";
  return { rootHash: o.rootHash.toLowerCase(), certificateFingerprint: o.certificateFingerprint as string | undefined, signature: o.signature };
}
