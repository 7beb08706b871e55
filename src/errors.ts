/**
 * One error type for the whole library: a stable code, a one-line message naming the offending file or
 * setting, and the path it concerns. The library never prints and never exits; the CLI maps codes to exit codes.
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
  | 'CHECK_FAILED'
  | 'IMAGE_CORRUPT'
  | 'IMAGE_UNSUPPORTED'
  | 'ARCHIVE_INVALID'
  | 'DIGEST_MISMATCH'
  | 'DEVICE_REFUSED'
  | 'SIGNING_INVALID'
  | 'ARCHITECTURE_UNKNOWN';

export class MkportableError extends Error {
  readonly code: ErrorCode;
  /** The file, path or setting the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: ErrorCode, message: string, subject?: string) {
    super(message);
    this.name = 'MkportableError';
    this.code = code;
    this.subject = subject;
  }
}

export function isMkportableError(e: unknown): e is MkportableError {
  return e instanceof MkportableError;
}

/** Warnings do not stop a build; they are returned in the BuildResult with a stable code. */
export type WarningCode = 'CONTENT_DEPENDENCY_MISSING' | 'ELF_UNPARSED' | 'SPECIFIER_IN_EXEC' | 'COMMAND_UNRESOLVED' | 'COMMAND_NOT_FOUND' | 'SOURCE_UNIT_LEFT_OUT'
  | 'ARCHITECTURE_MIXED';

export interface BuildWarning {
  code: WarningCode;
  message: string;
  subject?: string;
  /** For missing dependencies: which kind (the rule name `mkportable inspect` reports). */
  rule?: string;
}
