// An emulated network link between the benchmarked tools and the slaves, in user space (this
// kernel has no netem qdisc): one TCP relay per slave on 127.0.0.1 that delays each direction by
// half the round-trip time and paces it at a fixed rate through a bounded bottleneck buffer, all
// in one child process. It is not netem: no loss, no jitter, no reordering, and no TCP dynamics of
// its own (slow start, congestion control) beyond what the two loopback legs do.

import {fork, type ChildProcess} from 'node:child_process'
import {createServer, Socket, type Server} from 'node:net'
import {performance} from 'node:perf_hooks'
import {dirname, join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

import type {WireCounter} from './measure.js'

export interface LinkSpec {
  /** Round-trip time added between a tool and a slave, ms (each direction gets half). */
  rttMs: number
  /** Rate of each direction, per slave, megabit/s (10^6 bit/s). */
  mbit: number
}

/** Parses `--link RTT_MS,MBIT` (e.g. `20,100`). */
export function parseLink(text: string): LinkSpec {
  const match = /^\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*$/.exec(text)
  const rttMs = Number(match?.[1])
  const mbit = Number(match?.[2])
  if (!match || !(rttMs >= 0 && rttMs <= 10_000) || !(mbit > 0 && mbit <= 100_000)) throw new Error('--link takes RTT_MS,MBIT, e.g. --link 20,100 (RTT 0–10000 ms, rate above 0 Mbit/s)')
  return {rttMs, mbit}
}

/** "20 ms RTT, 100 Mbit/s per slave (user-space relay)", for the report. */
export function linkText(spec: LinkSpec | undefined): string {
  return spec ? `${spec.rttMs} ms RTT, ${spec.mbit} Mbit/s per slave (user-space relay)` : 'none (tools reach the slaves directly over loopback)'
}

/**
 * Bytes a direction may hold before its readers are paused: the bandwidth-delay product (what
 * the link itself holds in flight) plus 256 KiB of bottleneck queue. Beyond that the relay stops
 * reading, so a sender meets back-pressure as it would at a full router queue, not an endless buffer.
 * The kernel's socket buffers of the loopback legs come on top (a few MB on loopback here), much
 * as a sender's own socket buffer does on a real host.
 */
export function queueLimit(spec: LinkSpec): number {
  return Math.round((spec.mbit * 1e6) / 8 * (spec.rttMs / 1000)) + 256 * 1024
}

/** The largest piece scheduled as one: a 64 KiB read leaves as four pieces, each at its own time. */
const PIECE = 16 * 1024
/**
 * A timer also delivers what is due within this much (ms): libuv's timers count whole
 * milliseconds, so a timer set for 9.9 ms fires after about 9.3. With a millisecond of slack a
 * piece leaves at most 1 ms early and, on an idle machine, well under 1 ms late.
 */
const SLACK_MS = 1

// ---------------------------------------------------------------------------------------------
// The relay (runs in the child process).

/** One direction of one slave's link, shared by all of that slave's connections. */
interface Direction {
  /** When the link finishes serializing what it has been given (performance.now() ms). */
  busyUntil: number
  /** Bytes read but not yet handed to the kernel on the far side (scheduled, or in a socket's write buffer). */
  pending: number
  peakPending: number
  /** Bytes read from this direction's senders. */
  bytes: number
  paused: boolean
  /** The sockets this direction reads from (paused together when it is full). */
  sources: Set<Socket>
}

interface Piece {
  due: number
  data?: Buffer
  /** After the data: end the far side (a FIN), or destroy it (the near side failed). */
  close?: 'end' | 'destroy'
}

/** One direction of one connection: its pieces in order, delivered by one timer. */
interface Flow {
  dir: Direction
  to: Socket
  /** When a real sender could first send on this flow (the emulated TCP handshake). */
  opensAt: number
  queue: Piece[]
  head: number
  timer?: NodeJS.Timeout
}

interface Relay {
  server: Server
  port: number
  up: Direction
  down: Direction
  open: number
}

function direction(): Direction {
  return {busyUntil: 0, pending: 0, peakPending: 0, bytes: 0, paused: false, sources: new Set()}
}

function startRelay(spec: LinkSpec, targetPort: number, onIdle: () => void): Promise<Relay> {
  const half = spec.rttMs / 2
  const bitsPerMs = spec.mbit * 1000
  const limit = queueLimit(spec)
  const relay: Relay = {server: createServer({allowHalfOpen: true, noDelay: true}), port: 0, up: direction(), down: direction(), open: 0}

  const account = (dir: Direction, delta: number) => {
    dir.pending += delta
    dir.peakPending = Math.max(dir.peakPending, dir.pending)
    if (!dir.paused && dir.pending > limit) {
      dir.paused = true
      for (const s of dir.sources) s.pause()
    } else if (dir.paused && dir.pending <= limit / 2) {
      // Resume at half the limit, not just under it, so the readers are not toggled on every piece.
      dir.paused = false
      for (const s of dir.sources) s.resume()
    }
  }

  const pump = (flow: Flow) => {
    flow.timer = undefined
    const now = performance.now()
    while (flow.head < flow.queue.length && flow.queue[flow.head].due <= now + SLACK_MS) {
      const piece = flow.queue[flow.head++]
      if (piece.data) {
        const n = piece.data.length
        if (flow.to.destroyed) account(flow.dir, -n)
        else flow.to.write(piece.data, () => account(flow.dir, -n))
      }
      if (piece.close === 'end' && !flow.to.destroyed) flow.to.end()
      if (piece.close === 'destroy') flow.to.destroy()
    }
    if (flow.head === flow.queue.length) {
      flow.queue = []
      flow.head = 0
    } else {
      if (flow.head > 1024) {
        flow.queue = flow.queue.slice(flow.head)
        flow.head = 0
      }
      flow.timer = setTimeout(() => pump(flow), Math.max(0, flow.queue[flow.head].due - now))
    }
  }

  const schedule = (flow: Flow, piece: Piece) => {
    flow.queue.push(piece)
    if (!flow.timer && flow.head === flow.queue.length - 1) flow.timer = setTimeout(() => pump(flow), Math.max(0, piece.due - performance.now()))
  }

  /**
   * Serialization then propagation: a piece enters the bottleneck when the ones before it (of
   * every connection to this slave) have left it, and arrives half an RTT after it left. Bytes
   * written during the emulated handshake enter when a real sender could have sent them.
   */
  const send = (flow: Flow, data: Buffer) => {
    const {dir} = flow
    dir.bytes += data.length
    const start = Math.max(performance.now(), flow.opensAt)
    for (let at = 0; at < data.length; at += PIECE) {
      const piece = data.subarray(at, at + PIECE)
      dir.busyUntil = Math.max(dir.busyUntil, start) + (piece.length * 8) / bitsPerMs
      account(dir, piece.length)
      schedule(flow, {due: dir.busyUntil + half, data: piece})
    }
  }

  const close = (flow: Flow, how: 'end' | 'destroy') => {
    schedule(flow, {due: Math.max(flow.dir.busyUntil, performance.now(), flow.opensAt) + half, close: how})
  }

  const wire = (from: Socket, flow: Flow) => {
    flow.dir.sources.add(from)
    if (flow.dir.paused) from.pause()
    let ended = false
    from.on('data', (chunk: Buffer) => send(flow, chunk))
    from.on('end', () => {
      ended = true
      close(flow, 'end')
    })
    from.on('error', () => {})
    from.on('close', () => {
      flow.dir.sources.delete(from)
      if (!ended) close(flow, 'destroy')
    })
  }

  relay.server.on('connection', (client: Socket) => {
    const accepted = performance.now()
    relay.open++
    const slave = new Socket({allowHalfOpen: true})
    slave.setNoDelay(true)
    // A real TCP handshake costs a round trip before the client may send (its first bytes
    // arrive 1.5 RTT after connect()), and the server accepts only when the last ACK arrives
    // (its first bytes reach the client 2 RTT after connect()). Here both legs connect at once.
    const upFlow: Flow = {dir: relay.up, to: slave, opensAt: accepted + spec.rttMs, queue: [], head: 0}
    const downFlow: Flow = {dir: relay.down, to: client, opensAt: accepted + 3 * half, queue: [], head: 0}
    wire(client, upFlow)
    wire(slave, downFlow)
    let closed = 0
    const onClose = () => {
      if (++closed < 2) return
      relay.open--
      if (relay.open === 0) onIdle()
    }
    client.once('close', onClose)
    slave.once('close', onClose)
    slave.connect(targetPort, '127.0.0.1')
  })

  return new Promise((resolve, reject) => {
    relay.server.once('error', reject)
    // Loopback only: the relays are never reachable from another host.
    relay.server.listen(0, '127.0.0.1', () => {
      relay.port = (relay.server.address() as {port: number}).port
      resolve(relay)
    })
  })
}

type Question = {type: 'bytes'; waitMs: number} | {type: 'stats'}
type Request = Question & {id: number}

export interface RelayStats {
  /** Per slave: bytes read from the tools (up) and from the slave (down), and the most each direction held at once. */
  slaves: Array<{port: number; up: number; down: number; peakUp: number; peakDown: number; open: number}>
  limit: number
  /** CPU time the relay process has used (user + system), ms: the relay must not be the bottleneck. */
  cpuMs: number
}

/** The child process: starts one relay per target port, reports their ports, then answers counts until its parent goes. */
async function serve(spec: LinkSpec, targets: number[]): Promise<void> {
  const waiters: Array<() => void> = []
  const relays: Relay[] = []
  const idle = () => relays.every((r) => r.open === 0)
  const onIdle = () => {
    if (!idle()) return
    for (const w of waiters.splice(0)) w()
  }
  for (const port of targets) relays.push(await startRelay(spec, port, onIdle))
  const stats = (): RelayStats => ({
    limit: queueLimit(spec),
    cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    slaves: relays.map((r) => ({port: r.port, up: r.up.bytes, down: r.down.bytes, peakUp: r.up.peakPending, peakDown: r.down.peakPending, open: r.open})),
  })
  process.on('message', (message: Request) => {
    if (message.type === 'stats') {
      process.send!({id: message.id, stats: stats()})
      return
    }
    // Counted once every connection has closed: a tool that has exited may still have its last
    // bytes (the SSH disconnect, the FIN) in flight through the relay.
    let answered = false
    const answer = () => {
      if (answered) return
      answered = true
      clearTimeout(timer)
      process.send!({id: message.id, stats: stats(), idle: idle()})
    }
    const timer = setTimeout(answer, message.waitMs)
    if (idle()) answer()
    else waiters.push(answer)
  })
  // The parent stops this process by pid; should the parent die first, the IPC channel closes.
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
  process.send!({ready: relays.map((r) => r.port)})
}

// ---------------------------------------------------------------------------------------------
// The parent's handle on the child.

export interface Link {
  spec: LinkSpec
  /** The relay's port for each target port, in the order given. */
  ports: number[]
  pid: number
  /** Bytes through every relay so far, both directions (read once the relays are idle, or after `waitMs`). */
  bytes(waitMs?: number): Promise<number>
  stats(): Promise<RelayStats>
  /** Stops the relay process by pid; resolves when it has exited. Safe to call twice. */
  stop(): Promise<void>
}

const self = fileURLToPath(import.meta.url)

/** Kill switches of the relay processes still running, for an exit without cleanup. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) kill(child, 'SIGKILL')
})

/** Signals the relay process by its pid, unless it is known to have exited. */
function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(child.pid!, signal)
  } catch {
    // Already gone.
  }
}

/** Starts the relay process in front of the given 127.0.0.1 ports; resolves when every relay listens. */
export function startLink(spec: LinkSpec, targets: number[]): Promise<Link> {
  // This file again, under the same loader (tsx) as the benchmark.
  const child = fork(self, ['--serve', JSON.stringify({spec, targets})], {cwd: join(dirname(self), '..'), stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  running.add(child)
  let nextId = 0
  const pendingReplies = new Map<number, (reply: {stats: RelayStats}) => void>()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  void exited.then(() => running.delete(child))
  const request = <T>(message: Question): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      pendingReplies.set(id, resolve as (reply: {stats: RelayStats}) => void)
      child.send({...message, id}, (error) => error && reject(error))
    })
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        kill(child, 'SIGTERM')
        const timer = setTimeout(() => kill(child, 'SIGKILL'), 3000)
        await exited
        clearTimeout(timer)
      }
    })())
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop()
      reject(new Error('the link relay did not start within 20 s'))
    }, 20_000)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the link relay exited (${code ?? signal}) before it listened`))
    })
    child.on('message', (message: {ready?: number[]; id?: number; stats?: RelayStats}) => {
      if (message.ready) {
        clearTimeout(timer)
        resolve({
          spec,
          ports: message.ready,
          pid: child.pid!,
          bytes: async (waitMs = 5000) => {
            const reply = await request<{stats: RelayStats}>({type: 'bytes', waitMs})
            return reply.stats.slaves.reduce((n, s) => n + s.up + s.down, 0)
          },
          stats: async () => (await request<{stats: RelayStats}>({type: 'stats'})).stats,
          stop,
        })
        return
      }
      const reply = message.id === undefined ? undefined : pendingReplies.get(message.id)
      if (reply) {
        pendingReplies.delete(message.id!)
        reply(message as {stats: RelayStats})
      }
    })
  })
}

/** Bytes on the wire as the relays count them: every byte a tool and a slave exchanged. */
export function relayWireCounter(link: () => Link | undefined): WireCounter {
  return {
    method:
      'counted at the link relays (every TCP payload byte between the tools and the 4 sshd slaves, both directions, SSH framing included, TCP/IP headers not; the loopback counters would count each byte twice, once per leg of the relay)',
    exact: true,
    read: async () => link()?.bytes(),
  }
}

if (process.argv[2] === '--serve' && process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const {spec, targets} = JSON.parse(process.argv[3]) as {spec: LinkSpec; targets: number[]}
  serve(spec, targets).catch((error) => {
    process.stderr.write(`link relay: ${(error as Error).stack ?? error}\n`)
    process.exit(1)
  })
}
