// Bytes sent in bursts reach the slave as they were read. The memory of what ssh2 sends (its
// packets, the SFTP write requests) is reused once written (src/targets/ssh/packet-pool.ts):
// reused a moment too early, a packet still queued in the socket would go out overwritten, and
// the slave's sshd would drop the connection on the broken packet.

import {createHash} from 'node:crypto'

import t from 'tap'

import {faultProject} from '../helpers/faults.js'
import {readTree} from '../helpers/site.js'

/** Text that does not repeat (base64 of a seeded generator's bytes): no two packets alike. */
function noise(bytes: number, seed: number): string {
  const out = Buffer.alloc(bytes)
  let x = seed
  for (let i = 0; i < bytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out.toString('base64')
}

const digest = (tree: Record<string, string>) => Object.fromEntries(Object.entries(tree).map(([path, text]) => [path, createHash('sha256').update(text).digest('hex')]))

t.test('a first publish of many files in one stream and large files over SFTP arrives byte for byte on every slave', async (t) => {
  const files: Record<string, string> = {}
  // Enough small files for the tar stream (written 256 KiB at a time, eight packets at once).
  for (let i = 0; i < 700; i++) files[`pages/d${i % 20}/p${i}.html`] = noise(15_000 + (i % 13) * 1000, i + 1)
  // Large files go over SFTP in 64 KiB write requests, many in flight.
  for (let i = 0; i < 3; i++) files[`media/clip-${i}.bin`] = noise(3_000_000, 10_000 + i)
  const p = await faultProject(t, {slaves: ['one', 'two'], files})
  const r = await p.json(['publish'], 120_000)
  t.equal(r.code, 0, r.stderr)
  const expected = digest(files)
  for (const name of ['one', 'two']) {
    t.same(p.outcome(r.out, name).error, undefined, `${name}: no error`)
    t.same(digest(await readTree(p.slaves[name].root)), expected, `${name}: every file, every byte`)
  }
})
