// Behind a slow link (20 ms, 100 Mbit/s: the benchmark's relay, in front of a real sshd) the
// send windows follow what the slave takes, and a tar stream and large files over SFTP sent at
// once still arrive byte for byte while the caps move under them (how they move: the unit tests
// of send-windows.ts).

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import type {SshConnection} from '../../src/targets/ssh/connection.js'
import {WINDOW_CAP_MIN, windowCapFor} from '../../src/targets/ssh/send-windows.js'
import {linkedTarget} from '../helpers/link-target.js'

delete process.env.SSH_AUTH_SOCK

t.test('behind a 100 Mbit/s link the window cap stays below the 1 Gbit/s ceiling; a stream and large files beside it arrive whole', async (t) => {
  const {target, dir, root} = await linkedTarget(t, {rttMs: 20, mbit: 100})

  const local = join(dir, 'src')
  await fs.mkdir(local)
  const small = await Promise.all(
    Array.from({length: 400}, async (_, i) => {
      const body = randomBytes(10_000 + (i % 7) * 1000)
      await fs.writeFile(join(local, `s${i}`), body)
      return {localPath: join(local, `s${i}`), path: `pages/d${i % 9}/s${i}.html`, size: body.length, options: {mode: 0o644, mtimeMs: Date.now()}, body}
    }),
  )
  // Many at once: their write requests wait in ssh2 for window while the caps move.
  const large = await Promise.all(
    Array.from({length: 16}, async (_, i) => {
      const body = randomBytes(700_000 + i * 9_999)
      await fs.writeFile(join(local, `l${i}`), body)
      return {file: join(local, `l${i}`), path: `media/l${i}.bin`, body}
    }),
  )
  const failed: string[] = []
  await Promise.all([
    target.putMany!(small, (path, error) => error && failed.push(path)),
    ...large.map((f) => target.put(f.file, f.path, {mode: 0o644, mtimeMs: Date.now()})),
  ])
  t.same(failed, [])

  const conn = (target as unknown as {conn: SshConnection}).conn
  const roundTrip = (conn as unknown as {windows: {roundTripMs: number}}).windows.roundTripMs
  t.ok(roundTrip >= 15, `the round trip is the link's (${roundTrip.toFixed(1)} ms)`)
  t.ok(conn.sendWindowCap >= WINDOW_CAP_MIN && conn.sendWindowCap < windowCapFor(roundTrip), `the cap is what 100 Mbit/s needs, not the 1 Gbit/s ceiling (${conn.sendWindowCap} bytes, not ${windowCapFor(roundTrip)})`)

  let same = 0
  for (const f of small) if ((await fs.readFile(join(root, f.path))).equals(f.body)) same++
  t.equal(same, small.length, 'every file of the stream holds exactly its bytes')
  let whole = 0
  for (const f of large) if ((await fs.readFile(join(root, f.path))).equals(f.body)) whole++
  t.equal(whole, large.length, 'every large file holds exactly its bytes')
})
