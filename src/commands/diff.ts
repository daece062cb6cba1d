import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {formatPlan, formatWarnings} from '../ui/format.js'

export default class Diff extends BaseCommand<typeof Diff> {
  static override summary = 'Show the plan for every target, itemized; change nothing.'
  static override description = `One line per path that would change, with a code:
  + new        not on the slave yet
  > changed    changed on the master; the slave still has what was published
  - deleted    gone from the source; the slave still has what was published
  * repaired   published before, missing on the slave
  ! kept       changed on the slave since it was published: a local customization, left alone
  ! conflict   first publish and a different file is already there: left alone
  = adopted    the slave already has this content: recorded, nothing sent
Same as \`mirror publish --dry-run\`.`
  static override examples = ['<%= config.bin %> diff', '<%= config.bin %> diff --target img --json', '<%= config.bin %> diff --verify']

  static override flags = {
    target: Flags.string({char: 't', description: 'only this target (repeatable)', multiple: true}),
    force: Flags.boolean({description: 'plan as `publish --force` would'}),
    verify: Flags.boolean({description: 'compare every file on every slave instead of trusting the manifest'}),
  }

  async run(): Promise<void> {
    const config = await this.loadConfig()
    // The walk (on its own thread) and the connections start before the rest of the publish loads.
    const {startPublish} = await import('../cli/head-start.js')
    const started = await startPublish(config, this.flags.target)
    const {publish} = await import('../sync/publish.js')
    const result = await publish(config, {...started, targets: this.flags.target, dryRun: true, force: this.flags.force, verify: this.flags.verify})
    const failed = result.targets.filter((o) => o.error)
    process.exitCode = failed.length === 0 ? 0 : failed.length === result.targets.length ? 1 : 3
    if (this.flags.json) {
      await this.printJson({ok: failed.length === 0, ...result})
      return
    }
    for (const line of formatWarnings(result)) process.stderr.write(`${line}\n`)
    for (const outcome of result.targets) {
      if (outcome.plan) this.log(formatPlan(outcome.plan))
      else process.stderr.write(`mirror: target ${outcome.target}: ${outcome.error?.message}\n`)
    }
  }
}
