/**
 * One error type for the whole library: a stable code, a one-line message naming the offending file or
 * setting, and the path it concerns. The library never prints and never exits; the CLI maps codes to exit codes.
 * The message shows bytes of names that are not UTF-8, and control characters, as `\xHH` (so it stays one line
 * and prints as it is); `subject` keeps the path itself (formats/bytenames.ts).
 */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'EXCLUDED_NEEDED'
  | 'FILES_COLLISION'
  | 'CONFIG_INVALID'
  | 'NAME_INVALID'
  | 'UNIT_UNREADABLE'
  | 'UNIT_IGNORED'
  | 'UNIT_INVALID'
  | 'EXEC_NOT_FOUND'
  | 'DEPENDENCY_MISSING'
  | 'PATH_NOT_FOUND'
  | 'PACKAGE_NOT_FOUND'
  | 'SYMLINK_COLLISION'
  | 'SYMLINK_LOOP'
  | 'ELF_INVALID'
  | 'SOURCE_READ'
  | 'MKSQUASHFS_NOT_FOUND'
  | 'MKSQUASHFS_FAILED'
  | 'COMPRESSION_INVALID'
  | 'OUTPUT_FAILED'
  /** A name, link target or attribute the image format cannot hold (a name over 255 bytes, a target over 4095). */
  | 'UNSTORABLE'
  | 'CHECK_FAILED'
  | 'IMAGE_CORRUPT'
  | 'IMAGE_UNSUPPORTED'
  | 'ARCHIVE_INVALID'
  | 'DIGEST_MISMATCH'
  | 'DEVICE_REFUSED'
  | 'LAYER_OUTSIDE'
  | 'ADDON_MISSING'
  | 'PREREQUISITE_MISSING'
  | 'RELEASE_CONFLICT'
  | 'SIGNING_FAILED'
  | 'SIGNING_INVALID'
  | 'ARCHITECTURE_UNKNOWN';

export class MkportableError extends Error {
  readonly code: ErrorCode;
  /** The file, path or setting the error is about, when there is one. */
  readonly subject?: string;
  /** When several things are wrong at once (a config file's problems): each one, as `message` lists them. */
  readonly problems?: readonly string[];

  constructor(code: ErrorCode, message: string, subject?: string, problems?: readonly string[]) {
    super(escapeForDisplay(message, true));
    this.name = 'MkportableError';
    this.code = code;
    this.subject = subject;
    if (problems) this.problems = problems;
  }
}

export function isMkportableError(e: unknown): e is MkportableError {
  return e instanceof MkportableError;
}

/** An error from the operating system (fs, child processes): it has an errno name such as ENOENT. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!);
}

/**
 * The reason part of a one-line message: "permission denied (EACCES)" for a system error (libuv's text without
 * the syscall and path that Node appends), otherwise the error's first line.
 */
export function systemReason(e: unknown): string {
  if (isSystemError(e)) {
    const m = /^E[A-Z0-9]+: ([^,]+)/.exec(e.message);
    return `${m ? m[1] : 'system error'} (${e.code})`;
  }
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0];
}

/** A path for a one-line message: a very long one (ENAMETOOLONG's usual cause) is cut in the middle, with its length. */
export function shortPath(file: string): string {
  if (file.length <= 160) return file;
  return `${file.slice(0, 64)}…${file.slice(-32)} (${Buffer.byteLength(file)} bytes)`;
}

/** `FILE: cannot DOING: REASON`, the shape of every file-system error the library reports; `subject` keeps the whole path. */
export function fileError(code: ErrorCode, file: string, doing: string, e: unknown): MkportableError {
  return new MkportableError(code, `${shortPath(file)}: cannot ${doing}: ${systemReason(e)}`, file);
}

const SYSCALL_VERBS: Record<string, string> = {
  open: 'open', read: 'read', write: 'write', close: 'close', lstat: 'look up', stat: 'look up', fstat: 'look up',
  readlink: 'read the link', scandir: 'list the folder', opendir: 'list the folder', mkdir: 'create the folder',
  mkdtemp: 'create a folder in', rename: 'rename', unlink: 'remove', rmdir: 'remove', rm: 'remove', link: 'link',
  copyfile: 'copy', ftruncate: 'truncate', fsync: 'flush', access: 'access', chmod: 'change the mode of',
  lgetxattr: 'read the attributes of', llistxattr: 'read the attributes of', spawn: 'run',
};

/**
 * Any error as a MkportableError: MkportableErrors pass through, a system error becomes `code` with its path and
 * reason (`classify` picks the code from the path); anything else (a bug) is returned as it is, for `throw`.
 */
export function asMkportableError(e: unknown, classify: (file: string | undefined) => ErrorCode = () => 'SOURCE_READ'): unknown {
  if (e instanceof MkportableError) return e;
  if (isSystemError(e)) {
    const file = e.path ?? (e as { dest?: string }).dest;
    const verb = (e.syscall && SYSCALL_VERBS[e.syscall]) ?? e.syscall ?? 'use';
    if (file !== undefined) return fileError(classify(file), file, verb, e);
    return new MkportableError(classify(undefined), `cannot ${verb}: ${systemReason(e)}`);
  }
  return e;
}

/** Warnings do not stop a build; they are returned in the BuildResult with a stable code. */
export type WarningCode =
  | 'CONTENT_DEPENDENCY_MISSING' | 'ELF_UNPARSED' | 'SPECIFIER_IN_EXEC' | 'COMMAND_UNRESOLVED' | 'COMMAND_NOT_FOUND' | 'SOURCE_UNIT_LEFT_OUT'
  | 'LD_CACHE_INVALID'
  | 'ARCHITECTURE_MIXED';

export interface BuildWarning {
  code: WarningCode;
  message: string;
  subject?: string;
  /** For missing dependencies: which kind (the rule name `mkportable inspect` reports). */
  rule?: string;
}

const hex = (n: number) => `\\x${n.toString(16).padStart(2, '0')}`;

/**
 * Text as people see it (formats/bytenames.ts holds names as strings in which each byte that is not UTF-8 is
 * U+DC80..U+DCFF): those bytes as `\xHH`, other lone surrogates as `\uHHHH`, and with `controls` the control
 * characters as `\xHH` too, so a message stays one line. Text already shown this way is left as it is.
 */
export function escapeForDisplay(s: string, controls: boolean): string {
  // eslint-disable-next-line no-control-regex
  if (!(controls ? /[\u0000-\u001f\u007f\ud800-\udfff]/ : /[\ud800-\udfff]/).test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < s.length) {
      const v = s.charCodeAt(i + 1);
      if (v >= 0xdc00 && v <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
        continue;
      }
    }
    if (controls && (u < 0x20 || u === 0x7f)) out += hex(u);
    else if (u >= 0xdc80 && u <= 0xdcff) out += hex(u - 0xdc00);
    else if (u >= 0xd800 && u <= 0xdfff) out += `\\u${u.toString(16)}`;
    else out += s[i];
  }
  return out;
}
