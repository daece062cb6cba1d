// The renderer's entry point: crawl `config.render.origin` into a staging directory beside
// `config.source`, swap it in only when the crawl succeeded, and report. A failed or
// interrupted render leaves the previous snapshot exactly as it was.

import * as fs from 'node:fs/promises'

import type {Config} from '../config/load.js'
import {MirrorError, toMirrorError} from '../errors.js'
import {Crawler, type CrawlRecord} from './crawler.js'
import {resolveOptions} from './options.js'
import type {CutReason, RenderProgress, RenderReport} from './report.js'
import type {ExcludeReason} from './scope.js'
import {createStaging, hasContent, lockRender, recover, removeStaging, swapInto} from './staging.js'
import {StateStore} from './state.js'
import {pathAndQuery} from './urls.js'
import {writeSnapshot} from './writer.js'

export type {RenderProgress, RenderReport} from './report.js'
export {formatRenderReport} from './report.js'

export interface RenderSiteOptions {
  /** Aborting stops the crawl; the render then rejects with INTERRUPTED and changes nothing. */
  signal?: AbortSignal
  onProgress?: (progress: RenderProgress) => void
}

const CUT_REASONS: ReadonlySet<string> = new Set<CutReason>(['depth', 'pages', 'calendar'])

/**
 * Renders `config.render` into `config.source`. Rejects with CONFIG_INVALID or USAGE (bad render
 * config), LOCKED (another render runs), RENDER_FAILED (an entry failed, the origin went away,
 * `source` holds files a render did not write) or INTERRUPTED; in every case the previous
 * snapshot is left untouched.
 */
export async function renderSite(config: Config, options: RenderSiteOptions = {}): Promise<RenderReport> {
  const startedAt = new Date()
  const o = resolveOptions(config)
  const store = new StateStore(o.stateDir)
  const release = await lockRender(store.dir)
  let staging: string | undefined
  let incoming: string | undefined
  try {
    await recover(o.source)
    const previous = await store.load()
    const known = previous?.source === o.source ? previous : undefined
    if (!known && (await hasContent(o.source))) {
      throw new MirrorError('RENDER_FAILED', `${o.source} holds files that mirror render did not write; a render replaces the whole directory`, {
        suggestion: 'Move those files elsewhere (or point "source" at a new directory), then render again.',
      })
    }
    staging = await createStaging(o.source)
    incoming = `${staging}.incoming`
    const crawler = new Crawler({options: o, store, previous: known, incoming, signal: options.signal, onProgress: options.onProgress})
    const crawl = await crawler.run()
    throwIfAborted(options.signal)
    const progressBase = {requests: crawl.requests, pages: crawl.pages, assets: crawl.assets, queued: 0, errors: crawl.errors, bytes: crawl.bytes}
    const written = await writeSnapshot({options: o, store, previous: known, staging, records: crawl.records, onProgress: options.onProgress, progressBase})
    throwIfAborted(options.signal)
    options.onProgress?.({...progressBase, pages: written.pages, assets: written.assets, phase: 'swap'})
    await swapInto(staging, o.source)
    staging = undefined
    // The state follows the snapshot: written after the swap, it never describes files that are not there.
    await store.save({...written.state, renderedAt: startedAt.toISOString()})
    await store.prune(new Set(Object.values(written.state.resources).flatMap((r) => (r.rawHash ? [r.rawHash] : []))))

    const records = [...crawl.records.values()].sort((a, b) => (a.url < b.url ? -1 : 1))
    const linked = (r: CrawlRecord) => r.linkedFrom.map(pathAndQuery)
    const fromPage = (r: CrawlRecord) => !r.seed
    return {
      ok: true,
      origin: o.site.origin,
      source: o.source,
      startedAt: startedAt.toISOString(),
      durationMs: Date.now() - startedAt.getTime(),
      requests: crawl.requests,
      notModified: crawl.notModified,
      bytes: crawl.bytes,
      pages: written.pages,
      assets: written.assets,
      files: {written: written.written, unchanged: written.unchanged, removed: written.removed},
      redirects: written.redirects,
      errors: records.filter((r) => r.outcome?.type === 'error' && fromPage(r)).map((r) => {
        const outcome = r.outcome as Extract<CrawlRecord['outcome'], {type: 'error'}>
        const kept = written.kept.get(r.url)
        return {url: pathAndQuery(r.url), ...(outcome.status && {status: outcome.status}), code: outcome.code, message: outcome.message, linkedFrom: linked(r), ...(kept && {kept})}
      }),
      broken: records.flatMap((r) => (r.outcome?.type === 'broken' && fromPage(r) ? [{url: pathAndQuery(r.url), status: r.outcome.status, linkedFrom: linked(r)}] : [])),
      excluded: records.flatMap((r) => {
        if (r.outcome?.type === 'noindex') return [{url: pathAndQuery(r.url), reason: 'noindex' as ExcludeReason, linkedFrom: linked(r)}]
        return !r.queued && r.skip && !CUT_REASONS.has(r.skip) ? [{url: pathAndQuery(r.url), reason: r.skip as ExcludeReason, linkedFrom: linked(r)}] : []
      }),
      cutOff: records.flatMap((r) => (!r.queued && r.skip && CUT_REASONS.has(r.skip) ? [{url: pathAndQuery(r.url), reason: r.skip as CutReason, linkedFrom: linked(r)}] : [])),
      embeds: written.embeds,
      ...(written.redirectMap && {redirectMap: written.redirectMap}),
    }
  } catch (error) {
    throw explain(error, o.site.origin)
  } finally {
    if (staging) await removeStaging(staging).catch(() => undefined)
    if (incoming) await fs.rm(incoming, {recursive: true, force: true}).catch(() => undefined)
    await release()
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new MirrorError('INTERRUPTED', 'render interrupted; the snapshot was left as it was')
}

/** Errors from deep in the crawl, said in the user's terms. */
function explain(error: unknown, origin: string): MirrorError {
  const e = toMirrorError(error)
  if (e.code === 'UNREACHABLE' || e.code === 'CONNECTION_LOST' || e.code === 'TIMEOUT') {
    return new MirrorError('RENDER_FAILED', `the origin ${origin} stopped answering during the render (${e.message}); the snapshot was left as it was`, {
      retryable: true,
      cause: error,
      suggestion: 'Check that the origin is running, then render again.',
    })
  }
  if (e.code === 'INTERRUPTED') return new MirrorError('INTERRUPTED', 'render interrupted; the snapshot was left as it was', {cause: error})
  return e
}
