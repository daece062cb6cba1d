// The manifest: what the master last published on one target (the "base" of the three-way
// plan). It lives in the target's state on the slave and carries its own checksum and
// generation, so a damaged or hand-edited copy is detected instead of trusted.

import {createHash} from 'node:crypto'

import {MirrorError} from '../errors.js'
import {digestLines} from '../util/digest.js'
import {diffBuffers, type Delta, type DeltaOp} from './delta.js'
import {checkRelativePath} from '../targets/paths.js'
import type {StateBytes} from '../targets/target.js'

export interface ManifestRecord {
  hash: string
  size: number
  /** The mtime the file was given on the slave, whole seconds in milliseconds. */
  mtimeMs: number
  mode: number
}

export interface Manifest {
  target: string
  /** Increases by one with every write; lets a master notice another master's publish. */
  generation: number
  publishedAt: string
  publisher: string
  /**
   * False while a publish is under way (the manifest is rewritten as files land). A publish
   * that finds it false knows the last one was interrupted, and lists the slave in full to
   * adopt what landed and clean up temporary files.
   */
  complete: boolean
  files: Map<string, ManifestRecord>
}

const FORMAT = 1

type Row = [hash: string, size: number, mtimeMs: number, mode: number]

export function emptyManifest(target: string): Manifest {
  return {target, generation: 0, publishedAt: '', publisher: '', complete: true, files: new Map()}
}

/** The "files" of a manifest as stored: its rows' bytes (between the braces) and their checksum. */
export interface ManifestBody {
  files: Map<string, ManifestRecord>
  rows: Buffer
  checksum: string
}

/**
 * `alloc` gives the buffer of the exact size the bytes are written into (a new one by default).
 * `body`, when given, holds the rows already serialized (see ManifestBodies).
 */
export function serializeManifest(manifest: Manifest, alloc: (size: number) => Buffer = Buffer.allocUnsafe, body?: ManifestBody): Buffer {
  // Row by row into one buffer of the exact size: neither an object with a property per file,
  // nor the manifest as one string (100,000 files are 13 MB, and the targets of a big publish
  // finish together). A first pass measures the rows and checksums them, and keeps their text
  // in pieces up to KEPT_TEXT_MAX_ROWS rows.
  const rows = body ? undefined : measureRows(manifest.files)
  const head = headText(manifest, body?.checksum ?? rows!.checksum)
  // Written by hand so the checksum covers exactly the bytes of "files" as stored.
  const opening = `${head.slice(0, -1)},"files":{`
  const closing = '}}\n'
  const data = alloc(Buffer.byteLength(opening) + (body?.rows.length ?? rows!.bytes) + closing.length)
  let at = data.write(opening)
  at += body ? body.rows.copy(data, at) : rows!.writeTo(data, at)
  data.write(closing, at)
  return data
}

/** A manifest's fields but its files, as JSON, in the order they are stored. */
function headText(manifest: Omit<Manifest, 'files'>, checksum: string): string {
  const {target, generation, publishedAt, publisher, complete} = manifest
  return JSON.stringify({format: FORMAT, target, generation, publishedAt, publisher, complete, checksum})
}

/** The manifest body of `files`, serialized once. */
export function manifestBody(files: Map<string, ManifestRecord>): ManifestBody {
  const measured = measureRows(files)
  const rows = Buffer.allocUnsafe(measured.bytes)
  measured.writeTo(rows, 0)
  return {files, rows, checksum: measured.checksum}
}

/** A manifest file's row as stored: `"path":[hash,size,mtime,mode]`, after a comma but for the first. */
const rowText = (first: boolean, path: string, r: ManifestRecord) => `${first ? '' : ','}${JSON.stringify(path)}:[${JSON.stringify(r.hash)},${r.size},${r.mtimeMs},${r.mode}]`

/** Characters of row text gathered before they are checksummed (and kept) as one piece. */
const ROWS_PIECE = 64 * 1024

/**
 * Up to this many rows, their text (a few MB) is kept from the measuring pass for the writing;
 * beyond, it is made again as it is written rather than held beside the bytes (100,000 files
 * are 13 MB of each).
 */
const KEPT_TEXT_MAX_ROWS = 50_000

/** The rows of `files` in path order: their total bytes, their checksum, and how to write them at an offset (returns the bytes written). */
function measureRows(files: Map<string, ManifestRecord>) {
  const paths = [...files.keys()].sort()
  const kept = paths.length <= KEPT_TEXT_MAX_ROWS ? ([] as string[]) : undefined
  const measured = measure({paths, files}, kept)
  const writeTo = (buffer: Buffer, offset: number) => {
    let at = offset
    if (kept) {
      for (const text of kept) at += buffer.write(text, at)
      return at - offset
    }
    for (let i = 0; i < paths.length; i++) at += buffer.write(rowText(i === 0, paths[i], files.get(paths[i])!), at)
    return at - offset
  }
  return {...measured, writeTo}
}

/**
 * The bytes and the checksum of rows in path order, as they are stored between the braces of
 * "files"; their text goes into `kept` too, in pieces, when given.
 */
function measure(rows: Iterable<readonly [string, ManifestRecord]> | {paths: readonly string[]; files: Map<string, ManifestRecord>}, kept?: string[]): {bytes: number; checksum: string} {
  const checksum = createHash('sha256').update('{')
  let bytes = 0
  let piece = ''
  const done = () => {
    checksum.update(piece)
    bytes += Buffer.byteLength(piece)
    kept?.push(piece)
    piece = ''
  }
  let first = true
  const add = (path: string, record: ManifestRecord) => {
    piece += rowText(first, path, record)
    first = false
    if (piece.length >= ROWS_PIECE) done()
  }
  // Sorted paths and their map, looped over plainly: a generator of [path, record] pairs cost
  // a third more on the way to every publish's final manifest (code run once, mostly uncompiled).
  if ('paths' in rows) for (let i = 0; i < rows.paths.length; i++) add(rows.paths[i], rows.files.get(rows.paths[i])!)
  else for (const [path, record] of rows) add(path, record)
  done()
  return {bytes, checksum: checksum.update('}').digest('hex')}
}

/** A path's new record, or null when it leaves the manifest. */
export type RowChange = readonly [path: string, record: ManifestRecord | null]

/**
 * The rows of a manifest (the bytes between the braces of "files") made from the rows of the
 * previous one and what changed since: runs of unchanged rows are copied, only changed rows are
 * made. Also the delta from the previous rows to the new ones, known here without a search.
 * `previous` must be the rows of a manifest whose files are exactly `basePaths` (sorted), and
 * `changes` sorted by path. Undefined when a row is not found where it should be (the caller
 * then makes every row).
 *
 * A change of a few hundred files in a 20,000-file manifest made every row again (70-90 ms,
 * code run once per publish) and then searched the old bytes for what could be copied (25 ms).
 */
export function spliceRows(previous: Buffer, basePaths: readonly string[], changes: readonly RowChange[]): {rows: Buffer; delta: Delta} | undefined {
  const pieces: Buffer[] = []
  const ops: DeltaOp[] = []
  let at = 0
  let literal = ''
  let literalBytes = 0
  let empty = true
  const flushLiteral = () => {
    if (!literal) return
    const bytes = Buffer.from(literal)
    const last = ops[ops.length - 1]
    if (last?.kind === 'data' && last.offset + last.length === at) last.length += bytes.length
    else ops.push({kind: 'data', offset: at, length: bytes.length})
    pieces.push(bytes)
    at += bytes.length
    literalBytes += bytes.length
    literal = ''
  }
  const separate = () => {
    if (!empty) literal += ','
    empty = false
  }
  // Rows of the previous bytes from `from` (a row's start) up to the row starting at `to`.
  const copyRows = (from: number, to: number) => {
    const end = to < previous.length ? to - 1 : to
    if (end <= from) return
    separate()
    flushLiteral()
    ops.push({kind: 'copy', from, length: end - from})
    pieces.push(previous.subarray(from, end))
    at += end - from
  }
  let cursor = 0
  // A row starts after the opening brace or a comma; a quote inside a path is escaped.
  const findRow = (path: string): {start: number; end: number} | undefined => {
    const needle = Buffer.from(`${JSON.stringify(path)}:[`)
    let start = previous.indexOf(needle, cursor)
    while (start > 0 && previous[start - 1] !== 0x2c) start = previous.indexOf(needle, start + 1)
    if (start < 0) return undefined
    const close = previous.indexOf(0x5d, start + needle.length)
    return close < 0 ? undefined : {start, end: close + 1}
  }
  const after = (end: number) => (previous[end] === 0x2c ? end + 1 : end)
  let next = 0
  for (const [path, record] of changes) {
    // The first base path not before this one: the change's own row, or the row it goes before.
    while (next < basePaths.length && basePaths[next] < path) next++
    const there = next < basePaths.length && basePaths[next] === path
    if (there) {
      const row = findRow(path)
      if (!row) return undefined
      copyRows(cursor, row.start)
      if (record) {
        separate()
        literal += rowText(true, path, record)
      }
      cursor = after(row.end)
      next++
      continue
    }
    if (!record) continue
    if (next < basePaths.length) {
      const row = findRow(basePaths[next])
      if (!row) return undefined
      copyRows(cursor, row.start)
      cursor = row.start
    } else {
      copyRows(cursor, previous.length)
      cursor = previous.length
    }
    separate()
    literal += rowText(true, path, record)
  }
  copyRows(cursor, previous.length)
  flushLiteral()
  return {rows: Buffer.concat(pieces, at), delta: {ops, literalBytes}}
}

/** A manifest's files as rows in path order (as `sort()` orders them), made anew at each call. */
export type ManifestRows = () => Iterable<readonly [path: string, record: ManifestRecord]>

/** A manifest as written: its files as a map, or as rows made on demand (see manifestStream). */
export type WrittenManifest = Omit<Manifest, 'files'> & {files: Map<string, ManifestRecord> | ManifestRows}

/** Bytes of a streamed manifest gathered before they are handed on: one SFTP write's worth. */
const STREAM_CHUNK = 64 * 1024

/**
 * A manifest's bytes made on demand from its rows, the same bytes `serializeManifest` gives for
 * a map of them: a big publish's final manifest is written without a map of its files or a
 * buffer of all its bytes (at 100,000 files, 10 MB and 13 MB at the publish's peak). The rows
 * are gone through once here, for the size and the checksum, and once more per `chunks()`.
 */
export function manifestStream(head: Omit<Manifest, 'files'>, rows: ManifestRows): StateBytes {
  const {bytes, checksum} = measure(rows())
  const opening = Buffer.from(`${headText(head, checksum).slice(0, -1)},"files":{`)
  const closing = Buffer.from('}}\n')
  return {
    size: opening.length + bytes + closing.length,
    *chunks() {
      let chunk = Buffer.allocUnsafe(STREAM_CHUNK)
      let at = opening.copy(chunk, 0)
      let first = true
      for (const [path, record] of rows()) {
        const text = rowText(first, path, record)
        first = false
        const length = Buffer.byteLength(text)
        if (at + length > chunk.length) {
          yield chunk.subarray(0, at)
          // A chunk is handed on, not reused: the write that sends it may still hold it.
          chunk = Buffer.allocUnsafe(Math.max(STREAM_CHUNK, length))
          at = 0
        }
        at += chunk.write(text, at)
      }
      yield chunk.subarray(0, at)
      yield closing
    },
  }
}

/** The fingerprint (see `fingerprint`) of rows already in path order. */
export function rowsFingerprint(rows: Iterable<readonly [string, {hash: string; mode: number}]>): string {
  const lines = new FingerprintLines()
  for (const [path, c] of rows) lines.add(path, c.hash, c.mode)
  return lines.digest()
}

const OPEN = Buffer.from('{')
const CLOSE = Buffer.from('}')

/**
 * The final manifest bodies of one publish. Targets that end with the same files (all cache
 * mirrors of a segment, as a rule) share one: its files map is built, serialized and
 * checksummed once instead of once per target. Keyed by the base's files map (targets whose
 * bases are equal share it, see ParsedFiles) and a digest of the changes recorded over it.
 */
export class ManifestBodies {
  private readonly byBase = new WeakMap<Map<string, ManifestRecord>, Map<string, ManifestBody>>()
  /** The last few deltas between "files" parts (bytes), newest last. */
  private readonly diffs: Array<{from: Buffer; to: Buffer; delta: Delta}> = []

  /**
   * The body of `base` with `changes` (journal lines, in path order) applied; `build` makes its
   * files when none is known yet. With `previous` (the bytes of a manifest whose files are
   * exactly `base`, and the same changes as rows), its rows are spliced from those bytes rather
   * than all made again, and the delta between the two is known for `diff`.
   */
  get(base: Map<string, ManifestRecord>, changes: Iterable<string>, build: () => Map<string, ManifestRecord>, previous?: () => {manifest: Buffer; rows: readonly RowChange[]}): ManifestBody {
    const key = digestLines(changes)
    let bodies = this.byBase.get(base)
    if (!bodies) this.byBase.set(base, (bodies = new Map()))
    let body = bodies.get(key)
    if (!body) bodies.set(key, (body = (previous && this.spliced(base, previous(), build)) ?? manifestBody(build())))
    return body
  }

  private readonly sortedPaths = new WeakMap<Map<string, ManifestRecord>, string[]>()

  private spliced(base: Map<string, ManifestRecord>, previous: {manifest: Buffer; rows: readonly RowChange[]}, build: () => Map<string, ManifestRecord>): ManifestBody | undefined {
    const part = filesPart(previous.manifest)
    if (!part) return undefined
    // The "files" object, braces included (as `diff` cuts it), and its rows.
    const from = previous.manifest.subarray(part.start, part.end)
    if (from.length < 2 || from[0] !== 0x7b || from[from.length - 1] !== 0x7d) return undefined
    let paths = this.sortedPaths.get(base)
    if (!paths) this.sortedPaths.set(base, (paths = [...base.keys()].sort()))
    const made = spliceRows(from.subarray(1, -1), paths, previous.rows)
    if (!made) return undefined
    const to = Buffer.concat([OPEN, made.rows, CLOSE])
    const ops: DeltaOp[] = [{kind: 'copy', from: 0, length: 1}]
    for (const op of made.delta.ops) ops.push(op.kind === 'copy' ? {...op, from: op.from + 1} : {...op, offset: op.offset + 1})
    ops.push({kind: 'copy', from: from.length - 1, length: 1})
    this.remember({from, to, delta: {ops, literalBytes: made.delta.literalBytes}})
    return {files: build(), rows: made.rows, checksum: createHash('sha256').update(to).digest('hex')}
  }

  private remember(diff: {from: Buffer; to: Buffer; delta: Delta}): void {
    // A publish has a few distinct manifests at most; older ones are not asked for again.
    if (this.diffs.push(diff) > 4) this.diffs.shift()
  }

  /**
   * A delta that rebuilds manifest `data` from `previous` (as diffBuffers gives one). Targets whose
   * manifests differ only in their heads (name, publisher, time) share the delta of their files,
   * the costly part, made once; each gets it moved to where the files are in its own bytes.
   */
  diff(previous: Buffer, data: Buffer, blockSize: number): Delta {
    const old = filesPart(previous)
    const next = filesPart(data)
    if (!old || !next) return diffBuffers(previous, data, blockSize)
    const from = previous.subarray(old.start, old.end)
    const to = data.subarray(next.start, next.end)
    let made = this.diffs.find((d) => d.from.equals(from) && d.to.equals(to))
    if (!made) this.remember((made = {from, to, delta: diffBuffers(from, to, blockSize)}))
    // The head and the end are sent as they are: a few hundred bytes.
    const ops: DeltaOp[] = [{kind: 'data', offset: 0, length: next.start}]
    for (const op of made.delta.ops) ops.push(op.kind === 'copy' ? {...op, from: op.from + old.start} : {...op, offset: op.offset + next.start})
    ops.push({kind: 'data', offset: next.end, length: data.length - next.end})
    return {ops, literalBytes: made.delta.literalBytes + next.start + data.length - next.end}
  }
}

/**
 * Files maps already parsed in this publish, by the checksum of their "files" text. Targets that
 * got the same files (the usual case: all cache mirrors of a segment) then share one read-only
 * map instead of parsing 20,000 rows each. Callers that change a manifest's files copy them first.
 */
export type ParsedFiles = Map<string, Map<string, ManifestRecord>>

/** Parses a manifest; throws MANIFEST_CORRUPT when it is not one or its checksum is wrong. */
export function parseManifest(data: Buffer, target: string, parsedFiles?: ParsedFiles): Manifest {
  const corrupt = (why: string) =>
    new MirrorError('MANIFEST_CORRUPT', `the manifest on the slave is damaged (${why}): nothing will be deleted on its word`, {
      target,
      suggestion: 'The next publish rebuilds it from what is really on the slave (as with --verify).',
    })
  // Bytes, not text: the "files" part is checksummed as it is on disk, and a manifest whose
  // files were parsed already in this publish is never decoded whole.
  const part = filesPart(data)
  const body = part ? data.subarray(part.start, part.end) : Buffer.alloc(0)
  const checksum = bodyChecksum(body, parsedFiles)
  const known = parsedFiles?.get(checksum)
  if (known && part && data[part.key - 1] === 0x2c) {
    // Only the head is parsed; it must vouch for exactly these files.
    const head = parseHead(`${data.toString('utf8', 0, part.key - 1)}}`)
    if (head?.format === FORMAT && head.checksum === checksum) return manifestOf(head, known, target)
  }
  let parsed: Head & {files?: Record<string, Row>}
  try {
    parsed = JSON.parse(data.toString('utf8'))
  } catch {
    throw corrupt('not JSON')
  }
  if (parsed.format !== FORMAT) throw corrupt(`unknown format ${String(parsed.format)}`)
  if (!parsed.files || parsed.checksum !== checksum) throw corrupt('checksum mismatch')
  const files = new Map<string, ManifestRecord>()
  // for-in, not Object.entries: no [path, row] array made per file (a third of the parse).
  const rows = parsed.files
  for (const path in rows) {
    const row = rows[path]
    if (!Array.isArray(row) || row.length !== 4) throw corrupt(`bad record for ${JSON.stringify(path)}`)
    // A path mirror could never have published (absolute, "..") means the manifest was forged.
    if (!isSafeRelativePath(path)) throw corrupt(`unsafe path ${JSON.stringify(path)}`)
    files.set(path, {hash: row[0], size: row[1], mtimeMs: row[2], mode: row[3]})
  }
  parsedFiles?.set(checksum, files)
  return manifestOf(parsed, files, target)
}

/**
 * Where a manifest's "files" are in its bytes: the key, and the object from its `{` to its `}`
 * (end exclusive). The first `"files":` is the key: the head's strings come before it, and a
 * quote inside them is escaped.
 */
function filesPart(data: Buffer): {key: number; start: number; end: number} | undefined {
  const key = data.indexOf('"files":')
  const end = data.lastIndexOf('}')
  return key < 0 || end < key ? undefined : {key, start: key + 8, end}
}

/** "files" parts already checksummed in a publish (by its ParsedFiles): the same bytes again are compared, not hashed. */
const checksummed = new WeakMap<ParsedFiles, Array<{body: Buffer; checksum: string}>>()

function bodyChecksum(body: Buffer, parsedFiles: ParsedFiles | undefined): string {
  const seen = parsedFiles ? checksummed.get(parsedFiles) : undefined
  const same = seen?.find((s) => s.body.equals(body))
  if (same) return same.checksum
  const checksum = createHash('sha256').update(body).digest('hex')
  if (parsedFiles) checksummed.set(parsedFiles, [...(seen ?? []), {body, checksum}])
  return checksum
}

interface Head {
  format?: number
  target?: string
  generation?: number
  publishedAt?: string
  publisher?: string
  complete?: boolean
  checksum?: string
}

function parseHead(text: string): Head | undefined {
  try {
    return JSON.parse(text) as Head
  } catch {
    return undefined
  }
}

function manifestOf(head: Head, files: Map<string, ManifestRecord>, target: string): Manifest {
  return {
    target: head.target ?? target,
    generation: head.generation ?? 0,
    publishedAt: head.publishedAt ?? '',
    publisher: head.publisher ?? '',
    complete: head.complete !== false,
    files,
  }
}

/**
 * A digest of what a manifest (or a set of routed entries) holds: path, content and mode. When
 * the source's entries for a target have the fingerprint of the manifest the master last wrote
 * there, and that manifest is still the slave's, there is nothing to do: a noop that neither
 * parses the manifest nor plans. Takes the paths and a lookup of their content: a manifest's
 * map, or routed entries filtered by protect, without copying either.
 */
export function fingerprint(paths: Iterable<string>, contentOf: (path: string) => {hash: string; mode: number}): string {
  // Rows sort as their paths do (a path ends at the NUL, which sorts first), so the rows are
  // hashed in path order without building them all first.
  const sorted = [...paths].sort()
  const lines = new FingerprintLines()
  for (let i = 0; i < sorted.length; i++) {
    const c = contentOf(sorted[i])
    lines.add(sorted[i], c.hash, c.mode)
  }
  return lines.digest()
}

/**
 * The SHA-256 of lines `path NUL hash NUL mode LF`, written into one buffer and hashed 64 KB
 * at a time. A string per line, joined into pieces, took 45 ms for 20,000 rows on the way to
 * every changed publish's transfers (the code runs once, mostly before V8 compiles it).
 */
class FingerprintLines {
  private readonly hash = createHash('sha256')
  private buffer = Buffer.allocUnsafe(FINGERPRINT_CHUNK)
  private at = 0

  add(path: string, hash: string, mode: number): void {
    // Room for the longest the line can be: three bytes per UTF-16 unit of the path.
    const most = path.length * 3 + hash.length * 3 + 24
    if (this.at + most > this.buffer.length) {
      this.hash.update(this.buffer.subarray(0, this.at))
      this.at = 0
      if (most > this.buffer.length) this.buffer = Buffer.allocUnsafe(most)
    }
    const buffer = this.buffer
    let at = this.at
    at += buffer.write(path, at)
    buffer[at++] = 0
    at += buffer.write(hash, at)
    buffer[at++] = 0
    at += buffer.write(String(mode), at)
    buffer[at++] = 10
    this.at = at
  }

  digest(): string {
    return this.hash.update(this.buffer.subarray(0, this.at)).digest('hex')
  }
}

const FINGERPRINT_CHUNK = 64 * 1024

/**
 * The journal: while a long publish runs, the manifest is written once as incomplete and what
 * lands afterwards is appended here, one line per path, instead of rewriting the whole manifest
 * again and again (20,000 files make a 2 MB manifest). Its first line names the generation of
 * the manifest it continues; a journal for any other generation is ignored.
 */
export const JOURNAL = 'manifest.journal'

export function journalHeader(generation: number): Buffer {
  return Buffer.from(`${JSON.stringify({format: FORMAT, journalOf: generation})}\n`)
}

/** One line per path: its record, or the path alone when it was removed from the target. */
export function journalLine(path: string, record: ManifestRecord | null): string {
  return `${JSON.stringify(record ? [path, record.hash, record.size, record.mtimeMs, record.mode] : [path])}\n`
}

/**
 * Applies a journal to the incomplete manifest it continues, in place; returns how many lines
 * applied. Stops at the first line that is not whole and valid: an interrupted append leaves
 * only its last line cut short, and whatever it did not record is found by the listing.
 */
export function applyJournal(manifest: Manifest, data: Buffer): number {
  if (manifest.complete) return 0
  const lines = data.toString('utf8').split('\n')
  try {
    const head = JSON.parse(lines[0]) as {format?: number; journalOf?: number}
    if (head.format !== FORMAT || head.journalOf !== manifest.generation) return 0
  } catch {
    return 0
  }
  let applied = 0
  // The last element is what follows the final newline: empty, or an append cut short.
  for (const line of lines.slice(1, -1)) {
    let row: unknown
    try {
      row = JSON.parse(line)
    } catch {
      break
    }
    if (!Array.isArray(row) || typeof row[0] !== 'string' || !isSafeRelativePath(row[0])) break
    if (row.length === 1) manifest.files.delete(row[0])
    else if (row.length === 5 && typeof row[1] === 'string' && row.slice(2).every((n) => typeof n === 'number')) {
      manifest.files.set(row[0], {hash: row[1], size: row[2], mtimeMs: row[3], mode: row[4]})
    } else break
    applied++
  }
  return applied
}

function isSafeRelativePath(path: string): boolean {
  try {
    checkRelativePath(path)
    return true
  } catch {
    return false
  }
}
