// Test harness: starts a real OpenSSH sshd on 127.0.0.1 (free port, fresh ed25519 keys, own
// temp dir) as the current user, and writes the known_hosts and ssh_config a client needs.
// It is not a fake: everything the tests see comes from /usr/sbin/sshd and the real sftp-server.

import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, Socket} from 'node:net'
import {tmpdir, userInfo} from 'node:os'
import {join} from 'node:path'

import type {Test} from 'tap'

const SSHD = process.env.MIRROR_TEST_SSHD ?? '/usr/sbin/sshd'
/** Where distributions put OpenSSH's sftp-server (Debian/Ubuntu, Fedora/RHEL, Arch, Alpine). */
const SFTP_SERVERS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server', '/usr/libexec/sftp-server']

export interface SshdOptions {
  /** The `Host` alias written into the ssh_config file. */
  alias?: string
  /** sshd's MaxSessions (channels per connection); OpenSSH's default is 10. */
  maxSessions?: number
  /** Extra sshd_config lines (e.g. `ForceCommand internal-sftp`). */
  extraConfig?: string[]
}

export interface Sshd {
  host: '127.0.0.1'
  port: number
  /** Host alias defined in `sshConfigFile`. */
  alias: string
  /** The user sshd lets in: the user running the tests. */
  user: string
  /** An ssh_config with a `Host <alias>` block (HostName, Port, User, IdentityFile, UserKnownHostsFile). */
  sshConfigFile: string
  /** known_hosts with this sshd's ed25519 host key for `[127.0.0.1]:port`. */
  knownHostsFile: string
  /** Private key that is in authorized_keys. */
  identityFile: string
  /** The host key's public line (`ssh-ed25519 AAAA...`). */
  hostPublicKey: string
  /** Temp directory holding all of the above; removed by stop(). */
  dir: string
  /** The listener's pid (a new one after restart()). */
  pid: number
  /** Stops sshd (and its connection processes) by pid and removes `dir`. Safe to call twice. */
  stop(): Promise<void>
  /**
   * Stops sshd entirely, by pid: the listener (new connections are refused) and every
   * connection process with its sftp-server, also one being accepted as it stops; resolves when
   * they are gone. Keeps `dir`, so that restart() brings the same server back.
   */
  halt(): Promise<void>
  /**
   * Starts sshd again (halting it first if it runs) on the same port, with the same host key and
   * authorized key. Rejects when it does not answer within 10 s (e.g. the port was taken).
   */
  restart(): Promise<void>
  /** SIGSTOP sshd and every process it forked (connections, sftp-server): a stalled server. */
  suspend(): void
  /** SIGCONT what suspend() stopped. */
  resume(): void
}

/** Generates an ed25519 key pair with ssh-keygen; returns the private key path and public line. */
export function generateKey(dir: string, name: string): {privateKey: string; publicLine: string} {
  const file = join(dir, name)
  const run = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `mirror-test-${name}`, '-f', file], {encoding: 'utf8'})
  if (run.error || run.status !== 0) {
    throw new Error(`ssh-keygen failed (install openssh-client): ${run.error?.message ?? run.stderr}`)
  }
  return {privateKey: file, publicLine: readFileSync(`${file}.pub`, 'utf8').trim()}
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** Resolves when something on the port answers with an SSH banner (so it is sshd, not a stray). */
function sshBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    let data = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      if (data.includes('\n')) done(data.startsWith('SSH-2.0-'))
    })
    socket.connect(port, '127.0.0.1')
  })
}

/** Child pids of `pid`, recursively, read from /proc (Linux): sshd forks per connection. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  let names: string[] = []
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // The command name may contain spaces and parentheses: ppid is the 2nd field after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const list = children.get(ppid) ?? []
      list.push(Number(name))
      children.set(ppid, list)
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = []
  const walk = (p: number) => {
    for (const child of children.get(p) ?? []) {
      out.push(child)
      walk(child)
    }
  }
  walk(pid)
  return out
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig)
    } catch {
      // Already gone.
    }
  }
}

/** Whether `pid` is a process that has not exited (Linux /proc). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // A zombie has exited; nobody may reap it when its parent, the listener, is gone.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** An sshd -D process listening for connections. */
interface Listener {
  pid: number
  exited: boolean
  /** Resolves when the process has exited. */
  gone: Promise<void>
}

/**
 * Spawns `sshd -D` on `configFile`. Resolves once it has written its pid file (sshd does so
 * after binding, so the port is its own, not a stray's) and answers with an SSH banner.
 */
async function listen(configFile: string, pidFile: string, port: number): Promise<Listener> {
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', configFile], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk.toString()))
  const listener: Listener = {pid: child.pid ?? 0, exited: false, gone: Promise.resolve()}
  listener.gone = new Promise((resolve) =>
    child.once('exit', () => {
      listener.exited = true
      resolve()
    }),
  )
  child.once('error', (error) => {
    listener.exited = true
    stderr += error.message
  })
  const ownsPidFile = () => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim()) === listener.pid
    } catch {
      return false
    }
  }
  const deadline = Date.now() + 10_000
  while (!listener.exited && Date.now() < deadline) {
    if (ownsPidFile() && (await sshBanner(port))) return listener
    await new Promise((r) => setTimeout(r, 50))
  }
  if (!listener.exited) child.kill('SIGTERM')
  throw new Error(stderr.trim() || 'did not answer within 10 s')
}

/**
 * Stops a listener and the connection processes it forked (and `suspended`, what suspend()
 * stopped), by pid; resolves when they are gone.
 */
async function terminate(listener: Listener, suspended: number[]): Promise<void> {
  // The whole tree is frozen first, so that nothing forks while it is collected: a process
  // forked later would outlive its parent, out of reach (a connection the slave still serves).
  const tree = listener.exited ? [...suspended] : [listener.pid, ...suspended.filter((pid) => pid !== listener.pid)]
  signal(tree, 'SIGSTOP')
  for (;;) {
    const more = descendants(listener.pid).filter((pid) => !tree.includes(pid))
    if (more.length === 0) break
    signal(more, 'SIGSTOP')
    tree.push(...more)
  }
  // Stopped processes act on SIGTERM once continued.
  signal(tree, 'SIGTERM')
  signal(tree, 'SIGCONT')
  const deadline = Date.now() + 3000
  while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  signal(tree.filter(alive), 'SIGKILL')
  if (!listener.exited) await listener.gone
}

/** Kill switches of the sshds still running: if the test process dies before teardown, they go too. */
const running = new Set<() => void>()
process.once('exit', () => {
  for (const kill of running) kill()
})

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`sshd not found at ${SSHD}: install openssh-server (the SSH tests need a real sshd)`)
  const sftpServer = SFTP_SERVERS.find((p) => existsSync(p))
  if (!sftpServer) throw new Error(`sftp-server not found (looked in ${SFTP_SERVERS.join(', ')}): install openssh-server`)
  // As root, sshd insists on its privilege separation directory, which only the service creates.
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', {recursive: true, mode: 0o755})

  const dir = mkdtempSync(join(tmpdir(), 'mirror-sshd-'))
  const user = userInfo().username
  const alias = options.alias ?? 'mirror-test-slave'
  const hostKey = generateKey(dir, 'host_ed25519')
  const userKey = generateKey(dir, 'id_ed25519')
  const authorizedKeys = join(dir, 'authorized_keys')
  writeFileSync(authorizedKeys, `${userKey.publicLine}\n`, {mode: 0o600})
  const configFile = join(dir, 'sshd_config')
  const pidFile = join(dir, 'sshd.pid')

  let lastError = ''
  // A free port can be taken by another test file between probing and binding: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const lines = [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${hostKey.privateKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'UseDNS no',
      'PrintMotd no',
      'AllowAgentForwarding no',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      `MaxSessions ${options.maxSessions ?? 10}`,
      'LogLevel ERROR',
      // bash sources ~/.bashrc when started by sshd at SHLVL < 2: keep the tester's dotfiles
      // (slow pyenv/nvm setups, or output that corrupts the SFTP stream) out of the tests.
      'SetEnv SHLVL=1',
      ...(options.extraConfig ?? []),
      `Subsystem sftp ${sftpServer}`,
      '',
    ]
    writeFileSync(configFile, lines.join('\n'))
    // SetEnv needs OpenSSH 8.7; an older sshd works without it, only with the dotfiles' cost.
    const check = spawnSync(SSHD, ['-t', '-f', configFile], {encoding: 'utf8'})
    if (check.status !== 0 && /SetEnv/i.test(check.stderr)) writeFileSync(configFile, lines.filter((l) => !l.startsWith('SetEnv')).join('\n'))
    let listener: Listener
    try {
      listener = await listen(configFile, pidFile, port)
    } catch (error) {
      lastError = (error as Error).message
      continue
    }
    const knownHostsFile = join(dir, 'known_hosts')
    writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostKey.publicLine.split(' ').slice(0, 2).join(' ')}\n`)
    const sshConfigFile = join(dir, 'ssh_config')
    writeFileSync(
      sshConfigFile,
      [
        `Host ${alias}`,
        '  HostName 127.0.0.1',
        `  Port ${port}`,
        `  User ${user}`,
        `  IdentityFile ${userKey.privateKey}`,
        `  UserKnownHostsFile ${knownHostsFile}`,
        '  IdentitiesOnly yes',
        '',
      ].join('\n'),
    )
    let stopped: number[] = []
    let halting: Promise<void> | undefined
    let stopping: Promise<void> | undefined
    const onExit = () => {
      signal(stopped, 'SIGCONT')
      // A halted listener's pid may already be another process's.
      if (!listener.exited) signal([listener.pid, ...descendants(listener.pid)], 'SIGKILL')
      rmSync(dir, {recursive: true, force: true})
    }
    running.add(onExit)
    const halt = (): Promise<void> => {
      halting ??= terminate(listener, stopped).then(() => {
        stopped = []
      })
      return halting
    }
    return {
      host: '127.0.0.1',
      port,
      alias,
      user,
      sshConfigFile,
      knownHostsFile,
      identityFile: userKey.privateKey,
      hostPublicKey: hostKey.publicLine.split(' ').slice(0, 2).join(' '),
      dir,
      get pid() {
        return listener.pid
      },
      stop() {
        running.delete(onExit)
        stopping ??= halt().then(() => rmSync(dir, {recursive: true, force: true}))
        return stopping
      },
      halt,
      async restart() {
        await halt()
        listener = await listen(configFile, pidFile, port)
        halting = undefined
      },
      suspend() {
        stopped = [listener.pid, ...descendants(listener.pid)]
        signal(stopped, 'SIGSTOP')
      },
      resume() {
        signal(stopped, 'SIGCONT')
        stopped = []
      },
    }
  }
  rmSync(dir, {recursive: true, force: true})
  throw new Error(`sshd did not start: ${lastError}`)
}

/** Starts an sshd for the test `t` and stops it when `t` ends. */
export async function sshdFor(t: Test, options?: SshdOptions): Promise<Sshd> {
  const sshd = await startSshd(options)
  t.teardown(() => sshd.stop())
  return sshd
}
