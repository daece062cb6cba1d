// The crawl: from the entries (and the sitemaps) through every same-origin link a page follows
// or embeds, concurrently, deciding per URL whether to fetch it (scope, robots, nofollow,
// depth, page and calendar limits) and recording what each answered. It saves raw bodies
// (HTML and CSS to the state cache, the rest to an incoming directory) but names no snapshot
// files and rewrites nothing: that needs the whole set of URLs, see writer.ts.

import {randomBytes} from 'node:crypto'
import {setMaxListeners} from 'node:events'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import pLimit from 'p-limit'

import {MirrorError, toMirrorError} from '../errors.js'
import {Fetcher, type Conditional, type FetchResponse} from './fetcher.js'
import {cssUrls, scanHtml, sniffCharset} from './html.js'
import type {RenderOptions} from './options.js'
import type {CutReason, RenderProgress} from './report.js'
import {ALLOW_ALL, parseRobots, type Robots} from './robots.js'
import {createScope, type ExcludeReason, type Scope} from './scope.js'
import {PriorityQueue} from './priority-queue.js'
import {parseSitemap} from './sitemap.js'
import {sha256, type RenderState, type StateStore} from './state.js'
import {essence, isCssType, isHtmlType} from './url-map.js'
import {dateFamily, onSite, resolveUrl} from './urls.js'

/** A response whose body goes into the snapshot. */
export interface SavedOutcome {
  type: 'page' | 'asset'
  status: number
  contentType?: string
  etag?: string
  lastModified?: string
  rawHash: string
  /** Where the body is: the state cache (HTML, CSS), a file in the incoming directory, or the previous snapshot (304). */
  body: {cache: true} | {incoming: string} | {previous: string}
  size: number
  notModified: boolean
  charset?: string
  /** The page's <base href>, resolved; undefined when it has none. */
  base?: string
}

/** What one URL turned out to be. */
export type Outcome =
  | SavedOutcome
  | {type: 'redirect'; status: number; location: string}
  | {type: 'noindex'; status: number}
  | {type: 'broken'; status: number}
  | {type: 'error'; status?: number; code: string; message: string}

export interface CrawlRecord {
  /** Normalized absolute URL on the origin. */
  url: string
  depth: number
  /** Consecutive hops inside one date family (see urls.dateFamily). */
  trail: number
  kind: 'page' | 'asset'
  /** Pages that link or embed it (at most MAX_LINKED_FROM). */
  linkedFrom: string[]
  queued: boolean
  skip?: ExcludeReason | CutReason
  outcome?: Outcome
  /** Asset URLs this page or stylesheet embeds. */
  embeds?: string[]
  /** Fetched because robots.txt or a sitemap index named it, not because a page linked it. */
  seed?: 'robots' | 'sitemap'
}

export interface CrawlResult {
  records: Map<string, CrawlRecord>
  requests: number
  notModified: number
  bytes: number
  pages: number
  assets: number
  errors: number
}

const MAX_LINKED_FROM = 10
/** Scheduling: pages found through links first (breadth first), then pages only a sitemap names, then assets. */
const SITEMAP_PRIORITY = 1_000_000
const ASSET_PRIORITY = 2_000_000
/** Sitemap indexes may nest; more than this many sitemap files is a loop or a generator gone wild. */
const MAX_SITEMAPS = 200

export interface CrawlContext {
  options: RenderOptions
  store: StateStore
  previous?: RenderState
  /** Where non-HTML, non-CSS bodies are written until the writer moves them into the snapshot. */
  incoming: string
  signal?: AbortSignal
  onProgress?: (progress: RenderProgress) => void
}

export class Crawler {
  readonly records = new Map<string, CrawlRecord>()
  private readonly fetcher: Fetcher
  private readonly limit: ReturnType<typeof pLimit>
  private readonly queue = new PriorityQueue<() => Promise<void>>()
  private readonly abort = new AbortController()
  private scope: Scope
  private fatal: MirrorError | undefined
  private active = 0
  private idle: (() => void) | undefined
  private pagesQueued = 0
  private sitemapsSeen = new Set<string>()
  private notModified = 0
  private bytes = 0
  private fetchedPages = 0
  private fetchedAssets = 0
  private errors = 0
  private incomingCount = 0
  private lastProgress = 0

  constructor(private readonly ctx: CrawlContext) {
    const o = ctx.options
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, this.abort.signal]) : this.abort.signal
    // Every request in flight listens for the abort; more than ten at once is the design, not a leak.
    setMaxListeners(0, signal)
    this.fetcher = new Fetcher({
      origin: o.site.origin,
      headers: o.headers,
      userAgent: o.userAgent,
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      concurrency: o.concurrency,
      rate: o.rate,
      signal,
    })
    this.limit = pLimit(o.concurrency)
    this.scope = createScope({exclude: o.exclude, defaultExclude: o.defaultExclude})
  }

  /** Crawls everything reachable; rejects with RENDER_FAILED, UNREACHABLE or INTERRUPTED. */
  async run(): Promise<CrawlResult> {
    const o = this.ctx.options
    try {
      await fs.mkdir(this.ctx.incoming, {recursive: true})
      const robots = o.robotsTxt || o.sitemap ? await this.fetchRobots() : ALLOW_ALL
      this.scope = createScope({exclude: o.exclude, defaultExclude: o.defaultExclude, robots: o.robotsTxt ? robots : undefined})
      for (const entry of o.entries) this.want(entry, {kind: 'page', depth: 0, trail: 0})
      if (o.sitemap) {
        const seeds = new Set([new URL('/sitemap.xml', o.site.origin).href, ...robots.sitemaps])
        for (const seed of seeds) this.queueSitemap(seed)
      }
      await this.drain()
      if (this.fatal) throw this.fatal
      this.checkEntries()
      return {
        records: this.records,
        requests: this.fetcher.requests,
        notModified: this.notModified,
        bytes: this.bytes,
        pages: this.fetchedPages,
        assets: this.fetchedAssets,
        errors: this.errors,
      }
    } catch (error) {
      this.abort.abort()
      throw error
    } finally {
      this.fetcher.close()
    }
  }

  private drain(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise((resolve) => {
      this.idle = resolve
    })
  }

  /**
   * Queues a task; each free connection runs the best task queued at that moment, not the
   * oldest: a pagination chain then moves on while hundreds of images wait.
   */
  private schedule(priority: number, task: () => Promise<void>): void {
    this.active++
    this.queue.push(priority, task)
    this.limit(async () => {
      const next = this.queue.pop()!
      if (this.fatal || this.ctx.signal?.aborted) return
      await next()
    })
      .catch((error: unknown) => this.fail(toMirrorError(error)))
      .finally(() => {
        this.active--
        this.progress()
        if (this.active === 0) this.idle?.()
      })
  }

  /** Stops the crawl: nothing more is fetched and requests in flight are aborted. */
  private fail(error: MirrorError): void {
    if (this.fatal) return
    this.fatal = this.ctx.signal?.aborted ? new MirrorError('INTERRUPTED', 'render interrupted') : error
    // Queued tasks see `fatal` and return at once; clearing p-limit's queue instead would leave their promises unsettled.
    this.abort.abort()
  }

  private progress(): void {
    if (!this.ctx.onProgress) return
    const now = Date.now()
    if (now - this.lastProgress < 100) return
    this.lastProgress = now
    this.ctx.onProgress({
      phase: 'crawl',
      requests: this.fetcher.requests,
      pages: this.fetchedPages,
      assets: this.fetchedAssets,
      queued: this.active,
      errors: this.errors,
      bytes: this.bytes,
    })
  }

  private record(url: string): CrawlRecord {
    let record = this.records.get(url)
    if (!record) {
      record = {url, depth: Number.POSITIVE_INFINITY, trail: 0, kind: 'page', linkedFrom: [], queued: false}
      this.records.set(url, record)
    }
    return record
  }

  /**
   * Asks for a URL. It is fetched unless a rule or a limit says no; a URL first met beyond a
   * limit and later through a shorter path is fetched then.
   */
  private want(
    url: URL,
    how: {kind: 'page' | 'asset'; depth: number; trail: number; from?: string; nofollow?: boolean; chain?: boolean; sitemap?: boolean},
  ): CrawlRecord {
    const record = this.record(url.href)
    if (how.from && record.linkedFrom.length < MAX_LINKED_FROM && !record.linkedFrom.includes(how.from)) record.linkedFrom.push(how.from)
    // A queued URL keeps its place: moving sitemap seeds up when a page links them would put them ahead of the chains that find new pages.
    if (record.queued) return record
    if (how.nofollow) {
      record.skip ??= 'nofollow'
      return record
    }
    const excluded = this.scope.check(url)
    if (excluded) {
      record.skip = excluded
      return record
    }
    const o = this.ctx.options
    if (how.kind === 'page') {
      const cut: CutReason | undefined =
        how.depth > o.maxDepth ? 'depth' : how.trail > o.calendarDepth ? 'calendar' : this.pagesQueued >= o.maxPages ? 'pages' : undefined
      if (cut) {
        if (how.depth < record.depth) record.depth = how.depth
        record.skip = cut
        return record
      }
      this.pagesQueued++
    }
    record.queued = true
    record.skip = undefined
    record.kind = how.kind
    record.depth = how.depth
    record.trail = how.trail
    this.schedule(priorityOf(how), () => this.fetchOne(record))
    return record
  }

  private async fetchOne(record: CrawlRecord): Promise<void> {
    const url = new URL(record.url)
    const previous = this.ctx.previous?.resources[record.url]
    const conditional = previous ? await this.conditionalFor(previous) : undefined
    let response: FetchResponse
    try {
      response = await this.fetcher.get(url, conditional)
    } catch (error) {
      const failure = toMirrorError(error)
      // An origin that refuses connections is down: the snapshot would be missing an unknown part of the site.
      if (failure.code === 'UNREACHABLE' || failure.code === 'INTERRUPTED') throw failure
      this.errors++
      record.outcome = {type: 'error', code: failure.code, message: failure.message}
      return
    }
    this.bytes += response.body.length
    const status = response.status
    if (status >= 300 && status < 400 && status !== 304) {
      const location = response.headers.location
      const target = location ? resolveUrl(location, url) : undefined
      if (!target) {
        this.errors++
        record.outcome = {type: 'error', status, code: 'BAD_REDIRECT', message: `HTTP ${status} without a usable Location`}
        return
      }
      record.outcome = {type: 'redirect', status, location: target.href}
      const onOrigin = onSite(this.ctx.options.site, target)
      // A redirect is the same link, not one more hop: the target keeps the depth.
      if (onOrigin) this.want(onOrigin, {kind: record.kind, depth: record.depth, trail: record.trail, from: record.url})
      return
    }
    if (status === 304 && previous && conditional) {
      this.notModified++
      await this.handleNotModified(record, previous, response)
      return
    }
    if (status >= 400 && status < 500) {
      record.outcome = {type: 'broken', status}
      return
    }
    if (status < 200 || status >= 300) {
      this.errors++
      record.outcome = {type: 'error', status, code: 'HTTP_ERROR', message: `HTTP ${status}`}
      return
    }
    await this.handleBody(record, response, false)
  }

  /** Validators only when we still have what a 304 would point at. */
  private async conditionalFor(previous: RenderState['resources'][string]): Promise<Conditional | undefined> {
    if (!previous.etag && !previous.lastModified) return undefined
    if (previous.kind === 'redirect' || !previous.rawHash) return undefined
    const rewritable = isHtmlType(previous.contentType) || isCssType(previous.contentType)
    if (rewritable) {
      if (!(await this.ctx.store.hasRaw(previous.rawHash))) return undefined
    } else {
      const stat = await fs.stat(join(this.ctx.options.source, previous.file)).catch(() => undefined)
      if (!stat || stat.size !== previous.size || stat.mtimeMs !== previous.mtimeMs) return undefined
    }
    return {etag: previous.etag, lastModified: previous.lastModified}
  }

  private async handleNotModified(record: CrawlRecord, previous: RenderState['resources'][string], response: FetchResponse): Promise<void> {
    const contentType = previous.contentType
    const rawHash = previous.rawHash!
    if (isHtmlType(contentType) || isCssType(contentType)) {
      const body = await this.ctx.store.getRaw(rawHash)
      if (!body) throw new MirrorError('INTERNAL', `cached body of ${record.url} vanished during the render`)
      const merged: FetchResponse = {
        ...response,
        status: 200,
        headers: {
          ...response.headers,
          'content-type': contentType,
          etag: response.headers.etag ?? previous.etag,
          'last-modified': response.headers['last-modified'] ?? previous.lastModified,
        },
        body,
      }
      await this.handleBody(record, merged, true)
      return
    }
    this.fetchedAssets++
    record.outcome = {
      type: 'asset',
      status: 200,
      contentType,
      etag: response.headers.etag ?? previous.etag,
      lastModified: response.headers['last-modified'] ?? previous.lastModified,
      rawHash,
      body: {previous: previous.file},
      size: previous.size,
      notModified: true,
    }
    // An unchanged sitemap still names the pages to crawl: read the copy in the snapshot.
    if (this.isSitemapUrl(new URL(record.url))) {
      const body = await fs.readFile(join(this.ctx.options.source, previous.file)).catch(() => undefined)
      if (body) this.readSitemap(record, body)
    }
  }

  private async handleBody(record: CrawlRecord, response: FetchResponse, notModified: boolean): Promise<void> {
    const url = new URL(record.url)
    const contentType = headerValue(response.headers['content-type'])
    const rawHash = sha256(response.body)
    const common = {
      status: response.status,
      contentType,
      etag: headerValue(response.headers.etag),
      lastModified: headerValue(response.headers['last-modified']),
      rawHash,
      size: response.body.length,
      notModified,
    }
    if (isHtmlType(contentType)) {
      await this.handlePage(record, url, response, common)
      return
    }
    if (isCssType(contentType)) {
      this.fetchedAssets++
      if (!notModified) await this.ctx.store.putRaw(rawHash, response.body)
      const charset = charsetOf(contentType) ?? /^@charset\s+"([^"]+)"/i.exec(response.body.toString('latin1', 0, 100))?.[1]
      record.outcome = {type: 'asset', ...common, body: {cache: true}, charset}
      record.embeds = []
      for (const ref of cssUrls(response.body.toString('latin1'), charset)) {
        const target = resolveUrl(ref.url, url)
        const onOrigin = target && onSite(this.ctx.options.site, target)
        if (!onOrigin) continue
        record.embeds.push(onOrigin.href)
        this.want(onOrigin, {kind: 'asset', depth: record.depth, trail: 0, from: record.url})
      }
      return
    }
    this.fetchedAssets++
    const incoming = join(this.ctx.incoming, `${++this.incomingCount}-${randomBytes(3).toString('hex')}`)
    await fs.writeFile(incoming, response.body)
    record.outcome = {type: 'asset', ...common, body: {incoming}}
    if (this.isSitemapUrl(url)) this.readSitemap(record, response.body)
  }

  private async handlePage(record: CrawlRecord, url: URL, response: FetchResponse, common: Omit<SavedOutcome, 'type' | 'body'>): Promise<void> {
    const o = this.ctx.options
    const html = response.body.toString('latin1')
    const charset = charsetOf(common.contentType) ?? sniffCharset(html) ?? 'utf-8'
    const scan = scanHtml(html, charset)
    const robotsHeader = (headerValue(response.headers['x-robots-tag']) ?? '').toLowerCase()
    const noindex = o.robotsMeta && (scan.noindex || /\b(noindex|none)\b/.test(robotsHeader))
    const nofollow = o.robotsMeta && (scan.nofollow || /\b(nofollow|none)\b/.test(robotsHeader))
    let base = url
    if (scan.base) {
      try {
        base = new URL(scan.base, url)
      } catch {
        // An unparsable <base> is ignored by browsers too.
      }
    }
    if (noindex) {
      record.outcome = {type: 'noindex', status: response.status}
    } else {
      this.fetchedPages++
      if (!common.notModified) await this.ctx.store.putRaw(common.rawHash, response.body)
      record.outcome = {type: 'page', ...common, body: {cache: true}, charset, base: scan.base === undefined ? undefined : base.href}
      record.embeds = []
    }
    const family = dateFamily(url)
    const shape = shapeOf(url)
    for (const ref of scan.refs) {
      if (ref.kind === 'other') continue
      const target = resolveUrl(ref.url, base)
      const onOrigin = target && onSite(o.site, target)
      if (!onOrigin) continue
      if (ref.kind === 'asset') {
        // A page that is not saved needs none of its assets.
        if (noindex) continue
        record.embeds!.push(onOrigin.href)
        this.want(onOrigin, {kind: 'asset', depth: record.depth, trail: 0, from: record.url})
        continue
      }
      if (ref.self && onOrigin.href === record.url) continue
      const targetFamily = dateFamily(onOrigin)
      const trail = targetFamily !== undefined && targetFamily === family ? record.trail + 1 : 0
      this.want(onOrigin, {
        kind: 'page',
        depth: record.depth + 1,
        trail,
        from: record.url,
        nofollow: nofollow || (o.nofollow && ref.nofollow),
        chain: shapeOf(onOrigin) === shape,
      })
    }
  }

  private async fetchRobots(): Promise<Robots> {
    const o = this.ctx.options
    const url = new URL('/robots.txt', o.site.origin)
    const record = this.record(url.href)
    record.queued = true
    record.kind = 'asset'
    record.depth = 0
    record.seed = 'robots'
    let response: FetchResponse
    try {
      response = await this.fetcher.get(url)
    } catch (error) {
      const failure = toMirrorError(error)
      throw new MirrorError(failure.code === 'INTERRUPTED' ? 'INTERRUPTED' : 'RENDER_FAILED', `cannot reach the origin ${o.site.origin}: ${failure.message}`, {
        cause: error,
        retryable: true,
        suggestion: 'Check that the origin is running and that render.origin is right.',
      })
    }
    this.bytes += response.body.length
    if (response.status !== 200) {
      // No robots.txt (or a broken one): everything is allowed, and there is nothing to save.
      record.outcome = response.status >= 400 && response.status < 500 ? {type: 'broken', status: response.status} : {type: 'error', status: response.status, code: 'HTTP_ERROR', message: `HTTP ${response.status}`}
      record.skip = undefined
      return ALLOW_ALL
    }
    await this.handleBody(record, response, false)
    return parseRobots(response.body.toString('utf8'), o.userAgent)
  }

  private isSitemapUrl(url: URL): boolean {
    return this.sitemapsSeen.has(url.href)
  }

  private queueSitemap(location: string): void {
    const target = resolveUrl(location, this.ctx.options.site.origin)
    const onOrigin = target && onSite(this.ctx.options.site, target)
    if (!onOrigin || this.sitemapsSeen.has(onOrigin.href) || this.sitemapsSeen.size >= MAX_SITEMAPS) return
    if (this.scope.check(onOrigin)) return
    this.sitemapsSeen.add(onOrigin.href)
    const record = this.record(onOrigin.href)
    if (record.queued) return
    record.queued = true
    record.kind = 'asset'
    record.depth = 0
    record.seed = 'sitemap'
    this.schedule(0, () => this.fetchOne(record))
  }

  private readSitemap(record: CrawlRecord, body: Buffer): void {
    let parsed
    try {
      parsed = parseSitemap(body)
    } catch {
      return
    }
    for (const location of parsed.sitemaps) this.queueSitemap(location)
    for (const location of parsed.urls) {
      const target = resolveUrl(location, record.url)
      const onOrigin = target && onSite(this.ctx.options.site, target)
      if (onOrigin) this.want(onOrigin, {kind: 'page', depth: 0, trail: 0, sitemap: true})
    }
  }

  /** The render fails when an entry did not lead to a saved page. */
  private checkEntries(): void {
    for (const entry of this.ctx.options.entries) {
      let record = this.records.get(entry.href)
      const path = entry.pathname + entry.search
      for (let hops = 0; record?.outcome?.type === 'redirect' && hops < 10; hops++) record = this.records.get(record.outcome.location)
      const outcome = record?.outcome
      if (outcome?.type === 'page' || outcome?.type === 'noindex') continue
      const what = !record
        ? 'redirects off the origin'
        : record.skip
          ? `is not fetched (${record.skip})`
          : outcome?.type === 'error'
            ? outcome.status
              ? `answered HTTP ${outcome.status}`
              : outcome.message
            : outcome?.type === 'broken'
              ? `answered HTTP ${outcome.status}`
              : outcome?.type === 'asset'
                ? `is not an HTML page (${essence(outcome.contentType) ?? 'no content type'})`
                : 'was not rendered'
      throw new MirrorError('RENDER_FAILED', `entry ${path} ${what}; the snapshot was left as it was`, {
        retryable: outcome?.type === 'error',
        suggestion: record?.skip ? 'Change render.entry, render.exclude or robots.txt so the entry is fetched.' : 'Fix the page on the origin (or render.entry), then render again.',
      })
    }
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '')
  return match?.[1].toLowerCase()
}

/** A URL with its numbers blanked: `/blog/?page=3` and `/blog/?page=4` share one. */
function shapeOf(url: URL): string {
  return (url.pathname + url.search).replace(/\d+/g, '#')
}

/**
 * Lower runs first. Pages by depth, so depth limits see the shortest path; at one depth a link
 * of the page's own shape (the next page of a listing) goes before the rest, so chains of
 * pages are not stuck behind everything each page links.
 */
function priorityOf(how: {kind: 'page' | 'asset'; depth: number; chain?: boolean; sitemap?: boolean}): number {
  if (how.kind === 'asset') return ASSET_PRIORITY + how.depth
  if (how.sitemap) return SITEMAP_PRIORITY
  return how.depth * 2 + (how.chain ? 0 : 1)
}
