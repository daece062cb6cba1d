// A head start for `publish` and `diff`, begun by bin/run.js before oclif loads: the source walk
// and the targets' SSH handshakes start while oclif and the command load (about 0.15 s here,
// a fifth of a noop publish). It is a guess from argv alone and changes nothing anywhere: the
// command adopts it only when its parsed flags lead to the same config file and the same targets,
// and what is not adopted is closed unused. A plain `mirror publish` runs here in full, and
// oclif is never loaded (a third of a noop's time, a tenth of a small change's).

import {loadConfig, type Config} from '../config/load.js'
import {hashCacheFile} from '../sync/hash-cache.js'
import {closeOpening, openEarly, selectTargets, type OpeningTargets} from '../sync/opening.js'
import {walkConfigSource, type WalkedTree} from '../sync/walk-aside.js'

export interface HeadStart {
  walking: Promise<WalkedTree>
  opening: OpeningTargets
}

interface Started extends HeadStart {
  config: Config
  targets: string[]
  /** For a publish whose flags the clean-noop answer can take: those flags. */
  plain?: PlainFlags
}

let pending: Promise<Started | undefined> | undefined

/**
 * Starts the walk and the connections for `command` run with `argv`, when argv is plain enough
 * to read without oclif. Resolves once every connection is on its way (or there is no head
 * start): bin/run.js loads oclif only then, so that the handshakes' round trips overlap oclif's
 * loading instead of waiting behind it (a fifth of a second, more on a distant link).
 */
export async function startHeadStart(command: string, argv: readonly string[]): Promise<void> {
  const flags = readFlags(argv)
  if (!flags) return
  pending = (async () => {
    const config = await loadConfig({config: flags.config})
    // A render first changes the source: a walk started now would be of the old one.
    if (command === 'publish' && config.render?.beforePublish) return undefined
    // An unknown name throws here: no head start, and the command reports it.
    const selected = selectTargets(config, flags.targets)
    const plain = command === 'publish' ? flags.plain : undefined
    return {config, targets: flags.targets, plain, walking: walkConfigSource(config), opening: openEarly(config, selected)}
  })().catch(() => undefined)
  const started = await pending
  // A target is created (its module loaded) just before it connects.
  await Promise.all([...(started?.opening.values() ?? [])].map(({target}) => target.catch(() => {})))
  // What answers a clean noop loads while the tree is listed and the handshakes go on.
  if (started?.plain) {
    answering = loadAnswer()
    answering.catch(() => {})
  }
}

let answering: ReturnType<typeof loadAnswer> | undefined

const loadAnswer = () =>
  Promise.all([import('../sync/clean-noop.js'), import('../ui/progress.js'), import('./publish-exit.js'), import('../ui/publish-output.js')])

/**
 * The walk and the connections for a publish of `config` to `targets`: the head start when it
 * was made for exactly these (it is dropped otherwise), else a walk started now.
 */
export async function startPublish(config: Config, targets: readonly string[] | undefined): Promise<HeadStart | {walking: Promise<WalkedTree>}> {
  const started = await pending
  pending = undefined
  if (started) {
    const names = targets ?? []
    const same = sameConfig(started.config, config) && started.targets.length === names.length && names.every((n) => started.targets.includes(n))
    if (same) return {walking: started.walking, opening: started.opening}
    await drop(started)
  }
  return {walking: walkConfigSource(config)}
}

/**
 * Runs `mirror publish` here when its flags are plain (see readFlags), with the same output and
 * exit code as the command's, and resolves true; false when oclif must run the command (flags
 * it cannot read, no head start). A clean noop is answered without the publish itself
 * (cleanNoop); otherwise the files are hashed while the publish loads.
 */
export async function answerPlainPublish(): Promise<boolean> {
  const started = await pending
  const flags = started?.plain
  if (!started || !flags) return false
  const [{cleanNoop}, {createProgress}, {publishExitCode}, {showPublishResult}] = await (answering ?? loadAnswer())
  const progress = createProgress(!flags.json)
  let result
  try {
    const walked = await started.walking
    result = await cleanNoop(started.config, walked, started.opening, {targets: flags.targets, onEvent: (event) => progress.onEvent(event)})
    // Not a noop: hashing starts now (the publish asks for exactly this).
    if (!result) walked.prefetch({cacheFile: hashCacheFile(started.config.stateDir)})
  } catch {
    // A walk that failed, or anything unforeseen: the command meets it and reports it.
    progress.done()
    return false
  }
  progress.done()
  pending = undefined
  if (result) {
    process.exitCode = publishExitCode(result)
    await showPublishResult(result, process.exitCode === 0, flags)
    return true
  }
  const [{runPublish}, {reportError}] = await Promise.all([import('./run-publish.js'), import('./report-error.js')])
  try {
    await runPublish(started.config, flags, {walking: started.walking, opening: started.opening})
  } catch (error) {
    await reportError(error, flags)
  }
  return true
}

/** Closes what no command took (a flag error, --help, a mismatch), so the process can end. */
export async function dropHeadStart(): Promise<void> {
  const started = await pending
  pending = undefined
  if (started) await drop(started)
}

/** The same file, source, state, excludes and targets: a config edited between the two loads is not the same. */
function sameConfig(a: Config, b: Config): boolean {
  const where = (c: Config) => JSON.stringify([c.file, c.source, c.stateDir, c.exclude, c.targets.map((t) => [t.name, t.url])])
  return where(a) === where(b)
}

async function drop(started: Started): Promise<void> {
  await Promise.all([started.walking.then((walked) => walked.close(), () => {}), closeOpening(started.opening)])
}

/** The flags of a plain publish (see readFlags). */
interface PlainFlags {
  targets: string[]
  json: boolean
  verbose: boolean
}

const SHORT_FLAGS = new Map([
  ['-c', '--config'],
  ['-t', '--target'],
  ['-v', '--verbose'],
])

/**
 * The flags that decide what to walk and where to connect. Undefined when argv holds anything
 * this cannot read for sure (short flags bundled, help, a render first): no head start then.
 * `plain` is set when argv holds nothing but --config, --target, --json and --verbose, each read
 * for sure: a publish the clean-noop answer can take. Anything else (--dry-run, a typo, a flag
 * given twice, a value that looks like a flag) goes to oclif, which says what is wrong.
 */
function readFlags(argv: readonly string[]): {config?: string; targets: string[]; plain?: PlainFlags} | undefined {
  let config: string | undefined
  const targets: string[] = []
  const seen = new Set<string>()
  let plain = true
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const name = eq === -1 ? (SHORT_FLAGS.get(arg) ?? arg) : arg.slice(0, eq)
    if (name !== '--target' && seen.has(name)) plain = false
    seen.add(name)
    if (name === '--config' || name === '--target') {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
      if (value === undefined) return undefined
      if (!value || value.startsWith('-')) plain = false
      if (name === '--config') config = value
      else targets.push(value)
    } else if (['--help', '-h', '--render', '--'].includes(name) || (/^-[^-]/.test(name) && name !== '-n')) {
      return undefined
    } else if ((name !== '--json' && name !== '--verbose') || eq !== -1) {
      plain = false
    }
  }
  return {config, targets, ...(plain && {plain: {targets, json: seen.has('--json'), verbose: seen.has('--verbose')}})}
}
