// SftpTarget against a real OpenSSH sshd on 127.0.0.1: the shared conformance suite, then what
// only SSH has (host keys, auth, reachability, stalls, exec) and its safety rules.

import {spawnSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {homedir, tmpdir} from 'node:os'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import type {TargetConfig} from '../../src/config/schema.js'
import {MirrorError} from '../../src/errors.js'
import {computeDelta, computeSignature} from '../../src/sync/delta.js'
import type {SshConnection} from '../../src/targets/ssh/connection.js'
import {WINDOW_CAP_MIN, windowCapFor} from '../../src/targets/ssh/send-windows.js'
import {defaultSftpStateDir, SftpTarget} from '../../src/targets/ssh/sftp-target.js'
import {runConformance} from '../helpers/conformance.js'
import {generateKey, sshdFor, startSshd, type Sshd} from '../helpers/sshd.js'

// The developer's own ssh-agent must not take part: every key used here is generated.
delete process.env.SSH_AUTH_SOCK

const sshd = await startSshd()
t.teardown(() => sshd.stop())

function config(server: Sshd, root: string, overrides: Partial<TargetConfig> = {}): TargetConfig {
  return {
    name: 'slave',
    url: `sftp://${server.alias}${root}`,
    location: {kind: 'sftp', host: server.alias, root},
    transfers: 32,
    hostKeys: 'strict',
    timeoutMs: 10_000,
    ...overrides,
  }
}

const made: string[] = []
t.teardown(() => Promise.all(made.map((dir) => fs.rm(dir, {recursive: true, force: true}))))

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** An ssh_config for `server` with another known_hosts file or identity. */
function sshConfig(server: Sshd, options: {knownHosts?: string; identity?: string; hostKeyAlias?: string} = {}): string {
  const dir = tempDir('mirror-sshcfg-')
  const file = join(dir, 'ssh_config')
  writeFileSync(
    file,
    [
      `Host ${server.alias}`,
      '  HostName 127.0.0.1',
      `  Port ${server.port}`,
      `  User ${server.user}`,
      `  IdentityFile ${options.identity ?? server.identityFile}`,
      `  UserKnownHostsFile ${options.knownHosts ?? server.knownHostsFile}`,
      '  IdentitiesOnly yes',
      ...(options.hostKeyAlias ? [`  HostKeyAlias ${options.hostKeyAlias}`] : []),
      '',
    ].join('\n'),
  )
  return file
}

/** The fingerprint as OpenSSH's own ssh-keygen prints it, to compare with ours. */
function opensshFingerprint(publicLine: string): string {
  const dir = tempDir('mirror-fp-')
  writeFileSync(join(dir, 'key.pub'), `${publicLine}\n`)
  const out = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'key.pub')], {encoding: 'utf8'}).stdout
  const fp = out.split(' ')[1]
  if (!fp?.startsWith('SHA256:')) throw new Error(`ssh-keygen -l printed ${out}`)
  return fp
}

async function rejection(promise: Promise<unknown>): Promise<MirrorError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof MirrorError) return error
    throw error
  }
  throw new Error('expected a rejection')
}

async function newRoot(t: Test): Promise<{base: string; root: string; state: string}> {
  const base = tempDir('mirror-sftp-')
  const root = join(base, 'www')
  await fs.mkdir(root)
  t.teardown(() => fs.rm(base, {recursive: true, force: true}))
  return {base, root, state: join(base, 'state')}
}

runConformance(t, 'sftp', async () => {
  const base = tempDir('mirror-sftp-')
  const root = join(base, 'www')
  const state = join(base, 'state')
  await fs.mkdir(root)
  const make = () => new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
  const target = make()
  return {
    target,
    root,
    stateDir: state,
    reopen: async () => make(),
    cleanup: async () => {
      await target.close()
      await fs.rm(base, {recursive: true, force: true})
    },
  }
})

t.test('sftp: an unknown host key is refused with its fingerprint, and nothing is recorded', async (t) => {
  const {root} = await newRoot(t)
  const knownHosts = join(tempDir('mirror-kh-'), 'known_hosts')
  writeFileSync(knownHosts, '')
  const target = new SftpTarget(config(sshd, root), {config: sshConfig(sshd, {knownHosts})})
  t.teardown(() => target.close())
  const error = await rejection(target.connect())
  t.equal(error.code, 'HOST_KEY_UNKNOWN')
  t.equal(error.target, 'slave')
  t.match(error.message, opensshFingerprint(sshd.hostPublicKey), 'shows the fingerprint ssh-keygen shows')
  t.match(error.suggestion, `ssh-keyscan -p ${sshd.port} 127.0.0.1`)
  t.match(error.suggestion, 'accept-new')
  t.equal(readFileSync(knownHosts, 'utf8'), '', 'known_hosts untouched under the strict policy')
  t.same(await fs.readdir(root), [], 'nothing written on the slave')
})

t.test('sftp: a changed host key is refused, showing both fingerprints', async (t) => {
  const {root} = await newRoot(t)
  const dir = tempDir('mirror-kh-')
  const impostor = generateKey(dir, 'other_host_key')
  const knownHosts = join(dir, 'known_hosts')
  const line = `[127.0.0.1]:${sshd.port} ${impostor.publicLine.split(' ').slice(0, 2).join(' ')}\n`
  writeFileSync(knownHosts, line)
  for (const hostKeys of ['strict', 'accept-new'] as const) {
    const target = new SftpTarget(config(sshd, root, {hostKeys}), {config: sshConfig(sshd, {knownHosts})})
    const error = await rejection(target.connect())
    await target.close()
    t.equal(error.code, 'HOST_KEY_CHANGED', hostKeys)
    t.match(error.message, opensshFingerprint(sshd.hostPublicKey), 'the key the server presented')
    t.match(error.message, opensshFingerprint(impostor.publicLine), 'the key known_hosts has')
    t.match(error.suggestion, `ssh-keygen -R '[127.0.0.1]:${sshd.port}'`)
    t.equal(error.retryable, false)
    t.equal(readFileSync(knownHosts, 'utf8'), line, `known_hosts not rewritten (${hostKeys})`)
  }
})

t.test('sftp: hostKeys accept-new records a first-seen key, then it is known', async (t) => {
  const {root} = await newRoot(t)
  const knownHosts = join(tempDir('mirror-kh-'), 'sub', 'known_hosts')
  const ssh = {config: sshConfig(sshd, {knownHosts})}
  const first = new SftpTarget(config(sshd, root, {hostKeys: 'accept-new'}), ssh)
  await first.connect()
  await first.close()
  t.equal(readFileSync(knownHosts, 'utf8'), `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`)
  const strict = new SftpTarget(config(sshd, root), ssh)
  await strict.connect()
  t.equal(await strict.canExec(), true, 'connected under strict with the recorded key')
  await strict.close()
})

t.test('sftp: the mirror config known_hosts file (ssh.knownHosts) is honoured', async (t) => {
  const {root} = await newRoot(t)
  const empty = join(tempDir('mirror-kh-'), 'known_hosts')
  writeFileSync(empty, '')
  const target = new SftpTarget(config(sshd, root), {config: sshConfig(sshd, {knownHosts: empty}), knownHosts: sshd.knownHostsFile})
  await target.connect()
  t.pass('connected with the key from ssh.knownHosts')
  await target.close()
})

t.test('sftp: a HostKeyAlias is looked up as it is, without the port, as OpenSSH does', async (t) => {
  const {root} = await newRoot(t)
  // The slave listens off port 22: the alias alone names its entry, as for a host behind a tunnel.
  const knownHosts = join(tempDir('mirror-kh-'), 'known_hosts')
  writeFileSync(knownHosts, `web-origin ${sshd.hostPublicKey}\n`)
  const file = sshConfig(sshd, {knownHosts, hostKeyAlias: 'web-origin'})
  const ssh = spawnSync('ssh', ['-F', file, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', sshd.alias, 'true'], {encoding: 'utf8'})
  t.equal(ssh.status, 0, `OpenSSH's ssh accepts the same config (${ssh.stderr.trim()})`)
  const target = new SftpTarget(config(sshd, root), {config: file})
  await target.connect()
  t.pass('connected: the key was found under the alias')
  await target.close()

  // Unknown under the alias: the suggested command records the key under the alias.
  writeFileSync(knownHosts, '')
  const stranger = new SftpTarget(config(sshd, root), {config: file})
  t.teardown(() => stranger.close())
  const error = await rejection(stranger.connect())
  t.equal(error.code, 'HOST_KEY_UNKNOWN')
  t.match(error.message, /host web-origin is not in known_hosts/)
  const command = /trust it: (.*) >> /.exec(error.suggestion ?? '')?.[1]
  t.ok(command, error.suggestion)
  const scanned = spawnSync('sh', ['-c', command!], {encoding: 'utf8'})
  t.match(scanned.stdout, /^web-origin ssh-ed25519 /m, 'the suggested keyscan names the alias')
})

t.test('sftp: a key that is not authorized gives AUTH_FAILED naming what was tried', async (t) => {
  const {root} = await newRoot(t)
  const dir = tempDir('mirror-key-')
  const stranger = generateKey(dir, 'id_stranger')
  const target = new SftpTarget(config(sshd, root), {config: sshConfig(sshd, {identity: stranger.privateKey})})
  t.teardown(() => target.close())
  const error = await rejection(target.connect())
  t.equal(error.code, 'AUTH_FAILED')
  t.match(error.message, stranger.privateKey, 'names the key offered')
  t.match(error.suggestion, 'ssh-copy-id')
})

t.test('sftp: an encrypted key without agent is skipped with a note, never prompted for', async (t) => {
  const {root} = await newRoot(t)
  const dir = tempDir('mirror-key-')
  const file = join(dir, 'id_locked')
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret passphrase', '-f', file])
  const target = new SftpTarget(config(sshd, root), {config: sshConfig(sshd, {identity: file})})
  t.teardown(() => target.close())
  const error = await rejection(target.connect())
  t.equal(error.code, 'AUTH_FAILED')
  t.match(error.message, `skipped ${file}: it is encrypted`)
  t.match(error.message, 'ssh-add')
})

t.test('sftp: nothing listening on the port is UNREACHABLE', async (t) => {
  const {root} = await newRoot(t)
  const probe = await startSshd()
  const port = probe.port
  await probe.stop()
  const target = new SftpTarget(
    {name: 'down', url: `sftp://127.0.0.1:${port}${root}`, location: {kind: 'sftp', host: '127.0.0.1', port, root}, transfers: 4, hostKeys: 'strict', timeoutMs: 5000},
    {config: sshd.sshConfigFile},
  )
  const started = Date.now()
  const error = await rejection(target.connect())
  t.equal(error.code, 'UNREACHABLE')
  t.equal(error.target, 'down')
  t.match(error.message, `127.0.0.1:${port}`)
  t.equal(error.retryable, true, 'the next run may find it up')
  t.ok(Date.now() - started < 4000, 'fails fast, without waiting for the timeout')
})

t.test('sftp: a missing root is ROOT_MISSING naming the target and the path', async (t) => {
  const {base} = await newRoot(t)
  const target = new SftpTarget(config(sshd, join(base, 'no-such-root')), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  const error = await rejection(target.connect())
  t.equal(error.code, 'ROOT_MISSING')
  t.equal(error.target, 'slave')
  t.match(error.message, join(base, 'no-such-root'))
  t.match(error.suggestion, 'mkdir -p')
})

/** A connected target on a fresh root, a directory outside it, and a local file holding `content`. */
async function besideOutside(t: Test, content: string): Promise<{root: string; outside: string; target: SftpTarget; local: string}> {
  const {root, state} = await newRoot(t)
  const outside = tempDir('mirror-outside-')
  const target = new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const local = join(tempDir('mirror-src-'), 'f')
  writeFileSync(local, content)
  return {root, outside, target, local}
}

t.test('sftp: a symlink inside the root pointing outside is never written, removed or backed up through', async (t) => {
  const {root, outside, target, local} = await besideOutside(t, 'evil')
  await fs.writeFile(join(outside, 'passwd'), 'keep')
  // `site` is known to be a directory once this lands; the symlink appears below it afterwards.
  await target.put(local, 'site/index.html', {mode: 0o644, mtimeMs: Date.now()})
  await fs.symlink(outside, join(root, 'site/img'))
  for (const [what, attempt] of [
    ['put', () => target.put(local, 'site/img/passwd', {mode: 0o644, mtimeMs: Date.now()})],
    ['put deeper', () => target.put(local, 'site/img/new/x.png', {mode: 0o644, mtimeMs: Date.now()})],
    ['remove', () => target.remove('site/img/passwd')],
    ['backup', () => target.backup('site/img/passwd', 'b1')],
    ['hash', () => target.hash('site/img/passwd')],
  ] as const) {
    const error = await rejection(attempt())
    t.equal(error.code, 'UNSAFE_PATH', what)
    t.match(error.message, '"site/img" on the slave is a symlink', what)
  }
  t.same(await fs.readdir(outside), ['passwd'], 'nothing created outside the root')
  t.equal(await fs.readFile(join(outside, 'passwd'), 'utf8'), 'keep', 'the file outside is untouched')
  const stats = await target.stat(['site/img/passwd', 'site/img'])
  t.equal(stats.get('site/img/passwd'), null, 'stat does not look through the link')
  t.equal(stats.get('site/img')?.type, 'symlink')
})

t.test('sftp: a directory it emptied and removed is looked at again before the next file goes there', async (t) => {
  const {root, outside, target, local} = await besideOutside(t, 'page')
  // site/img is known to be a real directory at every level once this lands.
  await target.put(local, 'site/img/a.html', {mode: 0o644, mtimeMs: Date.now()})
  await target.remove('site/img/a.html')
  t.equal(await target.removeEmptyDir('site/img'), true)
  await fs.symlink(outside, join(root, 'site/img'))
  const error = await rejection(target.put(local, 'site/img/b.html', {mode: 0o644, mtimeMs: Date.now()}))
  t.equal(error.code, 'UNSAFE_PATH', 'the symlink that took its place is seen')
  t.same(await fs.readdir(outside), [], 'nothing written through it')
  // A sibling under the same, still real, parent goes straight in.
  await target.put(local, 'site/b.html', {mode: 0o644, mtimeMs: Date.now()})
  t.equal(await fs.readFile(join(root, 'site/b.html'), 'utf8'), 'page')
})

t.test('sftp: a failed put leaves the old file and no temporary file', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  await fs.mkdir(join(root, 'd'))
  await fs.writeFile(join(root, 'd/page.html'), 'old')
  // A directory as the local file: opening works, reading fails half-way through the put.
  const error = await rejection(target.put(tempDir('mirror-src-'), 'd/page.html', {mode: 0o644, mtimeMs: Date.now()}))
  t.equal(error.target, 'slave')
  t.equal(error.path, 'd/page.html')
  t.equal(await fs.readFile(join(root, 'd/page.html'), 'utf8'), 'old')
  t.same(await fs.readdir(join(root, 'd')), ['page.html'], 'temporary file removed')
})

t.test('sftp: large files go through many writes in flight and arrive intact', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const data = randomBytes(5 * 1024 * 1024 + 12345)
  const local = join(tempDir('mirror-src-'), 'big.bin')
  writeFileSync(local, data)
  const mtimeMs = Date.UTC(2023, 5, 6, 7, 8, 9)
  await target.put(local, 'media/big.bin', {mode: 0o600, mtimeMs})
  t.ok((await fs.readFile(join(root, 'media/big.bin'))).equals(data), 'same bytes')
  const [stat] = (await target.stat(['media/big.bin'])).values()
  t.same(stat, {type: 'file', size: data.length, mtimeMs, mode: 0o600})
  const expected = createHash('sha256').update(data).digest('hex')
  // Big files are hashed on the slave when exec works; count that it really ran there.
  const conn = (target as unknown as {conn: {run: (...args: unknown[]) => Promise<unknown>}}).conn
  let runs = 0
  const run = conn.run.bind(conn)
  conn.run = (...args) => {
    runs++
    return run(...args)
  }
  t.equal(await target.hash('media/big.bin'), expected, 'remote sha256sum')
  t.equal(runs, 1, 'hashed on the slave, not transferred')
  const odd = "media/it's a\nnew \\ line.bin"
  await fs.copyFile(local, join(root, odd))
  t.equal(await target.hash(odd), expected, 'a name with a quote, newline and backslash is passed safely')
  t.equal(runs, 2)
  await target.backup('media/big.bin', 'run-7')
  t.ok(readFileSync(join(target.stateDir, 'backups/run-7/media/big.bin')).equals(data), 'backup through copy-data')
})

t.test('sftp: capabilities after connect reflect the server', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root, {transfers: 48}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  t.same(target.capabilities, {copyData: false, maxTransfers: 48}, 'nothing promised before connect')
  await target.connect()
  t.same(target.capabilities, {copyData: true, maxTransfers: 48})
  t.equal(await target.canExec(), true, 'commands run on this slave')
})

t.test('sftp: a server that only allows SFTP (ForceCommand internal-sftp) still works, without exec', async (t) => {
  const sftpOnly = await sshdFor(t, {extraConfig: ['ForceCommand internal-sftp']})
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sftpOnly, root), {config: sftpOnly.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  t.equal(await target.canExec(), false, 'exec is not trusted just because the request was accepted')
  const data = randomBytes(2 * 1024 * 1024)
  await fs.writeFile(join(root, 'big.bin'), data)
  t.equal(await target.hash('big.bin'), createHash('sha256').update(data).digest('hex'), 'hashed over SFTP instead')
})

t.test('sftp: with MaxSessions 1 the target still connects and works on one channel', async (t) => {
  const narrow = await sshdFor(t, {maxSessions: 1})
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(narrow, root, {transfers: 64}), {config: narrow.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const local = join(tempDir('mirror-src-'), 'f')
  writeFileSync(local, 'hello')
  await Promise.all(Array.from({length: 50}, (_, i) => target.put(local, `d${i % 5}/f${i}.txt`, {mode: 0o644, mtimeMs: Date.now()})))
  t.equal((await target.list()).size, 50)
})

t.test('sftp: the default state dir is under the SSH user\'s home, outside the root', async (t) => {
  const {root} = await newRoot(t)
  const name = `test-${randomBytes(4).toString('hex')}`
  const target = new SftpTarget(config(sshd, root, {name}), {config: sshd.sshConfigFile})
  const stateDir = join(homedir(), defaultSftpStateDir(name, root))
  t.teardown(async () => {
    await target.close()
    await fs.rm(stateDir, {recursive: true, force: true})
  })
  await target.connect()
  await target.writeState('manifest.json', Buffer.from('{}'))
  t.equal(target.stateDir, stateDir)
  t.match(stateDir, new RegExp(`/\\.mirror-state/${name}-[0-9a-f]{8}$`))
  t.equal(readFileSync(join(stateDir, 'manifest.json'), 'utf8'), '{}')
  t.same(await fs.readdir(root), [])
})

t.test('sftp: a stalled server (SIGSTOP) is TIMEOUT, not a hang', async (t) => {
  const stalled = await sshdFor(t)
  const {root} = await newRoot(t)
  const timeoutMs = 1200
  const target = new SftpTarget(config(stalled, root, {timeoutMs}), {config: stalled.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  stalled.suspend()
  t.teardown(() => stalled.resume())
  let started = Date.now()
  const error = await rejection(target.stat(['a.txt', 'b/c.txt']))
  t.equal(error.code, 'TIMEOUT', 'mid-session stall')
  t.equal(error.target, 'slave')
  t.ok(Date.now() - started < timeoutMs * 4, `gave up within ${Date.now() - started} ms`)
  t.equal((await rejection(target.put(join(root, '..'), 'x', {mode: 0o644, mtimeMs: 0}))).code, 'TIMEOUT', 'later calls fail at once')

  const fresh = new SftpTarget(config(stalled, root, {timeoutMs}), {config: stalled.sshConfigFile})
  t.teardown(() => fresh.close())
  started = Date.now()
  t.equal((await rejection(fresh.connect())).code, 'TIMEOUT', 'connecting to a stalled server')
  t.ok(Date.now() - started < timeoutMs * 3, `gave up within ${Date.now() - started} ms`)
})

t.test('sftp: the connection dropping mid-put is CONNECTION_LOST and the old file stays', async (t) => {
  const dropping = await sshdFor(t)
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(dropping, root), {config: dropping.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  await fs.writeFile(join(root, 'page.html'), 'old')
  const local = join(tempDir('mirror-src-'), 'big')
  writeFileSync(local, randomBytes(64 * 1024 * 1024))
  const putting = rejection(target.put(local, 'page.html', {mode: 0o644, mtimeMs: Date.now()}))
  // Drop the server once the upload is under way (its temporary file exists).
  while (!(await fs.readdir(root)).some((name) => name.startsWith('.mirror-tmp-'))) await new Promise((r) => setTimeout(r, 5))
  await dropping.stop()
  const error = await putting
  t.equal(error.code, 'CONNECTION_LOST')
  t.equal(error.target, 'slave')
  t.equal(error.path, 'page.html')
  t.equal(error.retryable, true)
  t.equal(await fs.readFile(join(root, 'page.html'), 'utf8'), 'old', 'the final name still has the old content')
  t.equal((await rejection(target.stat(['page.html']))).code, 'CONNECTION_LOST', 'later calls fail at once')
})

t.test('sftp: a full disk is DISK_FULL naming the file, and the old file stays', async (t) => {
  const {base} = await newRoot(t)
  const small = join(base, 'small')
  await fs.mkdir(small)
  // A 1 MiB tmpfs needs root and mount rights (as the suite's sshd does): without them this fails, loudly.
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], {encoding: 'utf8'})
  if (mounted.status !== 0) {
    t.fail(`DISK_FULL cannot be exercised: mounting a 1 MiB tmpfs failed (${(mounted.stderr || mounted.error?.message || '').trim()}); run the tests as root`)
    return
  }
  t.teardown(() => void spawnSync('umount', [small]))
  await fs.writeFile(join(small, 'page.html'), 'old')
  const target = new SftpTarget(config(sshd, small), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const local = join(tempDir('mirror-src-'), 'big')
  writeFileSync(local, randomBytes(2 * 1024 * 1024))
  const error = await rejection(target.put(local, 'page.html', {mode: 0o644, mtimeMs: Date.now()}))
  t.equal(error.code, 'DISK_FULL')
  t.equal(error.target, 'slave')
  t.equal(error.path, 'page.html')
  t.equal(await fs.readFile(join(small, 'page.html'), 'utf8'), 'old')
  t.same(await fs.readdir(small), ['page.html'], 'the partial temporary file was removed')
})

t.test('sftp: patch rebuilds a big file from its old blocks on the slave plus the new bytes', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  t.equal(typeof target.patch, 'function', 'offered, since OpenSSH has copy-data')
  const old = randomBytes(3 * 1024 * 1024)
  await fs.mkdir(join(root, 'media'))
  await fs.writeFile(join(root, 'media/video.bin'), old)
  // The new version: a block rewritten, bytes inserted in the middle, a tail appended.
  const changed = Buffer.from(old)
  randomBytes(5000).copy(changed, 100_000)
  const next = Buffer.concat([changed.subarray(0, 2_000_000), Buffer.from('inserted bytes'), changed.subarray(2_000_000), randomBytes(70_000)])
  const local = join(tempDir('mirror-src-'), 'video.bin')
  writeFileSync(local, next)
  const delta = computeDelta(computeSignature(old), next)
  t.ok(delta.literalBytes < next.length / 10, `the delta sends ${delta.literalBytes} of ${next.length} bytes`)
  const mtimeMs = Date.UTC(2024, 3, 4, 5, 6, 7)
  await target.patch!(local, 'media/video.bin', delta.ops, {mode: 0o640, mtimeMs})
  t.ok((await fs.readFile(join(root, 'media/video.bin'))).equals(next), 'the slave has exactly the new version')
  const stat = await fs.stat(join(root, 'media/video.bin'))
  t.equal(stat.mode & 0o777, 0o640)
  t.equal(Math.floor(stat.mtimeMs / 1000) * 1000, mtimeMs)
  t.same(await fs.readdir(join(root, 'media')), ['video.bin'], 'no temporary file left')
})

t.test('sftp: put and patch say when the file is staged; with landAfter they name it only when that resolves', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const old = randomBytes(1024 * 1024)
  await fs.writeFile(join(root, 'big.bin'), old)
  const next = Buffer.concat([old.subarray(0, 500_000), Buffer.from('inserted'), old.subarray(500_000)])
  const src = tempDir('mirror-src-')
  writeFileSync(join(src, 'page.html'), '<p>new page</p>')
  writeFileSync(join(src, 'big.bin'), next)
  let land!: () => void
  const landAfter = new Promise<void>((resolve) => (land = resolve))
  const staged: string[] = []
  const options = (path: string) => ({mode: 0o644, mtimeMs: Date.now(), landAfter, onStaged: () => staged.push(path)})
  const more = Array.from({length: 40}, (_, i) => `more-${i}.html`)
  for (const name of more) writeFileSync(join(src, name), `<p>${name}</p>`)
  const openFiles = () => readdirSync('/proc/self/fd').length
  const openBefore = openFiles()
  const putting = [target.put(join(src, 'page.html'), 'page.html', options('page.html')), ...more.map((name) => target.put(join(src, name), name, options(name)))]
  const patching = target.patch!(join(src, 'big.bin'), 'big.bin', computeDelta(computeSignature(old), next).ops, options('big.bin'))
  for (let waited = 0; waited < 5000 && staged.length < 42; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(staged.sort(), ['big.bin', ...more, 'page.html'].sort(), 'all told they were staged while landAfter was pending')
  t.ok(openFiles() < openBefore + 10, `staged files keep no file of the master open (${openFiles() - openBefore} more open)`)
  t.notOk(existsSync(join(root, 'page.html')), 'the page has no final name yet')
  t.ok((await fs.readFile(join(root, 'big.bin'))).equals(old), 'the big file is still the old version')
  t.equal((await fs.readdir(root)).filter((name) => name.startsWith('.mirror-tmp-')).length, 42, 'all wait under temporary names')
  land()
  await Promise.all([...putting, patching])
  t.equal(await fs.readFile(join(root, 'page.html'), 'utf8'), '<p>new page</p>')
  t.equal(await fs.readFile(join(root, 'more-7.html'), 'utf8'), '<p>more-7.html</p>')
  t.ok((await fs.readFile(join(root, 'big.bin'))).equals(next))
  t.same((await fs.readdir(root)).sort(), ['big.bin', ...more, 'page.html'].sort(), 'no temporary file left')
  // Without landAfter: told all the same, before the file has its name.
  let namedWhenTold: boolean | undefined
  await target.put(join(src, 'page.html'), 'alone.html', {mode: 0o644, mtimeMs: Date.now(), onStaged: () => (namedWhenTold = existsSync(join(root, 'alone.html')))})
  t.equal(namedWhenTold, false, 'a put without landAfter is told it is staged before it takes its name')
})

t.test('sftp: patch never reads or writes through a symlink', async (t) => {
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const outside = tempDir('mirror-outside-')
  await fs.writeFile(join(outside, 'secret.bin'), 'secret')
  await fs.symlink(join(outside, 'secret.bin'), join(root, 'linked.bin'))
  const local = join(tempDir('mirror-src-'), 'f')
  writeFileSync(local, 'abc')
  const error = await rejection(target.patch!(local, 'linked.bin', [{kind: 'copy', from: 0, length: 6}, {kind: 'data', offset: 0, length: 3}], {mode: 0o644, mtimeMs: Date.now()}))
  t.equal(error.code, 'UNSAFE_PATH')
  t.equal(error.path, 'linked.bin')
  t.equal(await fs.readFile(join(outside, 'secret.bin'), 'utf8'), 'secret')
  t.ok((await fs.lstat(join(root, 'linked.bin'))).isSymbolicLink(), 'the link is left as it was')
  t.same((await fs.readdir(root)).sort(), ['linked.bin'], 'no temporary file left')
})

t.test('sftp: putMany lands many files at once exactly as put would, and refuses what put refuses', async (t) => {
  const {root} = await newRoot(t)
  const local = tempDir('mirror-bulk-src-')
  const outside = tempDir('mirror-bulk-outside-')
  await fs.symlink(outside, join(root, 'escape'))
  await fs.mkdir(join(root, 'taken.html'))
  await fs.mkdir(join(root, 'old'))
  await fs.writeFile(join(root, 'old/page.html'), 'old version')
  const mtimeMs = Date.UTC(2024, 0, 2, 3, 4, 5)
  const files = []
  for (let i = 0; i < 50; i++) files.push({path: `d${i % 3}/n${i}.html`, body: `page ${i}\n`.repeat(i), mode: i % 2 ? 0o640 : 0o644})
  files.push({path: 'old/page.html', body: 'new version', mode: 0o644}, {path: 'escape/evil.html', body: 'x', mode: 0o644}, {path: 'taken.html', body: 'y', mode: 0o644})
  const bulk = await Promise.all(
    files.map(async (f, i) => {
      const file = join(local, `f${i}`)
      await fs.writeFile(file, f.body)
      return {localPath: file, path: f.path, size: Buffer.byteLength(f.body), options: {mode: f.mode, mtimeMs}}
    }),
  )
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const outcome = new Map<string, string>()
  await target.putMany!(bulk, (path, error) => outcome.set(path, error ? (error as MirrorError).code : 'ok'))
  t.equal(outcome.size, files.length, 'every file is reported')
  for (const f of files.slice(0, 51)) {
    t.equal(outcome.get(f.path), 'ok')
    t.equal(await fs.readFile(join(root, f.path), 'utf8'), f.body)
    const stat = await fs.stat(join(root, f.path))
    t.equal(stat.mode & 0o777, f.mode, `${f.path}: mode`)
    t.equal(Math.floor(stat.mtimeMs / 1000) * 1000, mtimeMs, `${f.path}: mtime`)
  }
  t.equal(outcome.get('escape/evil.html'), 'UNSAFE_PATH', 'never through a symlinked directory')
  t.same(await fs.readdir(outside), [])
  t.equal(outcome.get('taken.html'), 'UNSAFE_PATH', 'a directory in the way is not replaced')
  t.same((await fs.readdir(root)).filter((n) => n.startsWith('.mirror-tmp')), [], 'no temporary directory left')
})

t.test('sftp: files through reused buffers each land with their own bytes (streams of many megabytes, large files side by side)', async (t) => {
  const {root} = await newRoot(t)
  const local = tempDir('mirror-reuse-src-')
  // Sizes from nothing to 200 KB, 6 MB in all: many full writes, each from a buffer used before.
  const bulk = await Promise.all(
    Array.from({length: 60}, async (_, i) => {
      const body = randomBytes((i * 3449) % 200_000)
      const file = join(local, `small${i}`)
      await fs.writeFile(file, body)
      return {localPath: file, path: `s/${i}.bin`, size: body.length, options: {mode: 0o644, mtimeMs: Date.now()}, body}
    }),
  )
  const large = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const body = randomBytes(1_500_000 + i * 70_001)
      const file = join(local, `large${i}`)
      await fs.writeFile(file, body)
      return {file, path: `l/${i}.bin`, body}
    }),
  )
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const failed: string[] = []
  await Promise.all([
    target.putMany!(bulk, (path, error) => error && failed.push(path)),
    ...large.map((f) => target.put(f.file, f.path, {mode: 0o644, mtimeMs: Date.now()})),
  ])
  t.same(failed, [])
  let same = 0
  for (const f of bulk) if ((await fs.readFile(join(root, f.path))).equals(f.body)) same++
  t.equal(same, bulk.length, 'every streamed file holds exactly its bytes')
  for (const f of large) t.ok((await fs.readFile(join(root, f.path))).equals(f.body), `${f.path} holds exactly its bytes`)
})

t.test('sftp: on an OpenSSH slave close by, a channel is held to a window that fits the round trip, not all of the window sshd offers; megabytes still land whole', async (t) => {
  // A far link keeps the whole window: 20 ms at 1 Gbit/s is more than OpenSSH's 2 MiB.
  t.equal(windowCapFor(0.3), 256 * 1024)
  t.ok(windowCapFor(20) > 2 * 1024 * 1024)
  const {root} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  // The cap follows the fastest answer seen; a busy CI machine can delay any one of them.
  for (let i = 0; i < 20; i++) await target.stat(['nothing-here'])
  const conn = (target as unknown as {conn: SshConnection}).conn
  const fastest = (conn as unknown as {windows: {roundTripMs: number}}).windows.roundTripMs
  t.ok(conn.sendWindowCap >= WINDOW_CAP_MIN && conn.sendWindowCap <= windowCapFor(fastest), `the cap fits the fastest answer (${fastest.toFixed(2)} ms): ${conn.sendWindowCap}`)
  t.ok(conn.sendWindowCap < 2 * 1024 * 1024, 'loopback: below the 2 MiB window sshd offers')
  for (const channel of conn.channels) {
    const window = (channel as unknown as {sftp: {outgoing: {window: number}}}).sftp.outgoing.window
    t.ok(window <= conn.sendWindowCap, `ssh2 holds the SFTP channel to the cap (window ${window})`)
  }
  // Through tar (one exec channel) and SFTP at once, each far more than the cap.
  const local = tempDir('mirror-cap-src-')
  const bulk = await Promise.all(
    Array.from({length: 40}, async (_, i) => {
      const body = randomBytes(100_000 + i * 1000)
      const file = join(local, `small${i}`)
      await fs.writeFile(file, body)
      return {localPath: file, path: `s/${i}.bin`, size: body.length, options: {mode: 0o644, mtimeMs: Date.now()}, body}
    }),
  )
  const large = randomBytes(3_000_000)
  await fs.writeFile(join(local, 'large'), large)
  const failed: string[] = []
  await Promise.all([target.putMany!(bulk, (path, error) => error && failed.push(path)), target.put(join(local, 'large'), 'l/large.bin', {mode: 0o644, mtimeMs: Date.now()})])
  t.same(failed, [])
  let same = 0
  for (const f of bulk) if ((await fs.readFile(join(root, f.path))).equals(f.body)) same++
  t.equal(same, bulk.length, 'every file through tar holds exactly its bytes')
  t.ok((await fs.readFile(join(root, 'l/large.bin'))).equals(large), 'the large file holds exactly its bytes')
})

t.test('sftp: a large file cut short on the master while it is sent never lands under its name', async (t) => {
  const {root} = await newRoot(t)
  const local = join(tempDir('mirror-shrink-src-'), 'video.mp4')
  await fs.writeFile(local, randomBytes(64 << 20))
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  let settled = false
  const putting = target.put(local, 'media/video.mp4', {mode: 0o644, mtimeMs: Date.now()}).finally(() => (settled = true))
  putting.catch(() => {})
  // Once its temporary file is on the slave, the transfer is under way: the master's copy shrinks.
  const temporary = () => fs.readdir(join(root, 'media')).then((names) => names.some((n) => n.startsWith('.mirror-tmp-')), () => false)
  while (!settled && !(await temporary())) await new Promise((resolve) => setTimeout(resolve, 1))
  t.notOk(settled, 'the 64 MB transfer was still under way')
  await fs.truncate(local, 1 << 20)
  const error = await putting.then(() => undefined, (e: unknown) => e as MirrorError)
  t.equal(error?.code, 'TRANSFER_FAILED')
  t.match(error?.message, /changed on the master/)
  t.equal(error?.path, 'media/video.mp4')
  t.notOk(existsSync(join(root, 'media/video.mp4')), 'nothing under the final name')
  t.same(await fs.readdir(join(root, 'media')), [], 'no temporary file left')
})

t.test('sftp: putMany with landAfter streams the files at once and names them only when it resolves; a rejection lands none', async (t) => {
  const {root} = await newRoot(t)
  const local = tempDir('mirror-bulk-src-')
  const bulk = await Promise.all(
    Array.from({length: 20}, async (_, i) => {
      await fs.writeFile(join(local, `p${i}`), `page ${i}`)
      return {localPath: join(local, `p${i}`), path: `news/p${i}.html`, size: `page ${i}`.length, options: {mode: 0o644, mtimeMs: Date.now()}}
    }),
  )
  const target = new SftpTarget(config(sshd, root), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const tempsUnder = async (dir: string) => (await fs.readdir(dir)).filter((n) => n.startsWith('.mirror-tmp'))

  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  const landed: string[] = []
  const putting = target.putMany!(bulk, (path, error) => !error && landed.push(path), undefined, gate)
  // The stream goes out while the gate is shut: its files wait in the staging directory.
  for (let waited = 0; waited < 10_000; waited += 20) {
    const [stage] = await tempsUnder(root)
    if (stage && (await fs.readdir(join(root, stage))).length === bulk.length) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const [stage] = await tempsUnder(root)
  t.equal((await fs.readdir(join(root, stage))).length, bulk.length, 'every file travelled before the gate opened')
  t.notOk(existsSync(join(root, 'news')), 'no file under its final name yet')
  t.same(landed, [])
  open()
  await putting
  t.equal(landed.length, bulk.length)
  t.equal(await fs.readFile(join(root, 'news/p7.html'), 'utf8'), 'page 7')
  t.same(await tempsUnder(root), [], 'the staging directory is gone')

  const {root: second} = await newRoot(t)
  const other = new SftpTarget(config(sshd, second), {config: sshd.sshConfigFile})
  t.teardown(() => other.close())
  await other.connect()
  const refused = new Error('stopped')
  const shut = Promise.reject(refused)
  shut.catch(() => {})
  const reported: string[] = []
  const thrown = await other.putMany!(bulk, (path) => reported.push(path), undefined, shut).then(
    () => undefined,
    (error: unknown) => error,
  )
  t.ok(thrown === refused || (thrown as {cause?: unknown})?.cause === refused, 'it throws what the gate was refused with')
  t.same(reported, [], 'nothing is reported')
  t.same(await fs.readdir(second), [], 'nothing landed, no staging directory left')
})

t.test('sftp: with bulk off, or without exec, putMany leaves every file to put', async (t) => {
  const {root} = await newRoot(t)
  const local = join(tempDir('mirror-bulk-src-'), 'a')
  await fs.writeFile(local, 'a')
  const target = new SftpTarget(config(sshd, root, {bulk: false}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const reported: string[] = []
  await target.putMany!([{localPath: local, path: 'a.html', size: 1, options: {mode: 0o644, mtimeMs: Date.now()}}], (path) => reported.push(path))
  t.same(reported, [])
  t.same(await fs.readdir(root), [])
})

t.test('sftp: the manifest stat asked at connect time is never used after a lock', async (t) => {
  const {root, state} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  // Another master writes a manifest after this connection asked about it, before the lock.
  await fs.mkdir(state, {recursive: true})
  await fs.writeFile(join(state, 'manifest.json'), 'x'.repeat(123))
  await target.lock({host: 'test', user: 'test', pid: process.pid, since: new Date().toISOString(), command: 'publish'})
  t.equal((await target.statState('manifest.json'))?.size, 123, 'the locked publish sees the manifest as it is now')
  await target.unlock()
})

t.test('sftp: a lock another publisher took over stays when this one unlocks, also after a manifest write under it', async (t) => {
  const {root, state} = await newRoot(t)
  const owner = {host: 'test', user: 'test', pid: process.pid, since: new Date().toISOString(), command: 'publish'}
  for (const writeManifest of [false, true]) {
    const target = new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
    await target.connect()
    await target.lock(owner)
    // Broken and taken by another publisher (--break-lock) while this one still works.
    const theirs = JSON.stringify({...owner, host: 'other', token: 'other:1:abc'})
    await fs.writeFile(join(state, 'lock'), theirs)
    if (writeManifest) {
      const written = await target.writeState('manifest.json', Buffer.from('{"format":1}'))
      t.equal(written.size, 12, 'the manifest written is the size stated')
    }
    await target.unlock()
    t.equal(await fs.readFile(join(state, 'lock'), 'utf8'), theirs, writeManifest ? 'after a manifest write' : 'without one')
    await target.close()
    await fs.rm(join(state, 'lock'))
  }
  // Still this publisher's: a manifest write, then the unlock removes it.
  const target = new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  await target.lock(owner)
  await target.writeState('manifest.json', Buffer.from('{"format":1,"x":2}'))
  await target.unlock()
  t.notOk(existsSync(join(state, 'lock')), 'its own lock is gone')
})

/** A connected target whose state holds a manifest-like file of 4,000 rows (`old`). */
async function withStateFile(t: Test): Promise<{target: SftpTarget; state: string; old: Buffer}> {
  const {root, state} = await newRoot(t)
  const target = new SftpTarget(config(sshd, root, {state}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const old = Buffer.from(Array.from({length: 4000}, (_, i) => `"row/${i}.html":["${String(i).padStart(64, '0')}",${i}]`).join(','))
  await target.writeState('manifest.json', old)
  return {target, state, old}
}

t.test('sftp: patchState rebuilds a state file from its unchanged blocks; another base size means a whole write', async (t) => {
  const {target, state, old} = await withStateFile(t)
  const next = Buffer.from(old.toString().replace('"row/2000.html":["', '"row/2000.html":["changed').replace('"row/10.html"', '"row/10b.html"'))
  const delta = computeDelta(computeSignature(old, 512), next)
  t.ok(delta.literalBytes < 4096, `only the changed blocks are sent (${delta.literalBytes} bytes)`)
  const patched = await target.patchState!('manifest.json', old.length, delta.ops, next)
  t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(next), 'rebuilt exactly')
  t.same(patched, await target.statState('manifest.json'), 'resolves to the stat the slave then reports')
  const other = Buffer.from('something else entirely')
  const whole = await target.patchState!('manifest.json', 12345, computeDelta(computeSignature(next, 512), other).ops, other)
  t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(other), 'the file was not the expected base: written whole')
  t.equal(whole.size, other.length)
  t.same((await fs.readdir(state)).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left')
})

t.test('sftp: a state write begun ahead (prepareState) replaces the file as the call that takes it says; one never taken leaves nothing behind', async (t) => {
  const {target, state, old} = await withStateFile(t)
  const temps = async () => (await fs.readdir(state)).filter((n) => n.endsWith('.tmp'))
  // Begun for a patch, taken by that patch.
  target.prepareState!('manifest.json', old.length)
  const next = Buffer.from(old.toString().replace('"row/2000.html":["', '"row/2000.html":["changed'))
  const patched = await target.patchState!('manifest.json', old.length, computeDelta(computeSignature(old, 512), next).ops, next)
  t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(next), 'the patch taking it rebuilt the file exactly')
  t.same(patched, await target.statState('manifest.json'))
  // Begun for a patch, but the write that comes is a whole one: done the usual way.
  target.prepareState!('manifest.json', next.length)
  const whole = Buffer.from('{"format":1,"whole":true}')
  await target.writeState('manifest.json', whole)
  t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(whole), 'a write with another base size replaces it whole')
  t.same(await temps(), [], 'what was begun for the patch is gone')
  // Begun and never taken: the unlock undoes it, the file stays as it was.
  await target.lock({host: 'h', user: 'u', pid: 1, since: new Date().toISOString(), command: 'mirror publish'})
  target.prepareState!('manifest.json')
  await target.unlock()
  t.same(await temps(), [], 'nothing left behind after the unlock')
  t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(whole), 'and the file is untouched')
  // ... and so does close.
  target.prepareState!('manifest.json')
  await target.close()
  t.same(await temps(), [], 'nothing left behind after close')
})

t.test('sftp: many files into many new directories at once, over several channels, all land', async (t) => {
  const {root} = await newRoot(t)
  const local = join(tempDir('mirror-bulk-src-'), 'page.html')
  await fs.writeFile(local, 'x')
  const files = Array.from({length: 2000}, (_, i) => ({localPath: local, path: `news/${i % 40}/${i % 200}/p${i}.html`, size: 1, options: {mode: 0o644, mtimeMs: Date.now()}}))
  // A generous timeout: this is about directories, and a loaded CI machine can be slow to answer.
  const target = new SftpTarget(config(sshd, root, {transfers: 64, timeoutMs: 60_000}), {config: sshd.sshConfigFile})
  t.teardown(() => target.close())
  await target.connect()
  const failed: string[] = []
  await target.putMany!(files, (path, error) => error && failed.push(`${path}: ${(error as Error).message}`))
  t.same(failed.slice(0, 3), [], 'no file refused for a directory another request was making')
  const landed = (await fs.readdir(join(root, 'news'), {recursive: true, withFileTypes: true})).filter((e) => e.isFile()).length
  t.equal(landed, 2000)
})
