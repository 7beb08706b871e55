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
  | 'DEVICE_REFUSED';

export class MkportableError extends Error {
  readonly code: ErrorCode;
  /** The file, path or setting the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: ErrorCode, message: string, subject?: string) {
    super(escapeForDisplay(message, true));
    this.name = 'MkportableError';
    this.code = code;
    this.subject = subject;
  }
}

export function isMkportableError(e: unknown): e is MkportableError {
  return e instanceof MkportableError;
}

/** Warnings do not stop a build; they are returned in the BuildResult with a stable code. */
export type WarningCode = 'CONTENT_DEPENDENCY_MISSING' | 'ELF_UNPARSED' | 'SPECIFIER_IN_EXEC' | 'COMMAND_UNRESOLVED' | 'COMMAND_NOT_FOUND' | 'SOURCE_UNIT_LEFT_OUT';

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
