// How much each channel of one connection to an OpenSSH slave may have sent and not yet seen
// consumed: ssh2's send window per channel, held below what sshd offers. Bytes beyond what the
// link and the slave take only wait in queues (sshd's buffer, which it grows by copying it
// whole; the link's own), and every SFTP request sent after them waits as long: a directory,
// an open, a rename of the same publish behind seconds of a tar stream on a slow link.
//
// The cap starts small (WINDOW_CAP_MIN) and follows what the slave takes: twice the bytes it took
// per round trip (the best of the last samples), shared by the channels that were sending. While
// the link has room that doubles each sample (a channel sends its whole cap every round trip),
// up to what fills 1 Gbit/s at the measured round trip; a slower link, or a slave whose tar is
// short of CPU, brings it down. Started at that ceiling instead, a first publish's streams put
// 2 MiB each in the queue of a 100 Mbit/s link before the first sample, and the link then
// idled for up to a second while the slaves' tar caught up (lab: 8.6-10.1 s against 8.6-8.8 s).
//
// It works on ssh2's own count, `channel.outgoing.window` (internal, stable through ssh2 1.x):
// lowered to hold a channel back, with what could not be taken at once taken from the channel's
// next window adjust. When the cap rises, what was held back is given with the next adjust,
// never at once: ssh2 sends what it had to hold for want of window only on an adjust, and a
// window raised in between would let a new request go out ahead of it, out of order.

/**
 * Bytes a channel may have unconsumed, at least: enough to keep the slave's sftp-server or tar
 * busy on a LAN or loopback, and well above the three packets (96 KiB) OpenSSH waits to have
 * consumed before it opens the window again.
 */
export const WINDOW_CAP_MIN = 256 * 1024
/** The rate a cap must sustain at the measured round trip before anything is measured: 1 Gbit/s, in bytes per ms. */
const WINDOW_CAP_RATE_BYTES_PER_MS = 125_000
/** A sample of what the slave takes lasts this long at least, and two round trips. */
const SAMPLE_MIN_MS = 20
/** The cap follows the best of this many samples: one slow moment does not shrink it. */
const SAMPLES_KEPT = 8

/** The send window that fills a link with this round trip at 1 Gbit/s, at least WINDOW_CAP_MIN. */
export function windowCapFor(roundTripMs: number): number {
  return Math.max(WINDOW_CAP_MIN, Math.ceil(roundTripMs * WINDOW_CAP_RATE_BYTES_PER_MS))
}

/** ssh2's account of what a channel may still send. */
interface Outgoing {
  window: number
}

interface Held {
  /** The window the server gave when the channel opened. */
  given: number
  /** The cap this channel is held to now. */
  cap: number
  /** Bytes still to be held back from the channel's next window adjusts. */
  owed: number
  /** Bytes held back that the channel may send again, given with its next window adjust. */
  credit: number
  /** When the slave last took bytes from it (performance.now()). */
  lastTaken: number
}

export class SendWindows {
  private readonly held = new Map<Outgoing, Held>()
  private capBytes = Number.POSITIVE_INFINITY
  private roundTripMs = Number.POSITIVE_INFINITY
  private ceiling = Number.POSITIVE_INFINITY
  /** Bytes the slave took in the current sample, since when, and when it last took any. */
  private taken = 0
  private sampleStart = 0
  private lastTaken = 0
  /** Bytes per ms the slave took, by sample. */
  private readonly rates: number[] = []

  /** The cap each channel is held to; infinite until a round trip is measured. */
  get cap(): number {
    return this.capBytes
  }

  /**
   * Holds a channel (ssh2's Channel or SFTP object, with its `outgoing`) to the cap, from now
   * until it closes.
   */
  add(channel: {outgoing: Outgoing; once(event: 'close', listener: () => void): void}): void {
    const outgoing = channel.outgoing
    const held: Held = {given: outgoing.window, cap: Number.POSITIVE_INFINITY, owed: 0, credit: 0, lastTaken: Number.NEGATIVE_INFINITY}
    this.held.set(outgoing, held)
    this.watch(outgoing, held)
    this.hold(outgoing, held, this.capBytes)
    channel.once('close', () => this.held.delete(outgoing))
  }

  /** An answer took `ms`: the fastest so far is the round trip, which sets the ceiling of the cap. */
  roundTrip(ms: number): void {
    if (ms >= this.roundTripMs) return
    this.roundTripMs = ms
    this.ceiling = windowCapFor(ms)
    this.setCap(Math.min(Number.isFinite(this.capBytes) ? this.capBytes : WINDOW_CAP_MIN, this.ceiling))
  }

  /**
   * ssh2's window counter, watched: a rise is the server's window adjust (only ssh2 raises it; this
   * class only lowers it), bytes the slave took, and pays what is owed.
   */
  private watch(outgoing: Outgoing, held: Held): void {
    let value = outgoing.window
    Object.defineProperty(outgoing, 'window', {
      configurable: true,
      enumerable: true,
      get: () => value,
      set: (next: number) => {
        const rise = next - value
        if (rise > 0) {
          const pay = Math.min(held.owed, rise)
          held.owed -= pay
          value = next - pay + held.credit
          held.credit = 0
          // After the count is set: a new cap may change it again from here.
          this.took(held, rise)
          return
        }
        value = next
      },
    })
  }

  private took(held: Held, bytes: number): void {
    const now = performance.now()
    const length = Math.max(SAMPLE_MIN_MS, 2 * this.roundTripMs)
    held.lastTaken = now
    // A sample starts at an adjust, whose bytes went before it. After a pause (nothing was being
    // sent) one starts afresh: idle time is not the link's.
    if (this.sampleStart === 0 || now - this.lastTaken > length) {
      this.sampleStart = this.lastTaken = now
      this.taken = 0
      return
    }
    this.lastTaken = now
    this.taken += bytes
    if (now - this.sampleStart < length || !Number.isFinite(this.roundTripMs)) return
    this.rates.push(this.taken / (now - this.sampleStart))
    if (this.rates.length > SAMPLES_KEPT) this.rates.shift()
    this.sampleStart = now
    this.taken = 0
    // The channels that were sending: those the slave took from within the last two samples.
    let sending = 0
    for (const other of this.held.values()) if (now - other.lastTaken <= 2 * length) sending++
    const best = Math.max(...this.rates)
    this.setCap(Math.min(this.ceiling, Math.max(WINDOW_CAP_MIN, Math.ceil((2 * best * this.roundTripMs) / Math.max(1, sending)))))
  }

  private setCap(cap: number): void {
    if (cap === this.capBytes) return
    this.capBytes = cap
    for (const [outgoing, held] of this.held) this.hold(outgoing, held, cap)
  }

  /** Moves a channel from its cap to `cap`: lowers its window now (owing what it lacks), or credits what it may send again. */
  private hold(outgoing: Outgoing, held: Held, cap: number): void {
    let change = Math.min(held.given, held.cap) - Math.min(held.given, cap)
    held.cap = cap
    if (change > 0) {
      const uncredited = Math.min(held.credit, change)
      held.credit -= uncredited
      change -= uncredited
      const now = Math.min(change, Math.max(0, outgoing.window))
      outgoing.window -= now
      held.owed += change - now
    } else if (change < 0) {
      const forgiven = Math.min(held.owed, -change)
      held.owed -= forgiven
      held.credit += -change - forgiven
    }
  }
}
