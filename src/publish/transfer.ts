// The client's side of a release folder: sysupdate.d(5) transfer files that copy `<pname>_<version>` files from
// the folder's URL into /var/lib/portables and point `<pname>.raw` (and its sidecars) at the newest one.

/** One kind of file a release carries per version: the image, or a sidecar beside it. */
export interface ReleaseKind {
  /** Suffix after `<pname>_<version>` in /var/lib/portables: `.raw`, `.verity`, `.roothash`, `.roothash.p7s`. */
  suffix: string;
  /** Compression suffix in the release folder (`.xz`, `.gz`) or ''. */
  compressed: string;
}

/**
 * The suffix a kind of file has in the release folder. The signature goes there as `.p7s`, not `.roothash.p7s`:
 * sysupdate until systemd PR #41899 (2026; 257 has the bug) lets a pattern match a longer name that starts like it, so
 * `<pname>_@v.roothash` would pick up `<pname>_<v>.roothash.p7s` and install the signature as the root hash.
 */
export function releaseSuffix(suffix: string): string {
  return suffix === '.roothash.p7s' ? '.p7s' : suffix;
}

export interface TransferSpec {
  pname: string;
  kind: ReleaseKind;
  url: string;
  /** SHA256SUMS.gpg is published: the client verifies it against its import keyring. */
  signed: boolean;
}

/**
 * Every transfer in one sysupdate.d folder belongs to one update set (all must offer the same version), so each
 * portable service gets its own component folder: `/etc/sysupdate.<pname>.d`, used with `--component=<pname>`.
 */
export function componentDir(pname: string): string {
  return `/etc/sysupdate.${pname}.d`;
}

/** The transfer file's name without its extension (`.transfer` for systemd ≥ 257, `.conf` before). */
export function transferName(pname: string, kind: ReleaseKind): string {
  // sysupdate runs transfers in name order; the image sorts before its sidecars.
  return kind.suffix === '.raw' ? pname : `${pname}${kind.suffix.replace(/\./g, '-')}`;
}

export function renderTransfer(t: TransferSpec): string {
  const local = `${t.pname}_@v${t.kind.suffix}`;
  const remote = `${t.pname}_@v${releaseSuffix(t.kind.suffix)}${t.kind.compressed}`;
  return [
    `# systemd-sysupdate: ${t.pname}${t.kind.suffix} from ${t.url}, written by mkportable publish.`,
    `# Install in ${componentDir(t.pname)}/ (the .transfer file for systemd >= 257, the .conf one before), then run`,
    `# /usr/lib/systemd/systemd-sysupdate --component=${t.pname} update && portablectl reattach --now ${t.pname}`,
    '[Transfer]',
    `Verify=${t.signed ? 'yes' : 'no'}`,
    '',
    '[Source]',
    'Type=url-file',
    `Path=${t.url}`,
    `MatchPattern=${remote}`,
    '',
    '[Target]',
    'Type=regular-file',
    'Path=/var/lib/portables',
    `MatchPattern=${local}`,
    `CurrentSymlink=${t.pname}${t.kind.suffix}`,
    'InstancesMax=2',
    '',
  ].join('\n');
}
