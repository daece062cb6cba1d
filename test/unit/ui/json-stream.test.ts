import {PassThrough} from 'node:stream'

import t from 'tap'

import {jsonChunks, writeJson} from '../../../src/ui/json-stream.js'

const samples: unknown[] = [
  {ok: true, targets: [{target: 'a', plan: {actions: [{kind: 'add', path: 'x "q"\n.html', source: {size: 3, hash: 'ab'}}], empty: [], none: {}}, error: undefined}]},
  [1, 'two', null, undefined, () => 1, {nested: [[]]}, Number.NaN, -0, 1e21],
  {when: new Date(0), error: {toJSON: () => ({code: 'X'})}, skip: Symbol('s'), n: new Number(4)},
  'text',
  42,
  null,
  [],
  {},
]

t.test('the streamed text is exactly what JSON.stringify(value, null, 2) prints', async (t) => {
  for (const value of samples) t.equal([...jsonChunks(value)].join(''), JSON.stringify(value, null, 2))
})

t.test('values printed whole keep the indentation of where they sit, big ones around them opened', async (t) => {
  class Entry {
    constructor(readonly path: string) {}
    toJSON() {
      return {path: this.path, abs: `/src/${this.path}`}
    }
  }
  const actions = (n: number) => Array.from({length: n}, (_, i) => ({kind: i % 3 ? 'add' : 'update', path: `a "b"\n\tc-${i}.html`, source: new Entry(`p${i}`), tags: i % 5 ? [] : [{deep: [i, null, 'x\ny']}]}))
  const value = {
    ok: false,
    targets: [
      {target: 'one', plan: {actions: actions(300), counts: {add: 200}}, error: {toJSON: () => ({code: 'E', message: 'line 1\nline 2'})}},
      {target: 'two', plan: {actions: actions(3)}, skipped: undefined},
      {target: 'three', plan: {actions: [[actions(100)], Array.from({length: 600}, (_, i) => i)]}},
    ],
  }
  t.equal([...jsonChunks(value)].join(''), JSON.stringify(value, null, 2))
})

t.test('a plan of 100,000 actions is written in pieces, never as one string', async (t) => {
  const plan = {actions: Array.from({length: 100_000}, (_, i) => ({kind: 'add', path: `dir/file-${i}.html`, size: i}))}
  const out = new PassThrough()
  let largest = 0
  let text = ''
  out.on('data', (chunk: Buffer) => {
    largest = Math.max(largest, chunk.length)
    text += chunk
  })
  await writeJson(out, plan)
  t.equal(text, `${JSON.stringify(plan, null, 2)}\n`)
  t.ok(largest < 1 << 20, `the largest write is ${largest} bytes`)
})
