// Behind a link with a long round trip (the benchmark's relay, 150 ms, in front of a real sshd),
// a file of several chunks, and a large file sent as a delta, land in as few round trips as
// SFTP allows: the attributes and the close travel right behind the last data request instead
// of waiting for its answer. A manifest write begun ahead (prepareState, while the deletes go
// out) takes two round trips once its first answers are in. What lands is checked byte for byte.

import {randomBytes} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {computeDelta, computeSignature} from '../../src/sync/delta.js'
import {linkedTarget} from '../helpers/link-target.js'

delete process.env.SSH_AUTH_SOCK

const RTT_MS = 150

t.test('behind a 150 ms link a file of three chunks lands in three round trips, a delta in four, a manifest begun ahead in two', async (t) => {
  const {target, dir, root, state} = await linkedTarget(t, {rttMs: RTT_MS, mbit: 100})

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

  // The manifest's replacement begun while the deletes go out (prepareState): once its first
  // answers are in, the write itself takes two round trips (the writes and the stat, the close
  // and the rename), not three.
  const manifest = Buffer.from(Array.from({length: 4000}, (_, i) => `"row/${i}.html":["${String(i).padStart(64, '0')}",${i}]`).join(','))
  await target.writeState('manifest.json', manifest)
  const nextManifest = Buffer.from(manifest.toString().replace('"row/2000.html":["', '"row/2000.html":["changed'))
  const stateTimes: number[] = []
  for (let i = 0; i < 2; i++) {
    const base = i === 0 ? manifest : nextManifest
    const next = i === 0 ? nextManifest : manifest
    target.prepareState!('manifest.json', base.length)
    await new Promise((resolve) => setTimeout(resolve, 2 * RTT_MS))
    const started = performance.now()
    await target.patchState!('manifest.json', base.length, computeDelta(computeSignature(base, 512), next).ops, next)
    stateTimes.push(performance.now() - started)
    t.ok((await fs.readFile(join(state, 'manifest.json'))).equals(next), 'the manifest is the new one, byte for byte')
  }
  const bestState = Math.min(...stateTimes)
  t.ok(bestState < 2.5 * RTT_MS, `the best of two manifest writes begun ahead took ${bestState.toFixed(0)} ms: two round trips of ${RTT_MS} ms, not three`)
})
