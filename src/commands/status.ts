import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../errors.js'
import type {TargetStatus} from '../sync/status.js'
import {showPath} from '../ui/format.js'

export default class Status extends BaseCommand<typeof Status> {
  static override summary = 'Per target: reachable or not, last publish, and drift from what was published.'
  static override description =
    'Lists files customized on each slave (kept by publish), published files missing there (put back by `mirror publish --verify`), files only the slave has (never touched), and temporary files left by an interrupted publish.'
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --deep --target img', '<%= config.bin %> status --json']

  static override flags = {
    target: Flags.string({char: 't', description: 'only this target (repeatable)', multiple: true}),
    deep: Flags.boolean({description: 'compare content by hash, not by size and time (reads every file)'}),
  }

  async run(): Promise<void> {
    const config = await this.loadConfig()
    const {targetStatuses} = await import('../sync/status.js')
    const statuses = await targetStatuses(config, {targets: this.flags.target, deep: this.flags.deep})
    const down = statuses.filter((s) => !s.reachable || s.error)
    process.exitCode = down.length === 0 ? ExitCode.OK : down.length === statuses.length ? ExitCode.FAILED : ExitCode.PARTIAL
    if (this.flags.json) {
      await this.printJson({ok: down.length === 0, targets: statuses})
      return
    }
    for (const status of statuses) this.log(formatStatus(status))
  }
}

function formatStatus(s: TargetStatus): string {
  const lines = [`${s.target}  ${s.url}`]
  if (s.error) {
    lines.push(`  ${s.reachable ? 'error' : 'unreachable'}: ${s.error.message}`)
    return lines.join('\n')
  }
  lines.push(s.lastPublish ? `  last publish: ${s.lastPublish.at} by ${s.lastPublish.by} (generation ${s.lastPublish.generation}, ${s.lastPublish.files} files)` : '  never published')
  if (s.manifestDamaged) lines.push('  manifest damaged on the slave: the next publish rebuilds it')
  if (s.lockedBy) lines.push(`  locked by ${s.lockedBy.user}@${s.lockedBy.host} (pid ${s.lockedBy.pid}) since ${s.lockedBy.since}`)
  const list = (label: string, paths: string[]) => {
    if (paths.length === 0) return
    lines.push(`  ${label}: ${paths.length}`)
    for (const p of paths.slice(0, 20)) lines.push(`    ${showPath(p)}`)
    if (paths.length > 20) lines.push(`    … and ${paths.length - 20} more (--json lists all)`)
  }
  list('customized on the slave (kept)', s.customized)
  list('missing on the slave (mirror publish --verify repairs)', s.missing)
  list('only on the slave (never touched)', s.extra)
  list('leftover temporary files (mirror publish --verify removes)', s.leftovers)
  if (s.customized.length + s.missing.length + s.leftovers.length === 0) lines.push(`  in sync${s.deep ? ' (compared by content)' : ''}`)
  return lines.join('\n')
}
