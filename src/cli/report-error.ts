// How a command that failed as a whole says so: one line on stderr naming what failed and what to
// do, the error as JSON on stdout with --json, and its exit code. From the oclif commands'
// catch, and from the head start's publish, which runs without oclif.

import {exitCodeFor, toMirrorError} from '../errors.js'
import {writeJson} from '../ui/json-stream.js'

export async function reportError(err: unknown, options: {json?: boolean}): Promise<void> {
  const error = toMirrorError(err)
  if (options.json) await writeJson(process.stdout, {ok: false, error: error.toJSON()})
  process.stderr.write(`mirror: ${error.describe()}\n`)
  if (error.code === 'INTERNAL' && err instanceof Error && err.stack && process.env.DEBUG) process.stderr.write(`${err.stack}\n`)
  process.exitCode = exitCodeFor(error)
}
