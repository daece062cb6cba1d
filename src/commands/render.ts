// `mirror render`: flags over the config's render block, then renderSite() and its report as
// text or --json. The crawl, the rewriting and the swap are src/render's work, not this file's.

import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {MirrorError} from '../errors.js'
import {createRenderProgress} from '../render/progress.js'
import {untilStopped} from '../util/process.js'

export default class Render extends BaseCommand<typeof Render> {
  static override summary = 'Crawl the origin (the master\'s dynamic site) into the source as a static snapshot.'
  static override description = `Fetches the pages reachable from render.entry (and the sitemap), with their images, stylesheets, scripts and media, rewrites links to the saved files, and replaces the source directory only when the crawl succeeded. Files whose content did not change keep their bytes and mtime, so the next publish sends only real changes.
Edit, login, history, diff and sort links, robots.txt exclusions and nofollow links are not fetched; depth, page and calendar limits cut off endless URL spaces. Both are listed in the report.`
  static override examples = [
    '<%= config.bin %> render',
    '<%= config.bin %> render --json',
    '<%= config.bin %> render --origin http://127.0.0.1:8080 --max-pages 500',
  ]

  static override flags = {
    origin: Flags.string({description: 'crawl this origin instead of render.origin'}),
    entry: Flags.string({description: 'start here instead of render.entry (repeatable)', multiple: true}),
    concurrency: Flags.integer({description: 'requests in flight at once', min: 1, max: 64}),
    'max-pages': Flags.integer({description: 'save at most this many pages; cut off the rest', min: 1}),
    'max-depth': Flags.integer({description: 'follow links at most this many hops from an entry', min: 0}),
    verbose: Flags.boolean({char: 'v', description: 'list every error, redirect and cut-off URL, however many'}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const config = await this.loadConfig()
    const overrides = Object.fromEntries(
      Object.entries({
        origin: flags.origin,
        entry: flags.entry,
        concurrency: flags.concurrency,
        maxPages: flags['max-pages'],
        maxDepth: flags['max-depth'],
      }).filter(([, value]) => value !== undefined),
    )
    if (!config.render && !flags.origin) {
      throw new MirrorError('USAGE', 'the config has no "render" block, so there is nothing to render', {
        suggestion: 'Add render: {origin: http://...} to the config, or pass --origin.',
      })
    }
    const [{renderSchema}, {formatRenderReport, renderSite}] = await Promise.all([import('../config/render-schema.js'), import('../render/index.js')])
    const parsed = renderSchema.safeParse({...config.render, ...overrides})
    if (!parsed.success) {
      const problem = parsed.error.issues[0]
      throw new MirrorError('USAGE', `render.${problem.path.join('.')}: ${problem.message}`)
    }
    const progress = createRenderProgress(!flags.json)
    try {
      const report = await untilStopped((signal) => renderSite({...config, render: parsed.data}, {signal, onProgress: (p) => progress.update(p)}))
      progress.done()
      if (flags.json) await this.printJson(report)
      else this.log(formatRenderReport(report, flags.verbose ? Number.POSITIVE_INFINITY : 10))
    } finally {
      progress.done()
    }
  }
}
