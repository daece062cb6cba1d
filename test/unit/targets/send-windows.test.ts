// The send-window cap's arithmetic, on channels that count their window as ssh2's do: sending
// lowers it, the server's window adjust raises it. The real thing runs in the sftp-target
// integration tests, against sshd.

import t from 'tap'

import {SendWindows, WINDOW_CAP_MIN, windowCapFor} from '../../../src/targets/ssh/send-windows.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A channel as ssh2 keeps one: `outgoing.window` is what it may still send. */
function channel(given = 2 * MiB) {
  let onClose = () => {}
  const c = {
    outgoing: {window: given},
    /** Sent and not yet taken by the slave. */
    inFlight: 0,
    once: (_event: 'close', listener: () => void) => void (onClose = listener),
    /** Sends what the window allows of `bytes`; returns what went. */
    send(bytes: number): number {
      const sent = Math.min(bytes, c.outgoing.window)
      c.outgoing.window -= sent
      c.inFlight += sent
      return sent
    },
    /** The slave took `bytes` (at most what is in flight): sshd's window adjust, as ssh2 applies it. */
    adjust(bytes: number) {
      const taken = Math.min(bytes, c.inFlight)
      c.inFlight -= taken
      c.outgoing.window += taken
    },
    close: () => onClose(),
  }
  return c
}

/** Performance.now() under the test's control. */
function clock(t: {teardown(fn: () => void): void}) {
  let now = 1000
  const real = performance.now
  performance.now = () => now
  t.teardown(() => void (performance.now = real))
  return {advance: (ms: number) => void (now += ms)}
}

t.test('before a round trip is measured nothing is held; then the cap starts small and grows with what the slave takes, up to 1 Gbit/s at that round trip', async (t) => {
  const time = clock(t)
  const windows = new SendWindows()
  const c = channel()
  windows.add(c)
  t.equal(windows.cap, Number.POSITIVE_INFINITY)
  t.equal(c.outgoing.window, 2 * MiB, 'the whole window sshd gave')
  windows.roundTrip(20)
  t.equal(windows.cap, WINDOW_CAP_MIN, 'the smallest cap first')
  t.equal(c.outgoing.window, WINDOW_CAP_MIN)
  windows.roundTrip(25)
  t.equal(windows.cap, WINDOW_CAP_MIN, 'a slower answer is not the round trip')
  // The slave takes all it is sent, a window per round trip: the cap doubles, up to its ceiling.
  const caps: number[] = []
  for (let i = 0; i < 16; i++) {
    time.advance(20)
    c.send(100 * MiB)
    c.adjust(c.inFlight)
    if (caps.at(-1) !== windows.cap) caps.push(windows.cap)
  }
  t.ok(caps.length <= 8 && caps.every((cap, i) => i === 0 || cap > caps[i - 1]), `growing each sample: ${caps.join(', ')}`)
  t.equal(caps.at(-1), windowCapFor(20), 'up to the ceiling')
  t.equal(windowCapFor(20), 2_500_000)
  windows.roundTrip(0.3)
  t.equal(windows.cap, WINDOW_CAP_MIN, 'loopback: the ceiling is the smallest cap')
})

/** One round trip: each channel sends what its window allows, then the slave takes up to `take` of it. */
function round(time: {advance(ms: number): void}, channels: Array<ReturnType<typeof channel>>, take: number, ms = 20) {
  for (const c of channels) c.send(100 * MiB)
  time.advance(ms)
  for (const c of channels) c.adjust(take)
}

t.test('a cap lowered while the window is in use is taken from the next adjusts; it rises again with the link', async (t) => {
  const time = clock(t)
  const windows = new SendWindows()
  const c = channel()
  windows.add(c)
  windows.roundTrip(20)
  for (let i = 0; i < 16; i++) round(time, [c], 100 * MiB)
  t.equal(windows.cap, windowCapFor(20), 'a fast slave: up to the ceiling')
  t.equal(c.outgoing.window, 2 * MiB, "under the 2.5 MB ceiling: sshd's own 2 MiB")
  // All 2 MiB in flight; the slave now takes 25 KB per round trip.
  c.send(2 * MiB)
  for (let i = 0; i < 30 && windows.cap > WINDOW_CAP_MIN; i++) {
    time.advance(20)
    c.adjust(25_000)
  }
  t.equal(windows.cap, WINDOW_CAP_MIN, 'twice what it takes per round trip is less than the smallest cap')
  // Once what was in flight is taken, what it may send and what is in flight stay within the cap.
  while (c.inFlight > 0) {
    time.advance(20)
    c.adjust(25_000)
  }
  t.equal(c.outgoing.window, WINDOW_CAP_MIN, 'the window is the cap')
  for (let i = 0; i < 10; i++) {
    time.advance(20)
    c.send(10 * MiB)
    t.ok(c.inFlight + c.outgoing.window <= WINDOW_CAP_MIN, `held to the cap as it sends (${c.inFlight} in flight)`)
    c.adjust(25_000)
  }
  // The link speeds up: the slave takes all that was sent each time, and the cap grows back to its ceiling.
  for (let i = 0; i < 20; i++) round(time, [c], 100 * MiB)
  t.equal(windows.cap, windowCapFor(20), 'back to the ceiling')
  t.equal(c.outgoing.window, 2 * MiB, "sshd's whole window again, nothing more")
})

/** Two channels of one connection, its round trip 20 ms. */
function twoChannels(t: {teardown(fn: () => void): void}) {
  const time = clock(t)
  const windows = new SendWindows()
  const a = channel()
  const b = channel()
  windows.add(a)
  windows.add(b)
  windows.roundTrip(20)
  return {time, windows, a, b}
}

t.test('the cap is shared by the channels that were sending; a pause does not count as a slow link', async (t) => {
  const {time, windows, a, b} = twoChannels(t)
  // The slave takes 250 KB of each per 20 ms: 2 * 25 KB/ms * 20 ms / 2 channels = 500 KB each.
  for (let i = 0; i < 6; i++) round(time, [a, b], 250_000)
  t.equal(windows.cap, 500_000)
  // Ten seconds of nothing, then the same pace: the cap stays.
  time.advance(10_000)
  for (let i = 0; i < 4; i++) round(time, [a, b], 250_000)
  t.equal(windows.cap, 500_000)
  // One channel alone may hold what the two held together: the link's pace is the best one seen.
  time.advance(10_000)
  for (let i = 0; i < 4; i++) round(time, [a], 250_000)
  t.equal(windows.cap, 1_000_000)
  a.close()
  b.close()
})

t.test("a channel's window rises only with its own adjust: ssh2 sends what it held back for want of window only then", async (t) => {
  const {time, windows, a, b} = twoChannels(t)
  // Slow: both held to the smallest cap, and b has sent all it may.
  for (let i = 0; i < 4; i++) round(time, [a, b], 25_000)
  t.equal(windows.cap, WINDOW_CAP_MIN)
  b.send(10 * MiB)
  t.equal(b.outgoing.window, 0, 'b waits for window')
  // a's link speeds up: the cap rises on a's adjusts, b's window stays as it was meanwhile.
  for (let i = 0; i < 6; i++) {
    time.advance(20)
    a.send(10 * MiB)
    a.adjust(a.inFlight)
    t.equal(b.outgoing.window, 0, `b's window unchanged (cap ${windows.cap})`)
  }
  t.ok(windows.cap > WINDOW_CAP_MIN, 'the cap rose')
  // b's next adjust brings what it took and what it may now send beyond that.
  b.adjust(10_000)
  t.ok(b.outgoing.window > 10_000, `b may send more than it was given back (${b.outgoing.window})`)
  t.ok(b.outgoing.window + b.inFlight <= windows.cap, 'and no more than the cap')
})
