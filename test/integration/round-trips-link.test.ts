// Round trips mirror does not wait for, against a real sshd. Behind a link with a long round trip
// (the benchmark's relay, 150 ms), a file of several chunks, and a large file sent as a delta,
// land in as few round trips as SFTP allows: the attributes and the close travel right behind
// the last data request instead of waiting for its answer (what lands is checked byte for
// byte). And an SFTP session's first requests go out with ssh2's request for the server's
// limits (ssh2-loader.ts).

import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import t from 'tap'
import type {SFTPWrapper, Stats} from 'ssh2'

import {startLink} from '../../bench/link.js'
import {computeDelta, computeSignature} from '../../src/sync/delta.js'
import {SftpTarget} from '../../src/targets/ssh/sftp-target.js'
import {sshdFor} from '../helpers/sshd.js'

delete process.env.SSH_AUTH_SOCK

const RTT_MS = 150

t.test('behind a 150 ms link a file of three chunks lands in three round trips, a delta in four', async (t) => {
  const sshd = await sshdFor(t)
  const link = await startLink({rttMs: RTT_MS, mbit: 100}, [sshd.port])
  t.teardown(() => link.stop())
  const dir = mkdtempSync(join(tmpdir(), 'mirror-rtt-'))
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const root = join(dir, 'www')
  await fs.mkdir(root)
  const sshConfig = join(dir, 'ssh_config')
  writeFileSync(
    sshConfig,
    [
      `Host ${sshd.alias}`,
      '  HostName 127.0.0.1',
      `  Port ${link.ports[0]}`,
      `  HostKeyAlias [127.0.0.1]:${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${sshd.identityFile}`,
      `  UserKnownHostsFile ${sshd.knownHostsFile}`,
      '  IdentitiesOnly yes',
      '',
    ].join('\n'),
  )
  const target = new SftpTarget(
    {name: 'far', url: `sftp://${sshd.alias}${root}`, location: {kind: 'sftp', host: sshd.alias, root}, transfers: 32, hostKeys: 'strict', timeoutMs: 30_000},
    {config: sshConfig},
  )
  t.teardown(() => target.close())
  await target.connect()

  // Three 64 KiB chunks (within the smallest send window, which a longer file would wait for):
  // 16 ms at 100 Mbit/s. Open, the data with the attributes and the close, rename: three round
  // trips; four when the close waits for the last write's answer.
  const body = randomBytes(3 * 64 * 1024)
  const local = join(dir, 'photo.jpg')
  await fs.writeFile(local, body)
  const transferMs = (body.length * 8) / 100_000
  const times: number[] = []
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    await target.put(local, `photo-${i}.jpg`, {mode: 0o644, mtimeMs: Date.now()})
    times.push(performance.now() - started)
    t.ok((await fs.readFile(join(root, `photo-${i}.jpg`))).equals(body), `photo-${i}.jpg arrived whole`)
  }
  const best = Math.min(...times)
  t.ok(best < 3.5 * RTT_MS + transferMs, `the best of three puts took ${best.toFixed(0)} ms: three round trips of ${RTT_MS} ms and the data, not four`)

  // A delta: the old file's check, both opens, the copies and writes with the attributes and the
  // close, rename: four round trips; five when the close waits.
  const old = randomBytes(2 << 20)
  const changed = Buffer.concat([old.subarray(0, 1 << 20), randomBytes(4096), old.subarray(1 << 20)])
  const changedFile = join(dir, 'video.mp4')
  await fs.writeFile(changedFile, changed)
  const delta = computeDelta(computeSignature(old), changed)
  const patchTimes: number[] = []
  for (let i = 0; i < 2; i++) {
    await fs.writeFile(join(root, `video-${i}.mp4`), old)
    const started = performance.now()
    await target.patch!(changedFile, `video-${i}.mp4`, delta.ops, {mode: 0o644, mtimeMs: Date.now()})
    patchTimes.push(performance.now() - started)
    t.ok((await fs.readFile(join(root, `video-${i}.mp4`))).equals(changed), `video-${i}.mp4 is the new version, byte for byte`)
  }
  const bestPatch = Math.min(...patchTimes)
  t.ok(bestPatch < 4.5 * RTT_MS + 50, `the best of two deltas took ${bestPatch.toFixed(0)} ms: four round trips of ${RTT_MS} ms, not five`)
})

t.test('an SFTP session takes its first requests along with the request for the server\'s limits, not a round trip after it', async (t) => {
  const sshd = await sshdFor(t)
  const {default: ssh2} = await import('../../src/targets/ssh/ssh2-loader.js')
  const client = new ssh2.Client()
  t.teardown(() => client.end())
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject)
    client.connect({host: '127.0.0.1', port: sshd.port, username: sshd.user, privateKey: readFileSync(sshd.identityFile)})
  })
  const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((error, session) => (error ? reject(error) : resolve(session))))
  const limits = (sftp as unknown as {_requests: Record<string, {extended?: string}>})._requests
  t.ok(
    Object.values(limits).some((request) => request.extended === 'limits@openssh.com'),
    'the session is handed over while the limits request is still unanswered',
  )
  // Asked at once, answered in order behind the limits.
  const stats = await new Promise<Stats>((resolve, reject) => sftp.stat('/', (error, s) => (error ? reject(error) : resolve(s))))
  t.ok(stats.isDirectory(), 'a request made at once is answered')
  t.equal(
    Object.values(limits).some((request) => request.extended === 'limits@openssh.com'),
    false,
    'and by then the limits are in',
  )
})
