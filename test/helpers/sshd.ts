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
  pid: number
  /** Stops sshd (and its connection processes) by pid and removes `dir`. Safe to call twice. */
  stop(): Promise<void>
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

  let lastError = ''
  // A free port can be taken by another test file between probing and binding: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const configFile = join(dir, 'sshd_config')
    const lines = [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${hostKey.privateKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
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
    const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', configFile], {stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr?.on('data', (chunk) => (stderr += chunk.toString()))
    let exited = false
    child.once('exit', () => (exited = true))
    child.once('error', (error) => {
      exited = true
      stderr += error.message
    })
    const deadline = Date.now() + 10_000
    let up = false
    while (!exited && Date.now() < deadline) {
      if (await sshBanner(port)) {
        up = true
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    if (!up) {
      if (!exited) child.kill('SIGTERM')
      lastError = stderr.trim() || 'did not answer within 10 s'
      continue
    }
    const pid = child.pid as number
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
    let stopping: Promise<void> | undefined
    const onExit = () => {
      signal(stopped, 'SIGCONT')
      signal([pid, ...descendants(pid)], 'SIGKILL')
      rmSync(dir, {recursive: true, force: true})
    }
    running.add(onExit)
    const stop = (): Promise<void> => {
      running.delete(onExit)
      stopping ??= (async () => {
        // Stopped processes do not act on SIGTERM until continued.
        signal(stopped, 'SIGCONT')
        const connections = descendants(pid)
        if (!exited) {
          const gone = new Promise<void>((r) => child.once('exit', () => r()))
          signal([pid], 'SIGTERM')
          await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))])
          if (!exited) signal([pid], 'SIGKILL')
        }
        // Connection processes outlive the listener; they are ours (forked by our sshd).
        signal(connections, 'SIGTERM')
        rmSync(dir, {recursive: true, force: true})
      })()
      return stopping
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
      pid,
      stop,
      suspend() {
        stopped = [pid, ...descendants(pid)]
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
