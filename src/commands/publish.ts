import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import type {Config} from '../config/load.js'

export default class Publish extends BaseCommand<typeof Publish> {
  static override summary = 'Push the source to every target: only what changed, customizations on the slaves kept.'
  static override description =
    'Scans the source once, plans each target three-way (source now, what was last published there, what the slave has now) and pushes to all targets in parallel. Files changed on a slave since the last publish are kept and reported.'
  static override examples = [
    '<%= config.bin %> publish',
    '<%= config.bin %> publish --dry-run',
    '<%= config.bin %> publish --target cache1 --target cache2',
    '<%= config.bin %> publish --force --max-delete 100',
  ]

  static override flags = {
    target: Flags.string({char: 't', description: 'publish only to this target (repeatable)', multiple: true}),
    'dry-run': Flags.boolean({char: 'n', description: 'print the plan; change nothing anywhere'}),
    force: Flags.boolean({description: 'overwrite files customized on a slave, keeping a backup of them in its state'}),
    verify: Flags.boolean({description: 'compare every file on every slave instead of trusting the manifest (repairs missing files)'}),
    'max-delete': Flags.integer({description: 'stop before deleting more than this many files on a target', min: 0}),
    'break-lock': Flags.boolean({description: 'take over a target lock left by a publisher that is gone'}),
    render: Flags.boolean({description: 'render the origin first (needs a render block); publish only if it succeeded'}),
    verbose: Flags.boolean({char: 'v', description: 'list every path of the plan, however many'}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const config = await this.loadConfig()
    if (flags.render || config.render?.beforePublish) await this.renderFirst(config)
    // The walk (on its own thread) and the connections start before the rest of the publish loads.
    const {startPublish} = await import('../cli/head-start.js')
    const started = await startPublish(config, flags.target)
    const {runPublish} = await import('../cli/run-publish.js')
    await runPublish(
      config,
      {
        targets: flags.target,
        dryRun: flags['dry-run'],
        force: flags.force,
        verify: flags.verify,
        maxDelete: flags['max-delete'],
        breakLock: flags['break-lock'],
        json: flags.json,
        verbose: flags.verbose,
      },
      started,
    )
  }

  private async renderFirst(config: Config): Promise<void> {
    const {renderBeforePublish} = await import('../render/before-publish.js')
    await renderBeforePublish(config, {json: this.flags.json})
  }
}
