// Turns a finished crawl into the staging snapshot: names every saved URL's file, rewrites the
// links of pages and stylesheets to those files (or to a segment's public host), writes redirect
// pages and the redirect map, and keeps the previous file (bytes and mtime) wherever the content
// did not change. Writes only inside the staging directory; the swap is not its business.

import * as fs from 'node:fs/promises'
import {dirname, join} from 'node:path'

import pLimit from 'p-limit'

import {MirrorError} from '../errors.js'
import type {CrawlRecord, SavedOutcome} from './crawler.js'
import {rewriteCss} from './css.js'
import {decodeBinary, rewriteHtml, type HtmlRef} from './html.js'
import type {RenderOptions} from './options.js'
import {redirectMap, redirectPage} from './redirects.js'
import type {RenderProgress, RenderReport} from './report.js'
import {sha256, type RenderState, type ResourceState, type StateStore} from './state.js'
import {assignFiles, cleanHref, encodeSegment, isHtmlType, relativeHref} from './url-map.js'
import {fragmentOf, onSite, pathAndQuery, resolveUrl} from './urls.js'

export interface WriteContext {
  options: RenderOptions
  store: StateStore
  previous?: RenderState
  staging: string
  records: ReadonlyMap<string, CrawlRecord>
  onProgress?: (progress: RenderProgress) => void
  progressBase: Omit<RenderProgress, 'phase'>
}

export interface WriteResult {
  state: Omit<RenderState, 'renderedAt'>
  pages: number
  assets: number
  written: string[]
  unchanged: number
  removed: string[]
  redirects: RenderReport['redirects']
  embeds: Record<string, string[]>
  /** URL → previous file kept because the URL failed this time. */
  kept: Map<string, string>
  redirectMap?: string
}

type Item =
  | {url: string; kind: 'saved'; outcome: SavedOutcome}
  | {url: string; kind: 'redirect'; status: number; location: string}
  | {url: string; kind: 'kept'; previous: ResourceState}

const WRITE_CONCURRENCY = 16
const MAX_REDIRECT_HOPS = 10

const isAbsoluteLink = (link: string) => /^[a-z][a-z0-9+.-]*:|^\/\//i.test(link.trim())
const asciiOnly = (href: string) => href.replace(/[^\x20-\x7e]/gu, encodeURIComponent)

export async function writeSnapshot(ctx: WriteContext): Promise<WriteResult> {
  const o = ctx.options
  const {records, previous, staging} = ctx
  const sourcePath = (file: string) => join(o.source, file)

  const statCache = new Map<string, Promise<{size: number; mtimeMs: number} | undefined>>()
  const statOld = (file: string) => {
    let found = statCache.get(file)
    if (!found) {
      found = fs.stat(sourcePath(file)).then(
        (s) => ({size: s.size, mtimeMs: s.mtimeMs}),
        () => undefined,
      )
      statCache.set(file, found)
    }
    return found
  }
  /** The previous file is still what the last render wrote (nobody edited the snapshot by hand). */
  const intact = async (prev: ResourceState) => {
    const s = await statOld(prev.file)
    return s !== undefined && s.size === prev.size && s.mtimeMs === prev.mtimeMs
  }

  // Which URLs get a file.
  const items: Item[] = []
  for (const record of records.values()) {
    const outcome = record.outcome
    if (!outcome) continue
    if (outcome.type === 'page' || outcome.type === 'asset') items.push({url: record.url, kind: 'saved', outcome})
    else if (outcome.type === 'redirect') items.push({url: record.url, kind: 'redirect', status: outcome.status, location: outcome.location})
    else if (outcome.type === 'error') {
      // A page that failed this time keeps its last good copy: a hiccup on the origin must not delete it from the slaves.
      const prev = previous?.resources[record.url]
      if (prev && prev.kind !== 'redirect' && (await intact(prev))) items.push({url: record.url, kind: 'kept', previous: prev})
    }
  }
  const reserved = new Set<string>()
  if (o.redirectMap) reserved.add(o.redirectMap.toLowerCase())
  for (const item of items) if (item.kind === 'kept') reserved.add(item.previous.file.toLowerCase())
  const files = assignFiles(
    items.filter((i) => i.kind !== 'kept').map((i) => ({url: i.url, contentType: i.kind === 'saved' ? i.outcome.contentType : 'text/html'})),
    reserved,
  )
  for (const item of items) if (item.kind === 'kept') files.set(item.url, item.previous.file)

  /** Where a link to `url` really ends: redirects followed while they stay on the origin. */
  const final = (url: string): {url: string; file?: string; external?: boolean} => {
    let current = url
    for (let hops = 0; hops < MAX_REDIRECT_HOPS; hops++) {
      const outcome = records.get(current)?.outcome
      if (outcome?.type !== 'redirect') break
      const next = onSite(o.site, new URL(outcome.location))
      if (!next) return {url: outcome.location, external: true}
      if (!files.has(next.href) && records.get(next.href)?.outcome?.type !== 'redirect') {
        // The target is not saved: keep the link on the redirect page, which still says where it went.
        break
      }
      current = next.href
    }
    return {url: current, file: files.get(current)}
  }

  const segmentPublicUrl = (fromFile: string, toFile: string): string | undefined => {
    const segment = o.router.segmentFor(toFile)
    if (!segment?.publicUrl || o.router.segmentFor(fromFile) === segment) return undefined
    return o.router.publicUrlFor(toFile)
  }

  /** The link from a saved file to an origin URL, as it is written into the snapshot. */
  const hrefFor = (fromFile: string, target: URL, fragment: string): string => {
    const end = final(target.href)
    if (end.external) return end.url + fragment
    if (end.file) {
      const publicUrl = segmentPublicUrl(fromFile, end.file)
      if (publicUrl) return publicUrl + fragment
      if (o.links === 'clean') return cleanHref(new URL(end.url), end.file) + fragment
      return relativeHref(fromFile, end.file) + fragment
    }
    const path = pathAndQuery(target)
    return (o.dynamicUrl ? new URL(path, o.dynamicUrl).href : path) + fragment
  }

  const pageRewriter = (url: string, file: string, outcome: SavedOutcome) => {
    const hadBase = outcome.base !== undefined
    const base = new URL(outcome.base ?? url)
    return (ref: HtmlRef): string | undefined => {
      const target = resolveUrl(ref.url, base)
      if (!target) return undefined
      const fragment = fragmentOf(ref.url)
      const onOrigin = onSite(o.site, target)
      if (!onOrigin) {
        // With the <base> gone, a relative link would land elsewhere: spell it out.
        return hadBase && !isAbsoluteLink(ref.url) ? target.href + fragment : undefined
      }
      // A canonical URL on a public alias already names the public page; on the origin's own (internal) host it must go.
      if (ref.self && target.origin !== o.site.origin) return undefined
      const href = hrefFor(file, onOrigin, fragment)
      return href === ref.url ? undefined : href
    }
  }

  const cssRewrite = (css: string, url: string, file: string, charset: string | undefined) =>
    rewriteCss(css, (u) => {
      const value = decodeBinary(u.value, charset).trim()
      const target = resolveUrl(value, url)
      const onOrigin = target && onSite(o.site, target)
      if (!onOrigin) return undefined
      const href = asciiOnly(hrefFor(file, onOrigin, fragmentOf(value)))
      return href === value ? undefined : href
    })

  const volatileHash = (binary: string) => sha256(o.volatile.reduce((text, pattern) => text.replace(pattern, ''), binary))

  const ensured = new Map<string, Promise<unknown>>()
  const ensureDir = (dir: string) => {
    let done = ensured.get(dir)
    if (!done) {
      done = fs.mkdir(dir, {recursive: true})
      ensured.set(dir, done)
    }
    return done
  }

  /** The previous file, same bytes and mtime: a hard link, or a copy where links are not possible. */
  const keepOld = async (oldFile: string, dest: string) => {
    try {
      await fs.link(sourcePath(oldFile), dest)
    } catch {
      await fs.copyFile(sourcePath(oldFile), dest)
      const s = await fs.stat(sourcePath(oldFile))
      await fs.utimes(dest, s.atime, s.mtime)
    }
  }

  const written: string[] = []
  let unchanged = 0
  const resources: Record<string, ResourceState> = {}
  let pages = 0
  let assets = 0
  let done = 0
  const progress = () => ctx.onProgress?.({...ctx.progressBase, phase: 'write', queued: items.length - done})

  type Content = {bytes: Buffer; outHash: string} | {incoming: string; outHash: string} | {previous: string; outHash: string}

  const place = async (url: string, file: string, content: Content, state: Omit<ResourceState, 'file' | 'outHash' | 'size' | 'mtimeMs'>) => {
    const dest = join(staging, file)
    await ensureDir(dirname(dest))
    const prev = previous?.resources[url]
    let changed = true
    if (prev && prev.file === file && prev.outHash === content.outHash && (await intact(prev))) {
      await keepOld(prev.file, dest)
      changed = false
    } else if ('previous' in content) {
      await keepOld(content.previous, dest)
      changed = content.previous !== file
    } else if ('incoming' in content) {
      await fs.rename(content.incoming, dest)
    } else {
      await fs.writeFile(dest, content.bytes)
    }
    if ('incoming' in content && !changed) await fs.rm(content.incoming, {force: true})
    const s = await fs.stat(dest)
    if (changed) written.push(file)
    else unchanged++
    resources[url] = {...state, file, outHash: content.outHash, size: s.size, mtimeMs: s.mtimeMs}
  }

  const writeItem = async (item: Item) => {
    const file = files.get(item.url)!
    if (item.kind === 'kept') {
      await place(item.url, file, {previous: item.previous.file, outHash: item.previous.outHash}, stripFileFields(item.previous))
      if (isHtmlType(item.previous.contentType)) pages++
      else assets++
      return
    }
    if (item.kind === 'redirect') {
      const target = new URL(item.location)
      const onOrigin = onSite(o.site, target)
      const href = onOrigin ? hrefFor(file, onOrigin, '') : target.href
      const bytes = Buffer.from(redirectPage(href), 'utf8')
      await place(item.url, file, {bytes, outHash: sha256(bytes)}, {kind: 'redirect', contentType: 'text/html'})
      return
    }
    const outcome = item.outcome
    const state = {
      kind: outcome.type,
      contentType: outcome.contentType,
      etag: outcome.etag,
      lastModified: outcome.lastModified,
      rawHash: outcome.rawHash,
    }
    if (isHtmlType(outcome.contentType)) pages++
    else assets++
    if ('cache' in outcome.body) {
      const raw = await ctx.store.getRaw(outcome.rawHash)
      if (!raw) throw new MirrorError('INTERNAL', `the cached body of ${item.url} is missing`)
      const text = raw.toString('latin1')
      const out = isHtmlType(outcome.contentType)
        ? rewriteHtml(text, outcome.charset ?? 'utf-8', pageRewriter(item.url, file, outcome), {dropBase: true})
        : cssRewrite(text, item.url, file, outcome.charset)
      await place(item.url, file, {bytes: Buffer.from(out, 'latin1'), outHash: volatileHash(out)}, state)
      return
    }
    if ('incoming' in outcome.body) {
      await place(item.url, file, {incoming: outcome.body.incoming, outHash: outcome.rawHash}, state)
      return
    }
    await place(item.url, file, {previous: outcome.body.previous, outHash: outcome.rawHash}, state)
  }

  const limit = pLimit(WRITE_CONCURRENCY)
  await Promise.all(
    items.map((item) =>
      limit(async () => {
        await writeItem(item)
        done++
        if (done % 50 === 0) progress()
      }),
    ),
  )

  // Redirects, and the map nginx can include to answer them with a real status.
  const redirects: RenderReport['redirects'] = []
  const mapLines: Array<{from: string; to: string; status: number}> = []
  for (const item of items) {
    if (item.kind !== 'redirect') continue
    const target = new URL(item.location)
    const onOrigin = onSite(o.site, target)
    redirects.push({url: pathAndQuery(item.url), status: item.status, location: onOrigin ? pathAndQuery(onOrigin) : target.href, file: files.get(item.url)!})
    let to = target.href
    if (onOrigin) {
      const end = final(onOrigin.href)
      to = end.external ? end.url : end.file ? servedPath(end.file, new URL(end.url), o.links) : pathAndQuery(onOrigin)
    }
    mapLines.push({from: pathAndQuery(item.url), to, status: item.status})
  }
  redirects.sort((a, b) => (a.url < b.url ? -1 : 1))
  let mapFile: string | undefined
  if (o.redirectMap && mapLines.length > 0) {
    mapFile = o.redirectMap
    const bytes = Buffer.from(redirectMap(mapLines), 'utf8')
    const dest = join(staging, mapFile)
    await ensureDir(dirname(dest))
    const old = await fs.readFile(sourcePath(mapFile)).catch(() => undefined)
    if (old?.equals(bytes)) {
      await keepOld(mapFile, dest)
      unchanged++
    } else {
      await fs.writeFile(dest, bytes)
      written.push(mapFile)
    }
  }

  const embeds = embedsOf(records, (url) => final(url).file)
  const newFiles = new Set(Object.values(resources).map((r) => r.file))
  if (mapFile) newFiles.add(mapFile)
  const previousFiles = previous ? [...Object.values(previous.resources).map((r) => r.file), ...(previous.redirectMap ? [previous.redirectMap] : [])] : []
  const removed = [...new Set(previousFiles)].filter((f) => !newFiles.has(f)).sort()
  const kept = new Map(items.filter((i) => i.kind === 'kept').map((i) => [i.url, files.get(i.url)!]))
  written.sort()
  return {
    state: {version: 1, origin: o.site.origin, source: o.source, resources, embeds, ...(mapFile && {redirectMap: mapFile})},
    pages,
    assets,
    written,
    unchanged,
    removed,
    redirects,
    embeds,
    kept,
    redirectMap: mapFile,
  }
}

function stripFileFields(prev: ResourceState): Omit<ResourceState, 'file' | 'outHash' | 'size' | 'mtimeMs'> {
  const {file: _file, outHash: _outHash, size: _size, mtimeMs: _mtimeMs, ...rest} = prev
  return rest
}

/** How a saved file is requested from a slave: a directory for an index page, else the file. */
function servedPath(file: string, url: URL, links: RenderOptions['links']): string {
  if (links === 'clean') return cleanHref(url, file)
  if (file === 'index.html') return '/'
  if (file.endsWith('/index.html')) return `/${file.slice(0, -'index.html'.length).split('/').map(encodeSegment).join('/')}`
  return `/${file.split('/').map(encodeSegment).join('/')}`
}

/** Asset file → page files that embed it, through stylesheets too (a changed image in CSS affects every page using the CSS). */
function embedsOf(records: ReadonlyMap<string, CrawlRecord>, fileOf: (url: string) => string | undefined): Record<string, string[]> {
  const result = new Map<string, Set<string>>()
  for (const record of records.values()) {
    if (record.outcome?.type !== 'page' || !isHtmlType(record.outcome.contentType)) continue
    const pageFile = fileOf(record.url)
    if (!pageFile) continue
    const seen = new Set<string>()
    const stack = [...(record.embeds ?? [])]
    while (stack.length > 0) {
      const url = stack.pop()!
      if (seen.has(url)) continue
      seen.add(url)
      const file = fileOf(url)
      if (file) {
        let pagesOf = result.get(file)
        if (!pagesOf) result.set(file, (pagesOf = new Set()))
        pagesOf.add(pageFile)
      }
      const target = records.get(url)
      stack.push(...(target?.embeds ?? []))
    }
  }
  return Object.fromEntries([...result].sort(([a], [b]) => (a < b ? -1 : 1)).map(([file, pagesOf]) => [file, [...pagesOf].sort()]))
}
