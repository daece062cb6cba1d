import {writeFileSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {loadConfig} from '../../../src/config/load.js'
import {routeEntries} from '../../../src/sync/publish.js'
import type {SourceEntry} from '../../../src/sync/scan.js'

const entry = (path: string): SourceEntry => ({path, abs: `/src/${path}`, size: 1, mtimeMs: 0, mode: 0o644, hash: 'a'.repeat(64)})

async function config(yaml: string) {
  const dir = t.testdir({})
  await mkdir(join(dir, 'public'))
  writeFileSync(join(dir, 'mirror.config.yaml'), yaml.replaceAll('DIR', dir))
  return loadConfig({config: join(dir, 'mirror.config.yaml')})
}

t.test('each target gets exactly its segments\' files, under the segment\'s path', async (t) => {
  const c = await config(`source: ./public
targets:
  cache1: file://DIR/c1
  cache2: file://DIR/c2
  img: file://DIR/img
segments:
  - {name: images, match: ["**/*.png"], targets: [img], path: static}
  - {name: pages, match: ["**"], targets: [cache1, cache2]}
`)
  const routed = routeEntries(c, [entry('a.png'), entry('index.html'), entry('b/c.html')])
  t.same([...routed.get('img')!.keys()], ['static/a.png'])
  t.same([...routed.get('cache1')!.keys()].sort(), ['b/c.html', 'index.html'])
  t.same([...routed.get('cache2')!.keys()].sort(), ['b/c.html', 'index.html'])
  t.equal(routed.get('cache1'), routed.get('cache2'), 'targets that take the same segments share one map')
  t.not(routed.get('cache1'), routed.get('img'))
})

t.test('a target taking one more segment than another gets its own map, with the shared entries', async (t) => {
  const c = await config(`source: ./public
targets:
  a: file://DIR/a
  b: file://DIR/b
segments:
  - {name: images, match: ["**/*.png"], targets: [a]}
  - {name: pages, match: ["**"], targets: [a, b]}
`)
  const routed = routeEntries(c, [entry('x.png'), entry('index.html')])
  t.same([...routed.get('a')!.keys()].sort(), ['index.html', 'x.png'])
  t.same([...routed.get('b')!.keys()], ['index.html'])
  t.not(routed.get('a'), routed.get('b'))
  t.equal(routed.get('a')!.get('index.html'), routed.get('b')!.get('index.html'), 'one entry object per segment, whatever the targets')
})

t.test('two segments landing on one path of a target are refused, naming the target and the path', async (t) => {
  const c = await config(`source: ./public
targets:
  a: file://DIR/a
  b: file://DIR/b
segments:
  - {name: one, match: ["sub/**"], targets: [a, b], path: x}
  - {name: two, match: ["**"], targets: [b]}
`)
  t.throws(() => routeEntries(c, [entry('sub/y.html'), entry('x/sub/y.html')]), {code: 'USAGE', target: 'b', path: 'x/sub/y.html'})
})
