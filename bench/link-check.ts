// A self-test of the emulated link (bench/link.ts), run by hand: `node --import tsx
// bench/link-check.ts [RTT_MS,MBIT]` (default 20,100). It starts the relay process in front of
// local echo, sink and source servers on 127.0.0.1 and checks that a round trip takes the RTT,
// that 20 MB take 20 MB / rate each way (also shared by two connections, and 4 slaves at once
// each at the full rate), that bytes arrive in order, that the relays count them, and that the
// bottleneck buffer stays bounded. Timings suffer on a loaded machine. Exit 1 on a miss.

import {createHash, randomBytes} from 'node:crypto'
import {createServer, Socket, type Server} from 'node:net'
import {performance} from 'node:perf_hooks'

import {parseLink, queueLimit, startLink} from './link.js'

const spec = parseLink(process.argv[2] ?? '20,100')
const SIZE = 20_000_000

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as {port: number}).port)))
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket()
    socket.setNoDelay(true)
    socket.once('error', reject)
    socket.connect(port, '127.0.0.1', () => resolve(socket))
  })
}

/** The echo server answers every byte; the sink hashes what it gets and reports it when the sender ends; the source sends its payload to whoever connects. */
const echo = createServer((s) => s.pipe(s))
const sinkDone: Array<(r: {bytes: number; sha: string; at: number}) => void> = []
const sink = createServer((s) => {
  const hash = createHash('sha1')
  let bytes = 0
  s.on('data', (d: Buffer) => {
    hash.update(d)
    bytes += d.length
  })
  s.on('end', () => {
    sinkDone.shift()?.({bytes, sha: hash.digest('hex'), at: performance.now()})
    s.end()
  })
})
const payload = randomBytes(SIZE)
const source = createServer((s) => s.end(payload))

const results: Array<{name: string; ok: boolean; text: string}> = []
const check = (name: string, ok: boolean, text: string) => {
  results.push({name, ok, text})
  process.stdout.write(`${ok ? 'ok  ' : 'MISS'} ${name}: ${text}\n`)
}
const within = (value: number, expected: number, tolerance: number) => Math.abs(value - expected) <= expected * tolerance

const [echoPort, sinkPort, sourcePort] = await Promise.all([listen(echo), listen(sink), listen(source)])
// Relays 4–6 lead to the sink too: with the second, 4 slaves' worth of links.
const link = await startLink(spec, [echoPort, sinkPort, sourcePort, sinkPort, sinkPort, sinkPort])
const [echoRelay, sinkRelay, sourceRelay, ...moreSinks] = link.ports
const transferS = (SIZE * 8) / (spec.mbit * 1e6)
process.stdout.write(`link ${spec.rttMs} ms RTT, ${spec.mbit} Mbit/s; relay pid ${link.pid}, ports ${link.ports.join(', ')}; queue limit ${(queueLimit(spec) / 1024).toFixed(0)} KiB\n`)

try {
  // Connection setup: the emulated TCP handshake's round trip, then the first byte's (2 RTT).
  {
    const times: number[] = []
    for (let i = 0; i < 5; i++) {
      const started = performance.now()
      const socket = await connect(echoRelay)
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve())
        socket.write('x')
      })
      times.push(performance.now() - started)
      socket.destroy()
    }
    const median = times.sort((a, b) => a - b)[2]
    check('connect + first round trip', median >= 2 * spec.rttMs - 2 && median <= 2 * spec.rttMs + 4, `median ${median.toFixed(1)} ms over 5 (expected 2 RTT = ${2 * spec.rttMs}; min ${times[0].toFixed(1)}, max ${times[4].toFixed(1)})`)
  }

  // Round trips on an open connection (the first, which waits for the handshake, not counted).
  {
    const socket = await connect(echoRelay)
    const times: number[] = []
    for (let i = 0; i < 11; i++) {
      const sent = performance.now()
      await new Promise<void>((resolve) => {
        socket.once('data', () => resolve())
        socket.write('x')
      })
      times.push(performance.now() - sent)
    }
    socket.destroy()
    const rest = times.slice(1).sort((a, b) => a - b)
    const median = rest[Math.floor(rest.length / 2)]
    check('round trip', median >= spec.rttMs - 2 && median <= spec.rttMs + 3, `median ${median.toFixed(1)} ms over 10 (expected ${spec.rttMs}; min ${rest[0].toFixed(1)}, max ${rest.at(-1)!.toFixed(1)})`)
  }

  // 20 MB up: from connect() until the sink has the last byte.
  {
    const done = new Promise<{bytes: number; sha: string; at: number}>((resolve) => sinkDone.push(resolve))
    const started = performance.now()
    const socket = await connect(sinkRelay)
    socket.end(payload)
    const got = await done
    const s = (got.at - started) / 1000
    const expected = transferS + (1.5 * spec.rttMs) / 1000
    check('20 MB up', within(s, expected, 0.08), `${s.toFixed(3)} s (expected ${expected.toFixed(3)}: ${transferS.toFixed(3)} s at the rate + 1.5 RTT)`)
    check('20 MB up, in order', got.bytes === SIZE && got.sha === createHash('sha1').update(payload).digest('hex'), `${got.bytes} bytes, sha1 ${got.bytes === SIZE ? 'matches' : 'differs'}`)
  }

  // 20 MB down: from connect() until the client has the last byte.
  {
    const started = performance.now()
    const socket = await connect(sourceRelay)
    const hash = createHash('sha1')
    let bytes = 0
    socket.on('data', (d: Buffer) => {
      hash.update(d)
      bytes += d.length
    })
    await new Promise((resolve) => socket.once('end', resolve))
    socket.end()
    const s = (performance.now() - started) / 1000
    const expected = transferS + (2 * spec.rttMs) / 1000
    check('20 MB down', within(s, expected, 0.08), `${s.toFixed(3)} s (expected ${expected.toFixed(3)}: ${transferS.toFixed(3)} s at the rate + 2 RTT)`)
    check('20 MB down, in order', bytes === SIZE && hash.digest('hex') === createHash('sha1').update(payload).digest('hex'), `${bytes} bytes`)
  }

  // Two connections to one slave share its rate: 2 × 10 MB take as long as 20 MB. Meanwhile a
  // third connection's round trips show the queueing delay of a loaded bottleneck.
  {
    const half = payload.subarray(0, SIZE / 2)
    const done = [0, 1].map(() => new Promise<{bytes: number; sha: string; at: number}>((resolve) => sinkDone.push(resolve)))
    const started = performance.now()
    const sockets = await Promise.all([connect(sinkRelay), connect(sinkRelay)])
    for (const socket of sockets) socket.end(half)
    const got = await Promise.all(done)
    const s = (Math.max(...got.map((g) => g.at)) - started) / 1000
    const expected = transferS + (1.5 * spec.rttMs) / 1000
    check('2 × 10 MB up, one slave', within(s, expected, 0.08) && got.every((g) => g.bytes === SIZE / 2), `${s.toFixed(3)} s (expected ${expected.toFixed(3)}: the rate is per slave, not per connection)`)
  }

  // Four slaves at once, 20 MB each: every link has its own rate; the relay process carries them all.
  {
    const cpuBefore = (await link.stats()).cpuMs
    const done = [0, 1, 2, 3].map(() => new Promise<{bytes: number; sha: string; at: number}>((resolve) => sinkDone.push(resolve)))
    const started = performance.now()
    const sockets = await Promise.all([sinkRelay, ...moreSinks].map((port) => connect(port)))
    for (const socket of sockets) socket.end(payload)
    const got = await Promise.all(done)
    const s = (Math.max(...got.map((g) => g.at)) - started) / 1000
    const expected = transferS + (1.5 * spec.rttMs) / 1000
    const cpu = (await link.stats()).cpuMs - cpuBefore
    check('4 slaves × 20 MB up at once', within(s, expected, 0.1) && got.every((g) => g.bytes === SIZE), `${s.toFixed(3)} s (expected ${expected.toFixed(3)}); the relay process used ${(cpu / 1000).toFixed(2)} s of CPU for these 80 MB`)
  }

  const stats = await link.stats()
  const peak = Math.max(...stats.slaves.flatMap((s) => [s.peakUp, s.peakDown]))
  // A read is at most 64 KiB: the limit is checked after each.
  check('bounded buffer', peak <= stats.limit + 64 * 1024, `at most ${(peak / 1024).toFixed(0)} KiB queued in a direction (limit ${(stats.limit / 1024).toFixed(0)} KiB)`)

  // Connects 5 × 1 byte each way, round trips 11 × 1 byte each way, 20 MB up, 20 MB down, 2 × 10 MB up, 4 × 20 MB up.
  const counted = await link.bytes()
  const expected = 10 + 22 + 7 * SIZE
  check('bytes counted', counted === expected, `${counted} (expected ${expected})`)
} finally {
  await link.stop()
  for (const server of [echo, sink, source]) server.close()
}
const misses = results.filter((r) => !r.ok)
process.stdout.write(misses.length === 0 ? 'link check: all ok\n' : `link check: ${misses.length} missed\n`)
process.exit(misses.length === 0 ? 0 : 1)
