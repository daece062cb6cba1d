// The error family and the exit-code contract. Errors get their code where they arise (config
// loader, each target, the executor); commands only map codes to exit codes and wording.

/** Stable error codes: part of the `--json` contract. */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'USAGE'
  | 'UNREACHABLE'
  | 'AUTH_FAILED'
  | 'HOST_KEY_UNKNOWN'
  | 'HOST_KEY_CHANGED'
  | 'TIMEOUT'
  | 'CONNECTION_LOST'
  | 'ROOT_MISSING'
  | 'PERMISSION_DENIED'
  | 'DISK_FULL'
  | 'UNSAFE_PATH'
  | 'UNROUTED_FILE'
  | 'LOCKED'
  | 'MAX_DELETE'
  | 'MANIFEST_CORRUPT'
  | 'TRANSFER_FAILED'
  | 'RENDER_FAILED'
  | 'INTERRUPTED'
  | 'INTERNAL'

export interface MirrorErrorOptions {
  /** The target the error belongs to, when there is one. */
  target?: string
  /** The file (relative to the source or the target root) the error belongs to. */
  path?: string
  /** What the user can do about it, one sentence. */
  suggestion?: string
  /** True when the same operation may succeed if tried again later (network, lock, timeout). */
  retryable?: boolean
  cause?: unknown
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set([
  'UNREACHABLE',
  'TIMEOUT',
  'CONNECTION_LOST',
  'LOCKED',
])

export class MirrorError extends Error {
  readonly code: ErrorCode
  readonly target?: string
  readonly path?: string
  readonly suggestion?: string
  readonly retryable: boolean

  constructor(code: ErrorCode, message: string, options: MirrorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'MirrorError'
    this.code = code
    this.target = options.target
    this.path = options.path
    this.suggestion = options.suggestion
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code)
  }

  /** The message with its target and file, as printed on stderr. */
  describe(): string {
    const where = [this.target && `target ${this.target}`, this.path && `file ${JSON.stringify(this.path)}`]
      .filter(Boolean)
      .join(', ')
    const head = where ? `${where}: ${this.message}` : this.message
    return this.suggestion ? `${head}\n  ${this.suggestion}` : head
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.target && {target: this.target}),
      ...(this.path && {path: this.path}),
      ...(this.suggestion && {suggestion: this.suggestion}),
      retryable: this.retryable,
    }
  }
}

/** A copy of `error` with the target (and file) filled in where the thrower did not know them. */
export function withContext(error: unknown, target: string, path?: string): MirrorError {
  const base = toMirrorError(error)
  if (base.target && (base.path || !path)) return base
  return new MirrorError(base.code, base.message, {
    target: base.target ?? target,
    path: base.path ?? path,
    suggestion: base.suggestion,
    retryable: base.retryable,
    cause: (base as {cause?: unknown}).cause ?? error,
  })
}

const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOSPC: 'DISK_FULL',
  EDQUOT: 'DISK_FULL',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  ECONNREFUSED: 'UNREACHABLE',
  EHOSTUNREACH: 'UNREACHABLE',
  ENETUNREACH: 'UNREACHABLE',
  ENOTFOUND: 'UNREACHABLE',
  EAI_AGAIN: 'UNREACHABLE',
  ETIMEDOUT: 'TIMEOUT',
  ECONNRESET: 'CONNECTION_LOST',
  EPIPE: 'CONNECTION_LOST',
}

/** Classifies anything thrown into the family; unknown errors become INTERNAL. */
export function toMirrorError(error: unknown): MirrorError {
  if (error instanceof MirrorError) return error
  const err = error as NodeJS.ErrnoException | undefined
  const code = err?.code && ERRNO_CODES[err.code]
  const message = err?.message ?? String(error)
  return new MirrorError(code || 'INTERNAL', message, {cause: error})
}

/**
 * Exit codes of every command. Documented in the README; scripts and cron depend on them.
 * Customizations kept on a slave are not a failure: they are reported, and the exit code is 0.
 */
export const ExitCode = {
  /** Everything planned was done on every target. */
  OK: 0,
  /** Nothing was done: every target failed, or an unexpected error. */
  FAILED: 1,
  /** Bad flags or bad config; nothing was touched. */
  USAGE: 2,
  /** Some targets were published, some failed; the next publish finishes the job. */
  PARTIAL: 3,
  /** A target is locked by another publisher; nothing was done on it. */
  LOCKED: 4,
  /** A safety limit stopped the publish (e.g. --max-delete); uploads landed, deletes did not. */
  STOPPED: 5,
  /** Interrupted by a signal; what landed is recorded and the next publish resumes. */
  INTERRUPTED: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export function exitCodeFor(error: MirrorError): ExitCodeValue {
  switch (error.code) {
    case 'CONFIG_NOT_FOUND':
    case 'CONFIG_INVALID':
    case 'USAGE':
    case 'UNROUTED_FILE':
      return ExitCode.USAGE
    case 'LOCKED':
      return ExitCode.LOCKED
    case 'MAX_DELETE':
      return ExitCode.STOPPED
    case 'INTERRUPTED':
      return ExitCode.INTERRUPTED
    default:
      return ExitCode.FAILED
  }
}
