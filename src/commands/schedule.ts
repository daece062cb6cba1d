// `mirror schedule add | list | remove | run`: a cron entry (or systemd timer) that publishes
// this config on a schedule. Adapters over src/schedule/.

import {resolve} from 'node:path'

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {loadConfig, type Config} from '../config/load.js'
import {addCron, addSystemd, listSchedules, removeCron, removeUnits} from '../schedule/manage.js'
import {systemCrontab} from '../schedule/crontab.js'
import {defaultUnitDir} from '../schedule/systemd.js'
import {MirrorError} from '../errors.js'

const dirFlag = Flags.string({description: 'where the systemd unit files go (default: ~/.config/systemd/user)'})

export class ScheduleAdd extends BaseCommand<typeof ScheduleAdd> {
  static override summary = 'Publish this config on a schedule: add (or replace) its entry in your crontab.'
  static override description =
    'The entry runs `mirror schedule run` with absolute paths to node, mirror and the config, appending to a log file. Your other crontab lines are kept as they are; adding again replaces mirror\'s entry for this config. With --systemd, writes a service + timer pair instead.'
  static override examples = [
    '<%= config.bin %> schedule add "*/10 * * * *"',
    '<%= config.bin %> schedule add @hourly --log /var/log/mirror.log',
    '<%= config.bin %> schedule add "0 3 * * *" --systemd',
  ]
  static override args = {schedule: Args.string({description: 'cron schedule: five fields ("*/10 * * * *") or @hourly, @daily…', required: true})}
  static override flags = {
    log: Flags.string({description: 'log file the scheduled runs append to (default: <state dir>/schedule.log)'}),
    systemd: Flags.boolean({description: 'write a systemd user service + timer instead of a crontab entry'}),
    dir: dirFlag,
  }

  async run(): Promise<void> {
    const config = await this.loadConfig()
    const {flags} = this
    if (flags.dir && !flags.systemd) throw new MirrorError('USAGE', '--dir goes with --systemd')
    const log = flags.log ? absolute(flags.log) : undefined
    const result = flags.systemd ? await addSystemd(config, this.args.schedule, absolute(flags.dir ?? defaultUnitDir())) : await addCron(config, systemCrontab(), this.args.schedule, log)
    if (flags.json) return this.printJson({ok: true, ...result})
    if (result.kind === 'cron') {
      this.log(`${result.replaced ? 'Replaced' : 'Added'} the crontab entry for ${config.file}:`)
      this.log(`  ${result.line}`)
      this.log(`Each run appends to ${result.log}; a failed run also prints to stderr, which cron mails to you.`)
      this.log('cron has no ssh-agent: the targets need an IdentityFile (in ~/.ssh/config) without a passphrase.')
    } else {
      this.log(`Wrote ${result.files!.join(' and ')} (schedule ${result.schedule}).`)
      this.log(`Enable it with:\n  ${result.next}`)
    }
  }
}

export class ScheduleList extends BaseCommand<typeof ScheduleList> {
  static override summary = "List mirror's entries in your crontab (and its systemd timers)."
  static override examples = ['<%= config.bin %> schedule list', '<%= config.bin %> schedule list --json']
  static override flags = {dir: dirFlag}

  async run(): Promise<void> {
    const current = await optionalConfig(this.flags.config)
    const result = await listSchedules(current?.file, systemCrontab(), absolute(this.flags.dir ?? defaultUnitDir()))
    if (this.flags.json) return this.printJson({ok: true, ...result})
    if (result.cron.length === 0 && result.systemd.length === 0) {
      this.log('No mirror schedule (add one with `mirror schedule add "*/10 * * * *"`).')
      return
    }
    for (const entry of result.cron) {
      this.log(`cron     ${entry.schedule.padEnd(16)} ${entry.config}${entry.current ? '  (this config)' : ''}${entry.log ? `\n         log: ${entry.log}` : ''}`)
    }
    for (const unit of result.systemd) {
      this.log(`systemd  ${unit.calendar.padEnd(16)} ${unit.config}${unit.current ? '  (this config)' : ''}\n         ${unit.path}`)
    }
  }
}

export class ScheduleRemove extends BaseCommand<typeof ScheduleRemove> {
  static override summary = "Remove this config's entry from your crontab (or its systemd units)."
  static override examples = ['<%= config.bin %> schedule remove', '<%= config.bin %> schedule remove --all', '<%= config.bin %> schedule remove --systemd']
  static override flags = {
    all: Flags.boolean({description: "remove every mirror entry, whatever its config (other lines are kept)"}),
    systemd: Flags.boolean({description: "remove this config's systemd service + timer files"}),
    dir: dirFlag,
  }

  async run(): Promise<void> {
    const {flags} = this
    if (flags.systemd) {
      const config = await this.loadConfig()
      const removed = await removeUnits(config.file, absolute(flags.dir ?? defaultUnitDir()))
      if (flags.json) return this.printJson({ok: true, removed})
      this.log(removed.length > 0 ? `Removed ${removed.join(' and ')}.\nStop the timer if it is running: systemctl --user disable --now ${removed[0].split('/').pop()}` : 'No systemd units for this config.')
      return
    }
    const config = flags.all ? undefined : await this.loadConfig()
    const removed = await removeCron(systemCrontab(), config?.file)
    if (flags.json) return this.printJson({ok: true, removed})
    const what = config ? ` for ${config.file}` : ''
    this.log(removed > 0 ? `Removed ${removed} mirror entr${removed === 1 ? 'y' : 'ies'}${what} from the crontab.` : `No mirror entry${what} in the crontab.`)
  }
}

export class ScheduleRun extends BaseCommand<typeof ScheduleRun> {
  static override summary = 'What a schedule runs: one publish, skipped if the previous one is still running.'
  static override description =
    'Publishes with this config as `mirror publish` does, without progress bars. With --log, the report is appended there and only a failure is printed (on stderr, which cron mails). Exits with publish\'s exit code; 0 when skipped.'
  static override examples = ['<%= config.bin %> schedule run --log .mirror/schedule.log']
  static override flags = {log: Flags.string({description: 'append the report to this file instead of printing it'})}

  async run(): Promise<void> {
    const config = await this.loadConfig()
    const {scheduledRun} = await import('../schedule/scheduled-run.js')
    process.exitCode = await scheduledRun(config, {log: this.flags.log ? absolute(this.flags.log) : undefined})
  }
}

function absolute(path: string): string {
  return resolve(process.cwd(), path)
}

/** The config in use, when there is one: `list` works without. */
async function optionalConfig(named: string | undefined): Promise<Config | undefined> {
  try {
    return await loadConfig({config: named})
  } catch (error) {
    if (named) throw error
    return undefined
  }
}

export class Schedule extends BaseCommand<typeof Schedule> {
  static override summary = 'Publish on a schedule: a crontab entry (or a systemd timer) with a lock against overlap.'
  static override examples = ['<%= config.bin %> schedule add "*/10 * * * *"', '<%= config.bin %> schedule list', '<%= config.bin %> schedule remove']

  async run(): Promise<void> {
    const {Help} = await import('@oclif/core/help')
    await new Help(this.config).showHelp(['schedule'])
  }
}
