// The benchmark's source trees: deterministic (seeded) sites of pages, styles, scripts, images
// and videos, each with a mutated copy (1 % edited, 0.5 % added, 0.5 % deleted, 4 KiB inserted in
// the middle of the largest file). Generated once and cached; it never touches a slave.

import {createHash} from 'node:crypto'
import {existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {Rng} from './rng.js'

/** Bump when the generator's output changes, so cached corpora are rebuilt. */
const GENERATOR_VERSION = 2

type Range = readonly [min: number, max: number]

export interface CorpusSpec {
  name: string
  seed: string
  pages: number
  pageKb: Range
  styles: number
  styleKb: Range
  scripts: number
  scriptKb: Range
  thumbs: number
  thumbKb: Range
  photos: number
  photoKb: Range
  videos: number
  videoKb: Range
  /** Pages per directory. */
  pagesPerDir: number
  /** Whether to build the mutated copy (the 100,000-file RSS corpus does not need one). */
  mutate: boolean
}

const none: Range = [0, 0]

export const CORPORA: Record<string, CorpusSpec> = {
  /** For the smoke test: about 60 files, under 1 MB. */
  tiny: {name: 'tiny', seed: 'mirror-bench-tiny', pages: 30, pageKb: [1, 8], styles: 3, styleKb: [1, 4], scripts: 3, scriptKb: [1, 8], thumbs: 15, thumbKb: [2, 10], photos: 5, photoKb: [20, 60], videos: 1, videoKb: [256, 256], pagesPerDir: 8, mutate: true},
  /** About 2,000 files, 70 MB. */
  small: {name: 'small', seed: 'mirror-bench-small', pages: 1200, pageKb: [4, 20], styles: 40, styleKb: [2, 30], scripts: 60, scriptKb: [5, 100], thumbs: 600, thumbKb: [8, 40], photos: 100, photoKb: [200, 600], videos: 0, videoKb: none, pagesPerDir: 40, mutate: true},
  /** About 20,000 files, 650 MB, two of them 50 MB videos. */
  large: {name: 'large', seed: 'mirror-bench-large', pages: 12000, pageKb: [4, 16], styles: 200, styleKb: [2, 30], scripts: 400, scriptKb: [5, 100], thumbs: 6400, thumbKb: [8, 32], photos: 998, photoKb: [150, 400], videos: 2, videoKb: [51200, 51200], pagesPerDir: 40, mutate: true},
  /** 100,000 small pages (about 110 MB): the peak-RSS scenario. */
  files100k: {name: 'files100k', seed: 'mirror-bench-100k', pages: 100000, pageKb: [0.2, 2], styles: 0, styleKb: none, scripts: 0, scriptKb: none, thumbs: 0, thumbKb: none, photos: 0, photoKb: none, videos: 0, videoKb: none, pagesPerDir: 100, mutate: false},
}

/** Expected content of a tree: path → [size, sha1 hex]. */
export type Tree = Map<string, readonly [size: number, sha1: string]>

export interface Mutation {
  edited: string[]
  added: string[]
  deleted: string[]
  /** The largest file, with 4 KiB inserted in its middle. */
  grown: string
}

export interface Corpus {
  spec: CorpusSpec
  dir: string
  /** The tree the slaves start from. */
  base: string
  baseTree: Tree
  /** The base with the mutation applied; unchanged files are hard links to the base's (same inode, as after an in-place edit session). */
  mutated?: string
  mutatedTree?: Tree
  mutation?: Mutation
  files: number
  bytes: number
}

type Kind = 'page' | 'style' | 'script' | 'thumb' | 'photo' | 'video'

interface PlannedFile {
  path: string
  kind: Kind
  size: number
  /** Seconds since the epoch; whole seconds so every tool agrees on it. */
  mtime: number
}

const BASE_MTIME = 1_700_000_000
const EDIT_MTIME = 1_720_000_000

/** Returns the cached corpus, generating it first when missing or built by an older generator. */
export function ensureCorpus(spec: CorpusSpec, cacheDir: string, log: (line: string) => void): Corpus {
  const key = createHash('sha256').update(JSON.stringify({spec, GENERATOR_VERSION})).digest('hex').slice(0, 12)
  const dir = join(cacheDir, `${spec.name}-${key}`)
  const done = join(dir, 'done.json')
  if (!existsSync(done)) {
    rmSync(dir, {recursive: true, force: true})
    const started = Date.now()
    log(`generating the ${spec.name} corpus in ${dir} (once; cached)…`)
    generate(spec, dir)
    log(`generated the ${spec.name} corpus in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
  const meta = JSON.parse(readFileSync(done, 'utf8')) as {files: number; bytes: number; mutation?: Mutation}
  return {
    spec,
    dir,
    base: join(dir, 'base'),
    baseTree: readTree(join(dir, 'base.json')),
    mutated: spec.mutate ? join(dir, 'mutated') : undefined,
    mutatedTree: spec.mutate ? readTree(join(dir, 'mutated.json')) : undefined,
    mutation: meta.mutation,
    files: meta.files,
    bytes: meta.bytes,
  }
}

function readTree(file: string): Tree {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, [number, string]>
  return new Map(Object.entries(raw))
}

function writeTreeFile(file: string, tree: Tree): void {
  const sorted = [...tree.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  writeFileSync(file, JSON.stringify(Object.fromEntries(sorted)))
}

function plan(spec: CorpusSpec): PlannedFile[] {
  const rng = new Rng(`${spec.seed}:plan`)
  const files: PlannedFile[] = []
  const size = (range: Range) => Math.max(1, Math.round((range[0] + (range[1] - range[0]) * rng.float()) * 1024))
  const add = (path: string, kind: Kind, range: Range) => files.push({path, kind, size: size(range), mtime: BASE_MTIME + files.length * 13})
  for (let i = 0; i < spec.pages; i++) add(pagePath(spec, i), 'page', spec.pageKb)
  for (let i = 0; i < spec.styles; i++) add(`assets/css/style-${i}.css`, 'style', spec.styleKb)
  for (let i = 0; i < spec.scripts; i++) add(`assets/js/module-${i}.js`, 'script', spec.scriptKb)
  for (let i = 0; i < spec.thumbs; i++) add(thumbPath(i), 'thumb', spec.thumbKb)
  for (let i = 0; i < spec.photos; i++) add(`img/photos/${2010 + (i % 15)}/photo-${i}.jpg`, 'photo', spec.photoKb)
  for (let i = 0; i < spec.videos; i++) add(`media/video-${i + 1}.mp4`, 'video', spec.videoKb)
  return files
}

function pagePath(spec: CorpusSpec, i: number): string {
  if (i === 0) return 'index.html'
  const group = Math.floor(i / spec.pagesPerDir)
  const year = 2000 + Math.floor(group / 12)
  const month = String((group % 12) + 1).padStart(2, '0')
  return `news/${year}/${month}/${WORDS[i % WORDS.length]}-${WORDS[(i * 7) % WORDS.length]}-${i}.html`
}

function thumbPath(i: number): string {
  return `img/thumbs/${(i % 64).toString(16).padStart(2, '0')}/thumb-${i}.${['jpg', 'png', 'webp'][i % 3]}`
}

function generate(spec: CorpusSpec, dir: string): void {
  const files = plan(spec)
  const base = join(dir, 'base')
  // Per process, so two benchmarks generating the same corpus at once do not collide.
  const tmp = `${dir}.partial-${process.pid}`
  rmSync(tmp, {recursive: true, force: true})
  const tmpBase = join(tmp, 'base')
  const pages = files.filter((f) => f.kind === 'page').map((f) => f.path)
  const thumbs = files.filter((f) => f.kind === 'thumb').map((f) => f.path)
  const baseTree: Tree = new Map()
  const made = new Set<string>()
  const write = (root: string, file: PlannedFile, content: Buffer, tree: Tree) => {
    const abs = join(root, file.path)
    const parent = dirname(abs)
    if (!made.has(parent)) {
      mkdirSync(parent, {recursive: true})
      made.add(parent)
    }
    writeFileSync(abs, content)
    utimesSync(abs, file.mtime, file.mtime)
    tree.set(file.path, [content.byteLength, sha1(content)])
  }
  let bytes = 0
  for (const file of files) {
    const content = contentFor(spec, file, pages, thumbs)
    bytes += content.byteLength
    write(tmpBase, file, content, baseTree)
  }
  writeTreeFile(join(tmp, 'base.json'), baseTree)

  let mutation: Mutation | undefined
  if (spec.mutate) {
    const tmpMutated = join(tmp, 'mutated')
    const mutatedTree: Tree = new Map()
    mutation = chooseMutation(spec, files)
    const edited = new Set(mutation.edited)
    const deleted = new Set(mutation.deleted)
    let k = 0
    for (const file of files) {
      if (deleted.has(file.path)) continue
      if (file.path === mutation.grown) {
        const old = readFileSync(join(tmpBase, file.path))
        const middle = Math.floor(old.byteLength / 2)
        const inserted = new Rng(`${spec.seed}:grow`).fill(Buffer.alloc(4096))
        write(tmpMutated, {...file, mtime: EDIT_MTIME + k++}, Buffer.concat([old.subarray(0, middle), inserted, old.subarray(middle)]), mutatedTree)
      } else if (edited.has(file.path)) {
        const old = readFileSync(join(tmpBase, file.path))
        write(tmpMutated, {...file, mtime: EDIT_MTIME + k++}, edit(spec, file, old), mutatedTree)
      } else {
        const abs = join(tmpMutated, file.path)
        const parent = dirname(abs)
        if (!made.has(parent)) {
          mkdirSync(parent, {recursive: true})
          made.add(parent)
        }
        linkSync(join(tmpBase, file.path), abs)
        mutatedTree.set(file.path, baseTree.get(file.path)!)
      }
    }
    for (const path of mutation.added) {
      const kind: Kind = path.endsWith('.html') ? 'page' : 'thumb'
      const range = kind === 'page' ? spec.pageKb : spec.thumbKb
      const size = Math.max(1, Math.round(((range[0] + range[1]) / 2) * 1024))
      const file = {path, kind, size, mtime: EDIT_MTIME + k++}
      write(tmpMutated, file, contentFor(spec, file, pages, thumbs), mutatedTree)
    }
    writeTreeFile(join(tmp, 'mutated.json'), mutatedTree)
  }
  writeFileSync(join(tmp, 'done.json'), JSON.stringify({files: files.length, bytes, mutation}))
  try {
    renameSync(tmp, dir)
  } catch (error) {
    // Another process finished the same corpus first: use theirs.
    rmSync(tmp, {recursive: true, force: true})
    if (!existsSync(join(dir, 'done.json'))) throw error
  }
  if (!existsSync(base)) throw new Error(`corpus generation left no ${base}`)
}

/** 1 % edited, 0.5 % added, 0.5 % deleted (never emptying a directory), and the largest file grown. */
function chooseMutation(spec: CorpusSpec, files: PlannedFile[]): Mutation {
  const rng = new Rng(`${spec.seed}:mutate`)
  const n = files.length
  const largest = files.reduce((a, b) => (b.size > a.size ? b : a))
  const perDir = new Map<string, number>()
  for (const f of files) perDir.set(dirname(f.path), (perDir.get(dirname(f.path)) ?? 0) + 1)
  const taken = new Set<string>([largest.path, 'index.html'])
  const want = (fraction: number) => Math.max(1, Math.round(n * fraction))
  const pickMany = (count: number, accept: (f: PlannedFile) => boolean) => {
    const out: string[] = []
    // Bounded: at most 50 tries per wanted file.
    for (let tries = 0; out.length < count && tries < count * 50; tries++) {
      const f = files[Math.floor(rng.float() * n)]
      if (taken.has(f.path) || !accept(f)) continue
      taken.add(f.path)
      out.push(f.path)
    }
    return out
  }
  const edited = pickMany(want(0.01), () => true)
  const deleted = pickMany(want(0.005), (f) => {
    const left = perDir.get(dirname(f.path))!
    if (left <= 2) return false
    perDir.set(dirname(f.path), left - 1)
    return true
  })
  const added: string[] = []
  const pageDirs = [...new Set(files.filter((f) => f.kind === 'page' && f.path.includes('/')).map((f) => dirname(f.path)))]
  const thumbDirs = [...new Set(files.filter((f) => f.kind === 'thumb').map((f) => dirname(f.path)))]
  for (let i = 0; i < want(0.005); i++) {
    const dirs = i % 2 === 1 && thumbDirs.length > 0 ? thumbDirs : pageDirs
    added.push(dirs === thumbDirs ? `${rng.pick(dirs)}/added-${i}.jpg` : `${rng.pick(dirs)}/added-${i}.html`)
  }
  return {edited: edited.sort(), added: added.sort(), deleted: deleted.sort(), grown: largest.path}
}

function edit(spec: CorpusSpec, file: PlannedFile, old: Buffer): Buffer {
  const rng = new Rng(`${spec.seed}:edit:${file.path}`)
  if (file.kind === 'page') {
    // A paragraph rewritten in the middle of the page.
    const text = old.toString('utf8')
    const at = text.indexOf('<p>', Math.floor(text.length / 2))
    const cut = at < 0 ? Math.floor(text.length / 2) : at
    const end = text.indexOf('</p>', cut)
    const paragraph = `<p>${words(rng, rng.int(20, 60))} (updated)</p>`
    return Buffer.from(text.slice(0, cut) + paragraph + (end < 0 ? text.slice(cut) : text.slice(end + 4)))
  }
  if (file.kind === 'style' || file.kind === 'script') {
    const line = file.kind === 'style' ? `\n.edit-${rng.int(0, 1e6)} { color: #${rng.int(0, 0xffffff).toString(16).padStart(6, '0')}; }\n` : `\nexport const edit${rng.int(0, 1e6)} = ${rng.int(0, 1e9)};\n`
    return Buffer.concat([old, Buffer.from(line)])
  }
  // A re-encoded image: new bytes throughout, about the same size.
  const size = Math.max(16, Math.round(old.byteLength * (0.9 + rng.float() * 0.2)))
  return media(rng, size, file.kind)
}

function contentFor(spec: CorpusSpec, file: PlannedFile, pages: string[], thumbs: string[]): Buffer {
  const rng = new Rng(`${spec.seed}:content:${file.path}`)
  switch (file.kind) {
    case 'page':
      return Buffer.from(page(rng, file, pages, thumbs, spec))
    case 'style':
      return Buffer.from(fillText(rng, file.size, () => `.${rng.pick(WORDS)}-${rng.int(0, 999)} { margin: ${rng.int(0, 40)}px; color: #${rng.int(0, 0xffffff).toString(16).padStart(6, '0')}; }\n`))
    case 'script':
      return Buffer.from(fillText(rng, file.size, () => `export function ${rng.pick(WORDS)}${rng.int(0, 9999)}(a, b) { return a ${rng.pick(['+', '-', '*'])} b + ${rng.int(0, 1e6)}; }\n`))
    default:
      return media(rng, file.size, file.kind)
  }
}

const MAGIC: Partial<Record<Kind, Buffer>> = {
  thumb: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0]),
  photo: Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0, 16, 0x45, 0x78, 0x69, 0x66, 0]),
  video: Buffer.from([0, 0, 0, 0x20, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6f, 0x6d]),
}

/** Incompressible bytes, as compressed images and videos are. */
function media(rng: Rng, size: number, kind: Kind): Buffer {
  const buf = rng.fill(Buffer.alloc(size))
  MAGIC[kind]?.copy(buf, 0, 0, Math.min(size, MAGIC[kind]!.length))
  return buf
}

function page(rng: Rng, file: PlannedFile, pages: string[], thumbs: string[], spec: CorpusSpec): string {
  const title = words(rng, rng.int(3, 8))
  const head = `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${title}</title>\n<link rel="stylesheet" href="/assets/css/style-${spec.styles > 0 ? rng.int(0, spec.styles - 1) : 0}.css">\n<script src="/assets/js/module-${spec.scripts > 0 ? rng.int(0, spec.scripts - 1) : 0}.js" defer></script></head>\n<body><header><nav><a href="/">Home</a> <a href="/news/">News</a> <a href="/about/">About</a></nav></header>\n<main><h1>${title}</h1>\n`
  const tail = `</main><footer><p>© Example Publishing</p></footer></body></html>\n`
  const body = fillText(rng, Math.max(0, file.size - head.length - tail.length), () => {
    const link = pages.length > 1 ? ` <a href="/${rng.pick(pages)}">${words(rng, 3)}</a>` : ''
    const img = thumbs.length > 0 && rng.float() < 0.3 ? ` <img src="/${rng.pick(thumbs)}" alt="${words(rng, 2)}">` : ''
    return `<p>${words(rng, rng.int(20, 80))}${link}${img} ${words(rng, rng.int(5, 30))}.</p>\n`
  })
  return head + body + tail
}

function fillText(rng: Rng, size: number, chunk: () => string): string {
  const parts: string[] = []
  let length = 0
  // Bounded by size: every chunk is at least a few bytes long.
  while (length < size) {
    const part = chunk()
    parts.push(part)
    length += part.length
  }
  return parts.join('').slice(0, Math.max(size, 0))
}

function words(rng: Rng, count: number): string {
  const out: string[] = []
  for (let i = 0; i < count; i++) out.push(WORDS[rng.next() % WORDS.length])
  return out.join(' ')
}

function sha1(content: Buffer): string {
  return createHash('sha1').update(content).digest('hex')
}

const WORDS = (
  'the mirror site page news archive report city council market weather travel guide review ' +
  'photo gallery season river bridge garden school library museum concert festival summer ' +
  'winter autumn spring train station harbour island mountain valley forest village street ' +
  'market price energy water power project budget plan meeting update notice history science ' +
  'health sport football tennis result score team league player coach match final record ' +
  'open close early late north south east west new old small large quick slow bright dark ' +
  'data server cache image video audio link index search contact about service support'
).split(' ')
