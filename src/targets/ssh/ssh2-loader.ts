// Loads ssh2 with a pooled source of random bytes for what it asks of Node's CSPRNG in small
// pieces: the random padding of every packet it sends (4 to 19 bytes) and the KEXINIT cookie.
// Node answers each randomFillSync with a job of its own, microseconds apiece: on a first
// publish of 20,000 files to four slaves that was about a twentieth of the CPU. The pool is
// filled from the same CSPRNG, and no byte of it is handed out twice. Only ssh2's modules get
// the pooled function (they take it when they load); everything else keeps Node's own.

import {createRequire} from 'node:module'

import type * as Ssh2 from 'ssh2'

const require = createRequire(import.meta.url)

/** Bytes drawn from the CSPRNG at once. */
const POOL_BYTES = 16 << 10
/** Requests up to this size are served from the pool; larger ones go to the CSPRNG directly. */
const SMALL_REQUEST = 64

type Fill = <T extends NodeJS.ArrayBufferView>(buffer: T, offset?: number, size?: number) => T

/** A randomFillSync that serves small requests for Buffers from a pool refilled by `fill`. */
export function pooledRandomFill(fill: Fill): Fill {
  const pool = Buffer.allocUnsafe(POOL_BYTES)
  let used = POOL_BYTES
  return <T extends NodeJS.ArrayBufferView>(buffer: T, offset = 0, size?: number): T => {
    const length = size ?? buffer.byteLength - offset
    if (!Buffer.isBuffer(buffer) || length > SMALL_REQUEST || !(offset >= 0 && length >= 0 && offset + length <= buffer.length)) return fill(buffer, offset, size)
    if (used + length > POOL_BYTES) {
      fill(pool)
      used = 0
    }
    pool.copy(buffer, offset, used, used + length)
    used += length
    return buffer
  }
}

/** What readyAtVersion reads of ssh2's SFTP session (ssh2 1.x); checked before it is relied on. */
interface SftpSession {
  server?: boolean
  _version?: number
  _requests?: Record<string, {extended?: string} | undefined>
  push(data: Buffer | null): unknown
  emit(event: string): boolean
}

/**
 * An SFTP session can take requests once the server's VERSION is in, but ssh2 first asks an
 * OpenSSH server for its limits (limits@openssh.com) and says 'ready' only with the answer: a
 * round trip before the first request of every connection, and of a noop (behind a 20 ms link,
 * 20 ms and more of the 0.2 s between login and the manifest's answer). This says 'ready' as
 * soon as the limits are asked for: what is sent then goes out behind that request, and
 * sftp-server answers in order. Until the limits' answer, ssh2's own limits for OpenSSH apply,
 * no smaller than what the server announces and above every request mirror makes. Left as it
 * is when ssh2's session does not look as expected.
 */
export function readyAtVersion(SFTP: {prototype: object}): void {
  const proto = SFTP.prototype as Partial<SftpSession> & {_init?: (this: SftpSession) => void}
  const init = proto._init
  if (typeof init !== 'function' || typeof proto.push !== 'function' || typeof proto.emit !== 'function') return
  const limitsAsked = (session: SftpSession) => Object.values(session._requests ?? {}).some((request) => request?.extended === 'limits@openssh.com')
  proto._init = function (this: SftpSession) {
    if (!this.server && this._version === -1) {
      const push = this.push
      this.push = function (this: SftpSession, data: Buffer | null) {
        const result = push.call(this, data)
        if (this._version === -1) return result
        // Once: VERSION comes first and only once.
        this.push = push
        if (limitsAsked(this)) this.emit('ready')
        return result
      }
    }
    return init.call(this)
  }
}

type GlobalRequestHandler = (protocol: unknown, name: string, wantReply: boolean, data: unknown) => unknown

/**
 * Call right after `client.connect()`. OpenSSH's sshd announces its host keys after the login
 * (hostkeys-00@openssh.com, for clients that update known_hosts), and ssh2 answers every
 * announcement by asking the server to prove it holds each key, then checks every signature:
 * on every connection, a signature per host key on the slave (an RSA key's is the dear one)
 * and their checks here, for keys mirror never records. The announcement is let go unanswered,
 * as the server allows (it asks for no reply), and as OpenSSH's ssh does with UpdateHostKeys
 * off. Left as it is when ssh2's client does not look as expected.
 */
export function ignoreHostKeyAnnouncements(client: InstanceType<typeof Ssh2.Client>): void {
  const handlers = (client as unknown as {_protocol?: {_handlers?: Record<string, unknown>}})._protocol?._handlers
  const handle = handlers?.GLOBAL_REQUEST
  if (!handlers || typeof handle !== 'function') return
  handlers.GLOBAL_REQUEST = ((protocol, name, wantReply, data) =>
    name === 'hostkeys-00@openssh.com' && !wantReply ? undefined : (handle as GlobalRequestHandler)(protocol, name, wantReply, data)) satisfies GlobalRequestHandler
}

/** What signWithoutAsking reads of a key ssh2 has parsed. */
interface ParsedKey {
  isPrivateKey?: () => boolean
  sign?: (data: Buffer, hash?: string) => Buffer | Error
}

type AuthPK = (this: unknown, username: string, key: unknown, keyAlgo?: unknown, cbSign?: unknown) => unknown

/**
 * ssh2 logs in with a key file by asking first whether the server would take its public key,
 * and signs only with the answer: a round trip of every connection's login. A signature over
 * the session's identifier is what the server asks for anyway, and RFC 4252 (section 7) lets
 * the client send it at once. This signs right away for a key ssh2 holds the private half of;
 * a key in an agent is asked about first, as before (the agent signs, and may ask its user).
 * When signing fails here, ssh2 asks first, as it would have. A server that refuses the key
 * answers as it would the question, and ssh2 goes on to the next method. Left as it is when
 * ssh2's protocol does not look as expected.
 */
export function signWithoutAsking(Protocol: {prototype: object}): void {
  const proto = Protocol.prototype as {authPK?: AuthPK}
  const authPK = proto.authPK
  if (typeof authPK !== 'function' || authPK.length !== 4) return
  proto.authPK = function (this: unknown, username: string, key: unknown, keyAlgo?: unknown, cbSign?: unknown) {
    const parsed = key as ParsedKey | undefined
    if (cbSign !== undefined || typeof keyAlgo === 'function' || parsed?.isPrivateKey?.() !== true || typeof parsed.sign !== 'function') {
      return authPK.call(this, username, key, keyAlgo, cbSign)
    }
    // The hash an RSA key signs with follows the algorithm offered, as ssh2 pairs them (getKeyAlgos).
    const hash = keyAlgo === 'rsa-sha2-256' ? 'sha256' : keyAlgo === 'rsa-sha2-512' ? 'sha512' : keyAlgo === 'ssh-rsa' ? 'sha1' : undefined
    try {
      // authPK calls this before it changes anything: a failure here leaves it as it was.
      return authPK.call(this, username, key, keyAlgo, (data: Buffer, done: (signature: Buffer) => void) => {
        const signature = parsed.sign!(data, hash)
        if (!Buffer.isBuffer(signature)) throw UNSIGNED
        done(signature)
      })
    } catch (error) {
      if (error !== UNSIGNED) throw error
      return authPK.call(this, username, key, keyAlgo)
    }
  }
}

const UNSIGNED = new Error('the key did not sign')

function load(): typeof Ssh2 {
  const crypto = require('node:crypto') as {randomFillSync: Fill}
  const own = crypto.randomFillSync
  crypto.randomFillSync = pooledRandomFill(own)
  try {
    const loaded = require('ssh2') as typeof Ssh2
    readyAtVersion((require('ssh2/lib/protocol/SFTP.js') as {SFTP: {prototype: object}}).SFTP)
    signWithoutAsking(require('ssh2/lib/protocol/Protocol.js') as {prototype: object})
    return loaded
  } finally {
    crypto.randomFillSync = own
  }
}

const ssh2 = load()
export default ssh2
