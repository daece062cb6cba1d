// The base of every command: the shared flags (--config, --json), config loading, and the one
// place where errors become stderr text (or JSON) and an exit code.

import {Command} from '@oclif/core/command'
import * as Errors from '@oclif/core/errors'
import * as Flags from '@oclif/core/flags'
import type * as Interfaces from '@oclif/core/interfaces'

import {loadConfig, type Config} from '../config/load.js'
import {ExitCode, MirrorError} from '../errors.js'
import {writeJson} from '../ui/json-stream.js'
import {reportError} from './report-error.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    config: Flags.string({char: 'c', description: 'config file (default: mirror.config.yaml in the current directory)', helpGroup: 'GLOBAL'}),
    json: Flags.boolean({description: 'print the result as JSON on stdout; no progress bars', helpGroup: 'GLOBAL'}),
  }

  protected flags!: BaseFlags<T>
  protected args!: Interfaces.InferredArgs<T['args']>

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as Interfaces.InferredArgs<T['args']>
  }

  protected loadConfig(): Promise<Config> {
    return loadConfig({config: this.flags.config})
  }

  /** Writes one JSON document to stdout (in pieces: a big plan is hundreds of megabytes). */
  protected printJson(value: unknown): Promise<void> {
    return writeJson(process.stdout, value)
  }

  protected override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<void> {
    // oclif's own exits (help, version, this.exit) pass through untouched.
    if (err instanceof Errors.ExitError) throw err
    // Flag and argument parse errors are usage errors.
    if (err instanceof Errors.CLIError && !(err instanceof MirrorError)) {
      process.stderr.write(`mirror: ${err.message}\n`)
      process.exitCode = err.oclif?.exit === 2 || /flag|argument|Unexpected/i.test(err.message) ? ExitCode.USAGE : ExitCode.FAILED
      return
    }
    await reportError(err, {json: this.flags?.json})
  }
}
