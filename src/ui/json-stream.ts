// Writes a JSON document to a stream piece by piece, exactly as JSON.stringify(value, null, 2)
// would print it. A 100,000-file plan is a 200 MB document: built whole it would cost more
// memory than the whole publish, and be copied once more on its way to stdout. The pieces are
// the document's small values (an action, an error), each printed by one JSON.stringify.

import {once} from 'node:events'

/** Chunks are gathered up to this size before a write. */
const WRITE_SIZE = 64 << 10

/**
 * A value with at most this many members, all levels counted, is printed whole. Token by token
 * through nested generators, the 80,000 actions of a first publish to 4 targets (40 MB of JSON)
 * took 0.56 s, all of it at the end of the publish.
 */
const WHOLE_MEMBERS = 256

export async function writeJson(stream: NodeJS.WritableStream, value: unknown): Promise<void> {
  let buffer = ''
  for (const chunk of jsonChunks(value)) {
    buffer += chunk
    if (buffer.length >= WRITE_SIZE) {
      const flowing = stream.write(buffer)
      buffer = ''
      if (!flowing) await once(stream, 'drain')
    }
  }
  stream.write(`${buffer}\n`)
}

/** The text of JSON.stringify(value, null, 2), in pieces. */
export function* jsonChunks(value: unknown, indent = ''): Generator<string> {
  const json = toJsonValue(value, '')
  if (json === undefined) return
  yield* chunksOf(json, indent)
}

function* chunksOf(value: unknown, indent: string): Generator<string> {
  if (value === null || typeof value !== 'object') {
    yield JSON.stringify(value)
    return
  }
  if (membersWithin(value, WHOLE_MEMBERS) >= 0) {
    // JSON.stringify escapes a newline inside a string: each one in its text starts a line.
    const text = JSON.stringify(value, null, 2)
    yield indent === '' ? text : text.replaceAll('\n', `\n${indent}`)
    return
  }
  const inner = `${indent}  `
  if (Array.isArray(value)) {
    if (value.length === 0) return yield '[]'
    yield '['
    for (let i = 0; i < value.length; i++) {
      yield `${i === 0 ? '' : ','}\n${inner}`
      const item = toJsonValue(value[i], String(i))
      if (item === undefined) yield 'null'
      else yield* chunksOf(item, inner)
    }
    yield `\n${indent}]`
    return
  }
  let first = true
  for (const key of Object.keys(value)) {
    const item = toJsonValue((value as Record<string, unknown>)[key], key)
    if (item === undefined) continue
    yield `${first ? '{' : ','}\n${inner}${JSON.stringify(key)}: `
    first = false
    yield* chunksOf(item, inner)
  }
  yield first ? '{}' : `\n${indent}}`
}

/**
 * What is left of `budget` after counting the members of `value` at every level, or -1 once it
 * runs out. A member with toJSON counts as a few, unopened. `value` itself must not have one:
 * JSON.stringify would call it again on what toJsonValue already made of it.
 */
function membersWithin(value: object, budget: number): number {
  if (typeof (value as {toJSON?: unknown}).toJSON === 'function') return -1
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (--budget < 0) return -1
    const member = (value as Record<string, unknown>)[key]
    if (member === null || typeof member !== 'object') continue
    budget = typeof (member as {toJSON?: unknown}).toJSON === 'function' ? budget - 8 : membersWithin(member, budget)
    if (budget < 0) return -1
  }
  return budget
}

/** What JSON.stringify does to a value before printing it: toJSON, and what it leaves out. */
function toJsonValue(value: unknown, key: string): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as {toJSON?: unknown}).toJSON === 'function') value = (value as {toJSON: (key: string) => unknown}).toJSON(key)
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined
  if (value instanceof Number || value instanceof String || value instanceof Boolean) return value.valueOf()
  return value
}
