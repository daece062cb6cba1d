import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {exitCodeFor, toMirrorError} from '../errors.js'
import type {WatchEvent} from '../watch/events.js'
import {formatWatchEvent} from '../watch/format.js'
import type {WatchSession} from '../watch/run-watch.js'

export default class Watch extends BaseCommand<typeof Watch> {
  static override summary = 'Publish changes to the source as they happen, until stopped.'
  static override description = `Publishes everything once at start (without waiting for the watcher to crawl the tree), then publishes each batch of changed files, only those, to the targets they belong to. Connections stay open between batches. A target that fails keeps its pending changes (also across restarts, in the state directory) and is retried with backoff while the others go on. A periodic reconcile compares every slave in full and repairs what is missing or damaged.

Prints one line per published batch; with --json, one JSON object per event, one per line. Ctrl-C or SIGTERM finishes the files in flight, releases the locks and exits 0. SIGHUP re-renders (with --render) or reconciles now.`
  static override examples = [
    '<%= config.bin %> watch',
    '<%= config.bin %> watch --json >> /var/log/mirror-watch.jsonl',
    '<%= config.bin %> watch --target cache1 --debounce 50',
    '<%= config.bin %> watch --render --render-hook 8787',
  ]

  static override flags = {
    target: Flags.string({char: 't', description: 'watch for this target only (repeatable)', multiple: true}),
    debounce: Flags.integer({description: 'milliseconds of quiet before a batch is published (default: watch.debounce, 100)', min: 0}),
    render: Flags.boolean({description: 're-render the origin every watch.renderInterval seconds (and on SIGHUP); needs a render block'}),
    'render-hook': Flags.integer({description: 'also re-render on POST http://127.0.0.1:<port>/render (0 picks a free port)', min: 0, max: 65535, dependsOn: ['render']}),
    'break-lock': Flags.boolean({description: 'take over target locks left by a publisher that is gone, on the first publish'}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const config = await this.loadConfig()
    const print = (event: WatchEvent) => {
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({time: new Date().toISOString(), ...event})}\n`)
        return
      }
      const line = formatWatchEvent(event)
      if (line === undefined) return
      if (event.event === 'warning' || event.event === 'error') process.stderr.write(`${line}\n`)
      else this.log(line)
    }
    let session: WatchSession
    try {
      const {startWatch} = await import('../watch/run-watch.js')
      session = await startWatch(config, {
        targets: flags.target,
        debounceMs: flags.debounce,
        breakLock: flags['break-lock'],
        render: flags.render ? {intervalMs: config.watch.renderInterval * 1000, hookPort: flags['render-hook']} : undefined,
        onEvent: print,
      })
    } catch (error) {
      // Keep --json one object per line, for whoever reads the stream.
      const mirrorError = toMirrorError(error)
      if (flags.json) print({event: 'error', error: mirrorError.toJSON()})
      process.stderr.write(`mirror: ${mirrorError.describe()}\n`)
      process.exitCode = exitCodeFor(mirrorError)
      return
    }

    await new Promise<void>((resolve) => {
      let signals = 0
      const stop = () => {
        // A second Ctrl-C means "now": what landed is recorded, the next start resumes.
        if (++signals > 1) process.exit(130)
        session.stop().then(resolve, (error) => {
          print({event: 'error', error: {code: 'INTERNAL', message: String(error)}})
          resolve()
        })
      }
      const poke = () => session.poke('SIGHUP')
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      process.on('SIGHUP', poke)
    })
    process.exitCode = 0
  }
}
