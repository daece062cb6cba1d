// Host key verification against OpenSSH known_hosts files: parse them, look a host up, and
// decide on a presented key (known, changed, unknown, or recorded under `accept-new`).
// It does not connect; connection.ts calls verify() from ssh2's hostVerifier.

import {createHash, createHmac, timingSafeEqual} from 'node:crypto'
import {appendFileSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'

import {MirrorError} from '../../errors.js'

export type HostKeyPolicy = 'strict' | 'accept-new'

export interface KnownHostEntry {
  /** Comma-separated patterns (possibly negated with `!`), or undefined for a hashed entry. */
  patterns?: string[]
  /** `|1|salt|hash` entries: HMAC-SHA1 of the host name keyed with the salt. */
  hashed?: {salt: Buffer; hash: Buffer}
  /** An `@revoked` line: this key must never be accepted for the hosts it names. */
  revoked: boolean
  keyType: string
  /** The public key blob (base64-decoded). */
  key: Buffer
  file: string
  line: number
}

export interface VerifyRequest {
  /** The target's name, for errors. */
  target: string
  /** The host name connected to. */
  host: string
  port: number
  /** HostKeyAlias: the name looked up and recorded instead of host and port (see hostKeyName). */
  alias?: string
  policy: HostKeyPolicy
}

/** The name known_hosts uses for a host: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  const name = host.toLowerCase()
  return port === 22 ? name : `[${name}]:${port}`
}

/**
 * The name a host's key is looked up and recorded under: a HostKeyAlias as it is, whatever the
 * port (OpenSSH adds none to an alias: the usual `HostKeyAlias [10.0.0.5]:2222` beside a tunnel's
 * `Port 40022` names the tunnelled host's own entry), else knownHostsName.
 */
export function hostKeyName(request: Pick<VerifyRequest, 'host' | 'port' | 'alias'>): string {
  return request.alias !== undefined ? request.alias.toLowerCase() : knownHostsName(request.host, request.port)
}

/** `SHA256:<base64 without padding>`, the fingerprint OpenSSH prints. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`
}

/** The key type named inside a public key blob (its first SSH string). */
export function keyTypeOf(key: Buffer): string | undefined {
  if (key.length < 4) return undefined
  const len = key.readUInt32BE(0)
  if (len === 0 || len > 64 || 4 + len > key.length) return undefined
  return key.subarray(4, 4 + len).toString('latin1')
}

/** Parses one known_hosts file's text. Comments, blank, malformed and @cert-authority lines are skipped. */
export function parseKnownHosts(text: string, file = '(known_hosts)'): KnownHostEntry[] {
  const entries: KnownHostEntry[] = []
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    const fields = line.split(/\s+/)
    let revoked = false
    if (fields[0].startsWith('@')) {
      const marker = fields.shift()
      // Certificate authorities need certificate host keys, which ssh2 does not offer.
      if (marker !== '@revoked') return
      revoked = true
    }
    if (fields.length < 3) return
    const [hosts, keyType, base64] = fields
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return
    const key = Buffer.from(base64, 'base64')
    if (keyTypeOf(key) !== keyType) return
    const entry: KnownHostEntry = {revoked, keyType, key, file, line: index + 1}
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|')
      if (!salt || !hash) return
      entry.hashed = {salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64')}
    } else {
      entry.patterns = hosts.toLowerCase().split(',').filter(Boolean)
    }
    entries.push(entry)
  })
  return entries
}

/** OpenSSH's wildcard match: `*` any run, `?` one character, nothing else special. */
function wildcard(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's')
  return re.test(name)
}

/** True when the entry names `name` (already in `knownHostsName` form). */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const mac = createHmac('sha1', entry.hashed.salt).update(name).digest()
    return mac.length === entry.hashed.hash.length && timingSafeEqual(mac, entry.hashed.hash)
  }
  let matched = false
  for (const pattern of entry.patterns ?? []) {
    if (pattern.startsWith('!')) {
      if (wildcard(pattern.slice(1), name)) return false
    } else if (wildcard(pattern, name)) {
      matched = true
    }
  }
  return matched
}

/**
 * The files to read for a host, in OpenSSH's spirit: the ssh config's UserKnownHostsFile list
 * (the first one receives accepted keys), ~/.ssh/known_hosts, the mirror config's
 * `ssh.knownHosts`, and the system-wide files.
 */
export function knownHostsFiles(userKnownHostsFiles: readonly string[], extra?: string, home: string = homedir()): {files: string[]; userFile: string} {
  const userFile = userKnownHostsFiles[0] ?? join(home, '.ssh', 'known_hosts')
  const files = [...userKnownHostsFiles, join(home, '.ssh', 'known_hosts'), ...(extra ? [extra] : []), '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']
  return {files: [...new Set(files)], userFile}
}

/** Algorithms to ask the server for, per known key type (RSA keys sign with SHA-2 first). */
const ALGORITHMS_FOR_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
}

/**
 * Host key algorithms to prefer for a host whose known key types are `types`: asking for those
 * first makes the server present a key we can check, not one of another type we never saw.
 */
export function preferredHostKeyAlgorithms(types: readonly string[]): string[] {
  return [...new Set(types.flatMap((type) => ALGORITHMS_FOR_TYPE[type] ?? []))]
}

export class KnownHosts {
  private constructor(
    private entries: KnownHostEntry[],
    /** Where `accept-new` records keys. */
    readonly userFile: string,
  ) {}

  /** Reads the files that exist; unreadable ones are skipped, as ssh does. */
  static load(files: readonly string[], userFile: string): KnownHosts {
    const entries: KnownHostEntry[] = []
    for (const file of files) {
      let text: string
      try {
        text = readFileSync(file, 'utf8')
      } catch {
        continue
      }
      entries.push(...parseKnownHosts(text, file))
    }
    return new KnownHosts(entries, userFile)
  }

  static fromEntries(entries: KnownHostEntry[], userFile: string): KnownHosts {
    return new KnownHosts(entries, userFile)
  }

  /** Entries (not revoked) that name the host, or `alias` instead when given (see hostKeyName). */
  lookup(host: string, port: number, alias?: string): KnownHostEntry[] {
    const name = hostKeyName({host, port, alias})
    return this.entries.filter((e) => !e.revoked && entryMatches(e, name))
  }

  /** Key types known for the host, for `preferredHostKeyAlgorithms`. */
  keyTypes(host: string, port: number, alias?: string): string[] {
    return [...new Set(this.lookup(host, port, alias).map((e) => e.keyType))]
  }

  /**
   * Accepts the presented key blob if known_hosts has it for the host. Throws HOST_KEY_CHANGED
   * when the host is known with other keys (or the key is @revoked), HOST_KEY_UNKNOWN when the
   * host is not known, unless the policy is `accept-new`: then the key is appended to the user
   * known_hosts file and 'added' is returned.
   */
  verify(presented: Buffer, request: VerifyRequest): 'known' | 'added' {
    const name = hostKeyName(request)
    const type = keyTypeOf(presented) ?? 'unknown-type'
    const shown = `${type} ${fingerprint(presented)}`
    const revoked = this.entries.find((e) => e.revoked && e.key.equals(presented) && entryMatches(e, name))
    if (revoked) {
      throw new MirrorError('HOST_KEY_CHANGED', `host ${name} presented key ${shown}, which is marked @revoked in ${revoked.file}:${revoked.line}`, {
        target: request.target,
        suggestion: 'Do not publish to this host until its administrator has installed a new host key.',
        retryable: false,
      })
    }
    const known = this.lookup(request.host, request.port, request.alias)
    if (known.some((e) => e.key.equals(presented))) return 'known'
    if (known.length > 0) {
      const expected = known.map((e) => `${e.keyType} ${fingerprint(e.key)} (${e.file}:${e.line})`).join(', ')
      const files = [...new Set(known.map((e) => e.file))]
      throw new MirrorError(
        'HOST_KEY_CHANGED',
        `the host key of ${name} has CHANGED: it presented ${shown}, but known_hosts has ${expected}. Someone may be intercepting the connection, or the server was reinstalled`,
        {
          target: request.target,
          suggestion: `Confirm the new fingerprint ${fingerprint(presented)} with the server's administrator; if the change is expected, remove the old key (${files
            .map((f) => `ssh-keygen -R '${name}' -f ${f}`)
            .join('; ')}) and trust the new one.`,
          retryable: false,
        },
      )
    }
    if (request.policy === 'accept-new') {
      this.add(name, presented, type)
      return 'added'
    }
    const keyscan = request.port === 22 ? `ssh-keyscan ${request.host}` : `ssh-keyscan -p ${request.port} ${request.host}`
    // keyscan names the address it asked; the entry must name the alias.
    const scan = request.alias === undefined ? keyscan : `${keyscan} | sed 's|^[^ ]*|${name}|'`
    throw new MirrorError('HOST_KEY_UNKNOWN', `host ${name} is not in known_hosts; it presented ${shown}`, {
      target: request.target,
      suggestion: `Check that fingerprint with the server's administrator, then trust it: ${scan} >> ${this.userFile} (or set "hostKeys: accept-new" on the target to record it on first connect).`,
      retryable: false,
    })
  }

  private add(name: string, key: Buffer, type: string): void {
    const file = this.userFile
    mkdirSync(dirname(file), {recursive: true, mode: 0o700})
    let prefix = ''
    if (existsSync(file)) {
      const text = readFileSync(file)
      if (text.length > 0 && text[text.length - 1] !== 0x0a) prefix = '\n'
    }
    const line = `${name} ${type} ${key.toString('base64')}`
    appendFileSync(file, `${prefix}${line}\n`, {mode: 0o600})
    this.entries.push({patterns: [name], revoked: false, keyType: type, key, file, line: 0})
  }
}
