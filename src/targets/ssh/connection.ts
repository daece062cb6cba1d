// One SSH connection to a slave: ssh2 Client with verified host key, key-only auth, keepalive,
// and its SFTP channel(s) as promise-returning calls that fail fast once the connection is gone.
// It knows nothing of roots, manifests or atomic writes: that is sftp-target.ts.

import {existsSync, readFileSync} from 'node:fs'
import {Socket} from 'node:net'

import pLimit from 'p-limit'
import ssh2, {ignoreHostKeyAnnouncements} from './ssh2-loader.js'
import type {
  AlgorithmList,
  AnyAuthMethod,
  Attributes,
  AuthenticationType,
  CipherAlgorithm,
  CompressionAlgorithm,
  Client as ClientType,
  ClientChannel,
  ConnectConfig,
  FileEntry,
  IdentityCallback,
  InputAttributes,
  NextAuthHandler,
  OpenMode,
  ParsedKey,
  ServerHostKeyAlgorithm,
  SFTPWrapper,
  Stats,
} from 'ssh2'

import {MirrorError} from '../../errors.js'
import {KnownHosts, knownHostsFiles, preferredHostKeyAlgorithms, type HostKeyPolicy} from './known-hosts.js'
import {poolPackets, pooledRequest} from './packet-pool.js'
import {SendWindows} from './send-windows.js'
import {resolveSshHost, type SshParams} from './ssh-config.js'

const {Client, OpenSSHAgent, utils} = ssh2

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 puts them on `error.code`. */
export const SFTP_STATUS = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const

/** The SFTP status code of an error from a channel call, if it carries one. */
export function sftpStatus(error: unknown): number | undefined {
  const code = (error as {code?: unknown} | undefined)?.code
  return typeof code === 'number' ? code : undefined
}

export interface SftpExtensions {
  /** `copy-data`: server-side copy between two open handles. */
  copyData: boolean
  /** `posix-rename@openssh.com`: rename over an existing file (plain SFTP rename refuses). */
  posixRename: boolean
  statvfs: boolean
}

export interface StatVfs {
  /** Fragment size: the unit of `blocks`, `bfree` and `bavail`. */
  frsize: number
  bavail: number
  bfree: number
  favail: number
  /** Mounted read-only (ST_RDONLY). */
  readOnly: boolean
}

export interface ConnectionOptions {
  /** The target's name, for errors. */
  target: string
  host: string
  user?: string
  port?: number
  ssh: {config?: string; knownHosts?: string}
  hostKeys: HostKeyPolicy
  timeoutMs: number
  /** SFTP channels to open (each is its own sftp-server process on the slave). Default 1. */
  channels?: number
  /** Prefer zlib compression (also turned on by `Compression yes` in ssh_config). */
  compress?: boolean
}

/** How long the exec probe may take before exec is declared unavailable. */
const EXEC_PROBE_MS = 5000
const EXEC_PROBE_OUTPUT = 'mirror-exec-ok'
/** Exec channels at once: each is a session, and sshd's MaxSessions (10) counts the SFTP ones too. */
const EXEC_CONCURRENCY = 2

/**
 * An ssh2 algorithm list edit that puts `first` ahead of ssh2's defaults: removed, then
 * prepended, because ssh2 does not prepend what the list already has. (The @types insist on
 * all three of append/prepend/remove.)
 */
function moveToFront<T>(first: T[]): AlgorithmList<T> {
  return {remove: first, prepend: first} as unknown as AlgorithmList<T>
}

/** How OpenSSH names itself in its version line (ssh2 reads it into `_remoteVer`). */
const OPENSSH = /^OpenSSH_/

/**
 * ssh2's native binding is not always built; AES-GCM and AES-CTR run in OpenSSL (with AES-NI),
 * chacha20 would run in JavaScript and cap throughput.
 */
const FAST_CIPHERS = ['aes128-gcm@openssh.com', 'aes128-ctr'] as const

export class SshConnection {
  readonly params: SshParams
  extensions: SftpExtensions = {copyData: false, posixRename: false, statvfs: false}
  /** The open SFTP channels: one after `open`, more once `widen` has been called. */
  channels: SftpChannel[] = []
  /** The SFTP channels this connection may use (each is its own sftp-server process on the slave). */
  readonly wantedChannels: number
  private execProbe: Promise<boolean> | undefined
  private homeDir: Promise<string> | undefined
  private widening = false
  /** Channels being opened in the background: close waits for them (ssh2 fails on a late one). */
  private readonly opening = new Set<Promise<unknown>>()
  /** Set once the connection is gone; every later call fails with it. */
  lost: MirrorError | undefined
  private readonly client: ClientType
  private readonly options: ConnectionOptions
  private readonly execLimit = pLimit(EXEC_CONCURRENCY)
  private closed = false
  private next = 0
  private sock: Socket | undefined
  private corked = false
  /** What each channel may have unconsumed on the slave (see capWindow). */
  private readonly windows = new SendWindows()

  private constructor(options: ConnectionOptions, params: SshParams) {
    this.options = options
    this.params = params
    this.client = new Client()
    this.wantedChannels = Math.max(1, options.channels ?? 1)
  }

  get target(): string {
    return this.options.target
  }

  /** Where the slave is, for messages: `user@host:port`. */
  get where(): string {
    return `${this.params.user}@${this.params.hostName}:${this.params.port}`
  }

  /**
   * Connects, verifies the host key, authenticates and opens one SFTP channel. The other
   * channels and the exec probe wait for `widen` and `canExec`: a clean noop needs neither, and
   * each costs the slave a process.
   * Throws MirrorError UNREACHABLE, TIMEOUT, AUTH_FAILED, HOST_KEY_UNKNOWN or HOST_KEY_CHANGED.
   */
  static async open(options: ConnectionOptions): Promise<SshConnection> {
    let params: SshParams
    try {
      params = resolveSshHost({host: options.host, user: options.user, port: options.port, configFile: options.ssh.config})
    } catch (error) {
      throw error instanceof MirrorError ? new MirrorError(error.code, error.message, {target: options.target, suggestion: error.suggestion}) : error
    }
    if (params.proxy) {
      throw new MirrorError('CONFIG_INVALID', `the ssh config sets ${params.proxy} for ${options.host}; mirror does not support SSH proxies yet`, {
        target: options.target,
        suggestion: 'Publish from a machine that reaches the slave directly, or remove the proxy for this host.',
      })
    }
    const connection = new SshConnection(options, params)
    await connection.connect()
    try {
      await connection.setUp()
    } catch (error) {
      await connection.close()
      throw error
    }
    return connection
  }

  private connect(): Promise<void> {
    const {params, options} = this
    const {files, userFile} = knownHostsFiles(params.userKnownHostsFiles, options.ssh.knownHosts)
    const knownHosts = KnownHosts.load(files, userFile)
    const preferred = preferredHostKeyAlgorithms(knownHosts.keyTypes(params.hostName, params.port, params.hostKeyAlias))
    const auth = new AuthPlan(params)
    let hostKeyError: MirrorError | undefined

    const timeoutMs = Math.min(options.timeoutMs, params.connectTimeoutMs ?? Infinity)
    // Keepalive is what turns a stalled (not closed) server into an error instead of a hang:
    // about one timeout after the last answer, ssh2 gives up.
    const keepaliveInterval = Math.max(200, Math.min(15_000, Math.floor(options.timeoutMs / 4)))
    // Our own socket (ssh2 takes one through `sock`) so that bursts of requests can be corked
    // into one write: ssh2 writes every SFTP request as its own packet, one syscall each.
    const sock = new Socket()
    sock.setNoDelay(true)
    this.sock = sock
    const config: ConnectConfig = {
      sock,
      username: params.user,
      readyTimeout: timeoutMs,
      keepaliveInterval,
      keepaliveCountMax: 3,
      algorithms: {
        cipher: moveToFront<CipherAlgorithm>([...FAST_CIPHERS]),
        ...((options.compress || params.compression) && {compress: moveToFront<CompressionAlgorithm>(['zlib@openssh.com', 'zlib'])}),
        ...(preferred.length > 0 && {serverHostKey: moveToFront(preferred as ServerHostKeyAlgorithm[])}),
      },
      // Without a verifier ssh2 accepts any host key: never leave this out.
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        try {
          knownHosts.verify(key, {target: options.target, host: params.hostName, port: params.port, alias: params.hostKeyAlias, policy: options.hostKeys})
          verify(true)
        } catch (error) {
          hostKeyError =
            error instanceof MirrorError ? error : new MirrorError('INTERNAL', `host key check failed: ${String(error)}`, {target: options.target, cause: error})
          verify(false)
        }
      },
      authHandler: (methodsLeft: AuthenticationType[], _partial: boolean, next: NextAuthHandler) => auth.next(methodsLeft, next),
    }

    return new Promise<void>((resolve, reject) => {
      let settled = false
      const fail = (error: MirrorError) => {
        if (settled) return
        settled = true
        this.lost = error
        // A socket still connecting (a host that drops packets) would linger until the OS gives up.
        sock.destroy()
        reject(error)
      }
      this.client.on('error', (error: Error & {level?: string; code?: string}) => {
        if (!settled) {
          // Agent trouble and a key that cannot sign are noted; ssh2 goes on to the next method.
          if (error.level === 'agent' || (error.level === 'client-authentication' && !/All configured authentication methods failed/.test(error.message))) {
            auth.note(error.message)
            return
          }
          fail(hostKeyError ?? this.connectError(error, auth))
          return
        }
        this.markLost(this.liveError(error))
      })
      this.client.on('close', () => {
        if (!settled) fail(hostKeyError ?? new MirrorError('UNREACHABLE', `${this.where} closed the connection during the SSH handshake`, {target: options.target}))
        this.markLost(new MirrorError('CONNECTION_LOST', `the SSH connection to ${this.where} closed`, {target: options.target}))
      })
      this.client.on('ready', () => {
        if (settled) return
        settled = true
        // What ssh2 sends in answer to what it reads (data held back for the window it just
        // reopened, the requests our callbacks issue) goes out in one write per turn of the
        // event loop, not a write per packet. Ahead of ssh2's own listener, which is there by now.
        sock.prependListener('data', () => this.batch())
        poolPackets(this.client, sock)
        resolve()
      })
      try {
        this.client.connect(config)
        ignoreHostKeyAnnouncements(this.client)
        sock.connect({host: params.hostName, port: params.port})
      } catch (error) {
        fail(new MirrorError('INTERNAL', `ssh2 refused the connection settings: ${(error as Error).message}`, {target: options.target, cause: error}))
      }
    })
  }

  /** Opens the first SFTP channel and reads the server's extensions from it. */
  private async setUp(): Promise<void> {
    const first = await this.openSftp().catch((error: Error) => error)
    if (first instanceof Error) {
      throw new MirrorError('UNREACHABLE', `${this.where} accepted the login but refused SFTP: ${first.message}`, {
        target: this.target,
        suggestion: 'Enable the SFTP subsystem in the slave\'s sshd_config ("Subsystem sftp internal-sftp" or the sftp-server path).',
        retryable: false,
        cause: first,
      })
    }
    this.channels = [first]
    const ext = first.extensions
    this.extensions = {
      copyData: ext['copy-data'] === '1',
      posixRename: ext['posix-rename@openssh.com'] === '1',
      statvfs: ext['statvfs@openssh.com'] === '2' || ext['statvfs@openssh.com'] === '1',
    }
  }

  /**
   * Opens the other SFTP channels in the background, once; requests spread over them as they
   * come up. Channels past sshd's MaxSessions are refused: one is enough to work, more is faster.
   */
  widen(): void {
    if (this.widening || this.lost) return
    this.widening = true
    for (let i = 1; i < this.wantedChannels; i++) {
      this.background(
        this.openSftp().then((channel) => {
          if (!this.lost) this.channels.push(channel)
        }),
      )
    }
  }

  private background(work: Promise<unknown>): void {
    const settled = work.catch(() => {}).finally(() => this.opening.delete(settled))
    this.opening.add(settled)
  }

  /** The SSH user's home directory on the slave (SFTP's starting directory); asked once. */
  home(): Promise<string> {
    this.homeDir ??= this.channels[0].realpath('.')
    return this.homeDir
  }

  /**
   * True when remote commands run on the slave; probed once, on first need (a harmless printf).
   * Exec is used only if a command really runs: servers with `ForceCommand internal-sftp` accept
   * exec requests but run sftp-server, so the probe checks the output, not just the exit code.
   */
  canExec(): Promise<boolean> {
    if (!this.execProbe) {
      this.execProbe = this.runRaw(`printf ${EXEC_PROBE_OUTPUT}`, undefined, Math.min(EXEC_PROBE_MS, this.options.timeoutMs)).then(
        (result) => result.code === 0 && result.stdout.toString() === EXEC_PROBE_OUTPUT,
        () => false,
      )
      this.background(this.execProbe)
    }
    return this.execProbe
  }

  private openSftp(): Promise<SftpChannel> {
    return new Promise((resolve, reject) => {
      try {
        this.client.sftp((error, sftp) => {
          if (error) return reject(error)
          this.capWindow(sftp)
          resolve(new SftpChannel(sftp, this))
        })
      } catch (error) {
        reject(error)
      }
    })
  }

  /**
   * Holds writes until the event loop turns, then sends them in one go: requests issued
   * together (a stat of many paths, the writes of a file) leave in a few large TCP writes.
   */
  batch(): void {
    const sock = this.sock
    if (this.corked || !sock) return
    this.corked = true
    sock.cork()
    setImmediate(() => {
      this.corked = false
      sock.uncork()
    })
  }

  /**
   * Holds a new channel to the connection's window cap (send-windows.ts). What a channel sends
   * waits in the slave's sshd until sftp-server or tar takes it, and OpenSSH grows that buffer by
   * copying it whole into fresh memory for every packet that does not fit: with its full 2 MiB
   * window taken, the slaves' sshd spent more CPU on that than on everything else in a publish
   * (half the slaves' CPU of 300 changed files, three fifths of a first publish's). Only for
   * OpenSSH, whose rule for opening the window again (three packets consumed) is known: a server
   * that waits for half its window would never open it again under a smaller cap.
   */
  private capWindow(channel: unknown): void {
    if (this.openssh) this.windows.add(channel as Parameters<SendWindows['add']>[0])
  }

  /** The send window each channel is held to (see capWindow); infinite until a round trip is measured, or when the server is not OpenSSH. */
  get sendWindowCap(): number {
    return this.openssh ? this.windows.cap : Number.POSITIVE_INFINITY
  }

  private get openssh(): boolean {
    return OPENSSH.test((this.client as unknown as {_remoteVer?: string})._remoteVer ?? '')
  }

  /** Called with how long each SFTP request took to be answered: the fastest is the round trip, which bounds the cap. */
  answered(ms: number): void {
    this.windows.roundTrip(ms)
  }

  /** The least busy SFTP channel: requests spread over the slave's sftp-server processes. */
  channel(): SftpChannel {
    // Once the connection is lost any channel will do: its calls reject with `lost`.
    const open = this.channels.filter((c) => !c.closed)
    if (open.length === 0) return this.channels[0]
    let best = open[this.next++ % open.length]
    for (const c of open) if (c.inFlight < best.inFlight) best = c
    return best
  }

  /**
   * Runs a command on the slave (only when `exec` is true), feeding `stdin` and closing it.
   * The command line goes through the user's login shell: keep file names out of it.
   * Rejects with TIMEOUT after `timeoutMs` (0: no limit besides the keepalive).
   */
  run(command: string, stdin?: Buffer, timeoutMs = 0): Promise<{code: number | null; stdout: Buffer; stderr: Buffer}> {
    return this.execLimit(() => this.runRaw(command, stdin, timeoutMs))
  }

  /**
   * Runs a command whose stdin is fed by `feed` as it goes (`write` waits while the channel's
   * window is full), then closed; resolves with the exit code and output once the command ends.
   * A `feed` that throws closes the channel and rejects with its error. `write` may return
   * before the chunk is taken; `taken`, when given, is called once its bytes are copied out, and
   * the chunk may then be filled again (never when the channel failed).
   */
  pipe(command: string, feed: (write: (chunk: Buffer, taken?: () => void) => Promise<void>) => Promise<void>): Promise<{code: number | null; stdout: Buffer; stderr: Buffer}> {
    return this.execLimit(() => {
      if (this.lost) return Promise.reject(this.lost)
      return new Promise((resolve, reject) => {
        this.client.exec(command, (error, channel) => {
          if (error) return reject(error)
          this.capWindow(channel)
          const out: Buffer[] = []
          const err: Buffer[] = []
          let code: number | null = null
          let failed: unknown
          channel.on('data', (chunk: Buffer) => out.push(chunk))
          channel.stderr.on('data', (chunk: Buffer) => err.push(chunk))
          channel.on('exit', (exitCode: number | null) => (code = exitCode))
          channel.on('close', () => {
            if (this.lost) reject(this.lost)
            else if (failed) reject(failed)
            else resolve({code, stdout: Buffer.concat(out), stderr: Buffer.concat(err)})
          })
          const write = (chunk: Buffer, taken?: () => void) =>
            new Promise<void>((done, fail) => {
              if (this.lost) return fail(this.lost)
              this.batch()
              // The stream calls back once ssh2 has copied the chunk into its packets.
              const written = channel.write(chunk, taken && ((error?: Error | null) => void (error ? undefined : taken())))
              if (written) return done()
              const onDrain = () => {
                channel.off('close', onClose)
                done()
              }
              const onClose = () => {
                channel.off('drain', onDrain)
                fail(this.lost ?? new MirrorError('CONNECTION_LOST', `"${command}" ended before its input did`, {target: this.target}))
              }
              channel.once('drain', onDrain)
              channel.once('close', onClose)
            })
          feed(write).then(
            () => channel.end(),
            (feedError) => {
              failed = feedError
              channel.close()
            },
          )
        })
      })
    })
  }

  private runRaw(command: string, stdin: Buffer | undefined, timeoutMs: number): Promise<{code: number | null; stdout: Buffer; stderr: Buffer}> {
    if (this.lost) return Promise.reject(this.lost)
    return new Promise((resolve, reject) => {
      let stream: ClientChannel | undefined
      const timer = timeoutMs > 0 ? setTimeout(() => {
        stream?.close()
        reject(new MirrorError('TIMEOUT', `"${command}" did not finish within ${timeoutMs} ms`, {target: this.target}))
      }, timeoutMs) : undefined
      try {
        this.client.exec(command, (error, channel) => {
          if (error) {
            clearTimeout(timer)
            reject(error)
            return
          }
          this.capWindow(channel)
          stream = channel
          const out: Buffer[] = []
          const err: Buffer[] = []
          let code: number | null = null
          channel.on('data', (chunk: Buffer) => out.push(chunk))
          channel.stderr.on('data', (chunk: Buffer) => err.push(chunk))
          channel.on('exit', (exitCode: number | null) => (code = exitCode))
          channel.on('close', () => {
            clearTimeout(timer)
            if (this.lost) reject(this.lost)
            else resolve({code, stdout: Buffer.concat(out), stderr: Buffer.concat(err)})
          })
          channel.end(stdin)
        })
      } catch (error) {
        clearTimeout(timer)
        reject(error)
      }
    })
  }

  /** Closes the connection. Never throws. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    // A channel still being opened when the connection ends makes ssh2 throw from its stream
    // code, out of reach: let them finish first (they take a round trip).
    if (this.opening.size > 0 && !this.lost && this.sock && !this.sock.destroyed) {
      await Promise.race([Promise.all(this.opening), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
    }
    this.markLost(new MirrorError('CONNECTION_LOST', 'the connection was closed', {target: this.target}))
    if (!this.sock || this.sock.destroyed) return
    try {
      this.client.end()
    } catch {
      this.sock.destroy()
    }
    // The server answers a disconnect by closing the socket: nothing is left to wait for (a round
    // trip at the end of every publish), and the closing socket no longer keeps the process alive.
    this.sock.unref()
  }

  private markLost(error: MirrorError): void {
    this.lost ??= error
  }

  /** An error of the transport after login: keepalive silence is TIMEOUT, the rest CONNECTION_LOST. */
  private liveError(error: Error & {level?: string}): MirrorError {
    if (error.level === 'client-timeout') {
      return new MirrorError('TIMEOUT', `${this.where} stopped answering (no reply to keepalives for about ${Math.round(this.options.timeoutMs / 1000)} s)`, {
        target: this.target,
        suggestion: 'Check that the slave is up and not overloaded; the next publish resumes where this one stopped.',
        cause: error,
      })
    }
    return new MirrorError('CONNECTION_LOST', `the SSH connection to ${this.where} was lost: ${error.message}`, {
      target: this.target,
      suggestion: 'The next publish resumes where this one stopped.',
      cause: error,
    })
  }

  private connectError(error: Error & {level?: string; code?: string}, auth: AuthPlan): MirrorError {
    const target = this.target
    const {params} = this
    if (error.level === 'client-authentication') {
      return new MirrorError('AUTH_FAILED', `${this.where} refused every key offered (${auth.summary()})`, {
        target,
        suggestion: `Install your public key for ${params.user} on the slave (ssh-copy-id ${params.port === 22 ? '' : `-p ${params.port} `}${params.user}@${params.hostName}), or load the right key into ssh-agent (ssh-add), or name it with IdentityFile in the ssh config.`,
        retryable: false,
        cause: error,
      })
    }
    if (error.level === 'client-timeout' || error.code === 'ETIMEDOUT') {
      return new MirrorError('TIMEOUT', `no SSH answer from ${params.hostName}:${params.port} within ${Math.round(Math.min(this.options.timeoutMs, params.connectTimeoutMs ?? Infinity) / 100) / 10} s`, {
        target,
        suggestion: 'Check that the slave is up and that a firewall does not drop the port; raise "timeout" on the target if it is only slow.',
        cause: error,
      })
    }
    if (error.level === 'client-dns' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
      return new MirrorError('UNREACHABLE', `cannot resolve host name ${params.hostName}`, {
        target,
        suggestion: 'Check the host in the target URL, or its HostName in the ssh config.',
        cause: error,
      })
    }
    if (error.code === 'ECONNREFUSED') {
      return new MirrorError('UNREACHABLE', `connection refused by ${params.hostName}:${params.port}`, {
        target,
        suggestion: `Check that sshd runs on ${params.hostName} and listens on port ${params.port}.`,
        cause: error,
      })
    }
    return new MirrorError('UNREACHABLE', `cannot open an SSH connection to ${params.hostName}:${params.port}: ${error.message}`, {
      target,
      suggestion: 'Check that the slave is up and reachable over SSH (try: ssh ' + `${params.port === 22 ? '' : `-p ${params.port} `}${params.user}@${params.hostName}).`,
      cause: error,
    })
  }
}

/** Which keys to offer, in order: ssh-agent, then each identity file. Never passwords. */
class AuthPlan {
  private readonly methods: Array<() => AnyAuthMethod | undefined> = []
  private readonly notes: string[] = []
  private readonly tried: string[] = []
  private index = 0

  constructor(params: SshParams) {
    const username = params.user
    const allowed = params.identitiesOnly && params.identityFilesExplicit ? publicBlobs(params.identityFiles) : undefined
    if (params.agentSocket && existsSync(params.agentSocket)) {
      this.methods.push(() => {
        this.tried.push('ssh-agent')
        return {type: 'agent', username, agent: allowed ? new FilteredAgent(params.agentSocket as string, allowed) : (params.agentSocket as string)}
      })
    }
    for (const file of params.identityFiles) {
      this.methods.push(() => {
        let text: Buffer
        try {
          text = readFileSync(file)
        } catch (error) {
          if (params.identityFilesExplicit) this.notes.push(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
          return undefined
        }
        const key = utils.parseKey(text)
        if (key instanceof Error) {
          this.notes.push(
            /passphrase/i.test(key.message)
              ? `skipped ${file}: it is encrypted and mirror never asks for passphrases (load it into ssh-agent: ssh-add ${file})`
              : `skipped ${file}: ${key.message}`,
          )
          return undefined
        }
        this.tried.push(file)
        return {type: 'publickey', username, key: Array.isArray(key) ? key[0] : key}
      })
    }
  }

  next(methodsLeft: AuthenticationType[] | null, next: NextAuthHandler): void {
    if (methodsLeft && !methodsLeft.includes('publickey')) {
      this.notes.push(`the server accepts only ${methodsLeft.join(', ')}; mirror uses keys only`)
      next(false as never)
      return
    }
    while (this.index < this.methods.length) {
      const method = this.methods[this.index++]()
      if (method) {
        next(method)
        return
      }
    }
    next(false as never)
  }

  note(message: string): void {
    this.notes.push(message)
  }

  summary(): string {
    const tried = this.tried.length > 0 ? `tried ${this.tried.join(', ')}` : 'no key to offer: no ssh-agent and no identity file'
    return [tried, ...this.notes].join('; ')
  }
}

/** Public key blobs of identity files (from `<file>.pub`, else from an unencrypted private key). */
function publicBlobs(files: readonly string[]): Set<string> {
  const blobs = new Set<string>()
  for (const file of files) {
    try {
      const pub = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/)[1]
      if (pub) {
        blobs.add(pub)
        continue
      }
    } catch {
      // No .pub beside it: try the private key.
    }
    try {
      const key = utils.parseKey(readFileSync(file))
      if (!(key instanceof Error)) blobs.add((Array.isArray(key) ? key[0] : key).getPublicSSH().toString('base64'))
    } catch {
      // Unreadable: nothing to allow.
    }
  }
  return blobs
}

/** IdentitiesOnly with an agent: offer only the agent keys that match the identity files. */
class FilteredAgent extends OpenSSHAgent {
  constructor(
    socket: string,
    private readonly allowed: Set<string>,
  ) {
    super(socket)
  }

  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    super.getIdentities((error, keys) => {
      if (error || !keys) return cb(error, keys)
      cb(undefined, keys.filter((key) => 'getPublicSSH' in key && this.allowed.has(key.getPublicSSH().toString('base64'))))
    })
  }
}

/**
 * One SFTP channel as promises. Requests are not awaited one by one by callers: ssh2 writes each
 * request as it is issued, so many calls in flight share one round trip.
 */
export class SftpChannel {
  /** Requests sent and not answered yet. */
  inFlight = 0
  closed = false
  private readonly sftp: SFTPWrapper

  constructor(
    sftp: SFTPWrapper,
    private readonly connection: SshConnection,
  ) {
    this.sftp = sftp
    // A request issued after the channel closed would never be answered: fail it up front.
    const onClose = () => (this.closed = true)
    sftp.on('close', onClose)
    sftp.on('end', onClose)
    sftp.on('error', onClose)
  }

  /** Extensions announced by the server in its VERSION packet. */
  get extensions(): Record<string, string> {
    return (this.sftp as unknown as {_extensions?: Record<string, string>})._extensions ?? {}
  }

  /** The largest write the server accepts in one request (limits@openssh.com), ssh2 splits larger. */
  get maxWriteLength(): number {
    return (this.sftp as unknown as {_maxWriteLen?: number})._maxWriteLen ?? 32 * 1024
  }

  private call<T>(start: (done: (error: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    if (this.connection.lost) return Promise.reject(this.connection.lost)
    if (this.closed) {
      return Promise.reject(new MirrorError('CONNECTION_LOST', `the SFTP session with ${this.connection.where} closed`, {target: this.connection.target}))
    }
    this.inFlight++
    this.connection.batch()
    const sent = performance.now()
    return new Promise<T>((resolve, reject) => {
      const done = (error: Error | undefined | null, value?: T) => {
        this.inFlight--
        this.connection.answered(performance.now() - sent)
        if (!error) resolve(value as T)
        else if (sftpStatus(error) !== undefined) reject(error)
        // No status code: the request died with the channel or the connection.
        else reject(this.connection.lost ?? new MirrorError('CONNECTION_LOST', `the SFTP session with ${this.connection.where} ended: ${error.message}`, {target: this.connection.target, cause: error}))
      }
      try {
        start(done)
      } catch (error) {
        done(error as Error)
      }
    })
  }

  lstat(path: string): Promise<Stats> {
    return this.call((cb) => this.sftp.lstat(path, cb))
  }

  stat(path: string): Promise<Stats> {
    return this.call((cb) => this.sftp.stat(path, cb))
  }

  fstat(handle: Buffer): Promise<Stats> {
    return this.call((cb) => this.sftp.fstat(handle, cb))
  }

  /** Opens a file; `flags` as fs: 'r', 'w', 'wx' (exclusive create: fails if anything, even a symlink, is there). */
  open(path: string, flags: OpenMode, attrs?: InputAttributes): Promise<Buffer> {
    return this.call((cb) => (attrs ? this.sftp.open(path, flags, attrs, cb) : this.sftp.open(path, flags, cb)))
  }

  close(handle: Buffer): Promise<void> {
    return this.call((cb) => this.sftp.close(handle, cb))
  }

  /** Reads up to `length` bytes at `position`; resolves 0 at end of file. */
  read(handle: Buffer, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.call<number>((cb) =>
      this.sftp.read(handle, buffer, offset, length, position, (error, bytesRead) => {
        if (sftpStatus(error) === SFTP_STATUS.EOF) cb(undefined, 0)
        else cb(error, bytesRead)
      }),
    )
  }

  write(handle: Buffer, buffer: Buffer, offset: number, length: number, position: number): Promise<void> {
    return this.call((cb) => {
      let giveBack = () => {}
      giveBack = pooledRequest(length, () =>
        this.sftp.write(handle, buffer, offset, length, position, (error) => {
          giveBack()
          cb(error)
        }),
      )
    })
  }

  fsetstat(handle: Buffer, attrs: InputAttributes): Promise<void> {
    return this.call((cb) => this.sftp.fsetstat(handle, attrs, cb))
  }

  mkdir(path: string, mode?: number): Promise<void> {
    return this.call((cb) => (mode === undefined ? this.sftp.mkdir(path, cb) : this.sftp.mkdir(path, {mode}, cb)))
  }

  rmdir(path: string): Promise<void> {
    return this.call((cb) => this.sftp.rmdir(path, cb))
  }

  unlink(path: string): Promise<void> {
    return this.call((cb) => this.sftp.unlink(path, cb))
  }

  /** Plain SFTP rename: fails when `to` exists. */
  rename(from: string, to: string): Promise<void> {
    return this.call((cb) => this.sftp.rename(from, to, cb))
  }

  /** rename(2) semantics: atomically replaces `to`. Needs `posix-rename@openssh.com`. */
  posixRename(from: string, to: string): Promise<void> {
    return this.call((cb) => this.sftp.ext_openssh_rename(from, to, cb))
  }

  /** Every entry of a directory (without `.` and `..`), with lstat attributes. */
  readdir(path: string): Promise<FileEntry[]> {
    return this.call((cb) => this.sftp.readdir(path, cb))
  }

  realpath(path: string): Promise<string> {
    return this.call((cb) => this.sftp.realpath(path, cb))
  }

  /** Server-side copy of `length` bytes (0: to end of file) between two handles (`copy-data`). */
  copyData(from: Buffer, fromOffset: number, length: number, to: Buffer, toOffset: number): Promise<void> {
    return this.call((cb) => this.sftp.ext_copy_data(from, fromOffset, length, to, toOffset, cb))
  }

  readlink(path: string): Promise<string> {
    return this.call((cb) => this.sftp.readlink(path, cb))
  }

  /** Creates `linkPath` pointing at `targetPath` (ssh2 fixes OpenSSH's swapped argument order). */
  symlink(targetPath: string, linkPath: string): Promise<void> {
    return this.call((cb) => this.sftp.symlink(targetPath, linkPath, cb))
  }

  statvfs(path: string): Promise<StatVfs> {
    return this.call<Record<string, number | bigint>>((cb) => this.sftp.ext_openssh_statvfs(path, cb)).then((vfs) => ({
      frsize: Number(vfs.f_frsize),
      bavail: Number(vfs.f_bavail),
      bfree: Number(vfs.f_bfree),
      favail: Number(vfs.f_favail),
      // SSH2_FXE_STATVFS_ST_RDONLY
      readOnly: (Number(vfs.f_flag) & 1) === 1,
    }))
  }
}

export type {Attributes, Stats}
