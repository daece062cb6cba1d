// Finds the config, has it validated (config/validate.ts) and resolves it into the shape the
// rest of mirror uses: absolute paths, parsed target URLs, segments with defaults. Throws
// CONFIG_NOT_FOUND, or CONFIG_INVALID listing every problem, each with its key.

import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {dirname, extname, isAbsolute, join, resolve} from 'node:path'
import {homedir} from 'node:os'
import {fileURLToPath} from 'node:url'

import {MirrorError} from '../errors.js'
import type {RenderConfig} from './render-schema.js'
import type {RawConfig, SegmentConfig, TargetConfig} from './schema.js'
import type {TargetLocation} from './target-url.js'
import {parseTargetUrl} from './target-url.js'

export const CONFIG_NAMES = ['mirror.config.yaml', 'mirror.config.yml']

export interface Config {
  /** Absolute path of the config file. */
  file: string
  /** Directory of the config file; relative paths in it are resolved against it. */
  dir: string
  /** Absolute path of the tree to publish. */
  source: string
  targets: TargetConfig[]
  segments: SegmentConfig[]
  exclude: string[]
  protect: string[]
  /** Absolute path of the master's cache directory. */
  stateDir: string
  ssh: {config?: string; knownHosts?: string}
  publish: {parallel: number; transfers: number; maxDelete?: number}
  render?: RenderConfig
  watch: {debounce: number; reconcile: number; renderInterval: number; retryMax: number}
}

/** The config file to use: the one named, else the first of CONFIG_NAMES in `cwd`. */
export function findConfig(cwd: string, named?: string): string {
  if (named) {
    const file = resolve(cwd, named)
    if (!existsSync(file)) throw new MirrorError('CONFIG_NOT_FOUND', `config file not found: ${file}`)
    return file
  }
  for (const name of CONFIG_NAMES) {
    const file = resolve(cwd, name)
    if (existsSync(file)) return file
  }
  throw new MirrorError('CONFIG_NOT_FOUND', `no ${CONFIG_NAMES[0]} in ${cwd}`, {
    suggestion: 'Run `mirror init` to write one, or name it with --config.',
  })
}

export async function loadConfig(options: {cwd?: string; config?: string} = {}): Promise<Config> {
  const file = findConfig(options.cwd ?? process.cwd(), options.config)
  const text = readFileSync(file, 'utf8')
  const cached = readValidated(file, text)
  if (cached) return resolveConfig(cached, file)
  const {validateConfig} = await import('./validate.js')
  const raw = validateConfig(text, file)
  saveValidated(file, text, raw)
  return resolveConfig(raw, file)
}

/**
 * Validated configs, by the config's path, its text and the validator's own code: a config
 * that has not changed since it was last checked skips YAML and schema (about 0.15 s, a
 * fifth of a noop publish). The last few texts of each file are kept, so a config switched
 * back and forth (a branch checked out, a script that swaps the source) is not checked again
 * each time. Only the check is skipped: resolving (paths, target URLs) runs every time.
 */
const VALIDATOR_MODULES = ['validate', 'schema', 'render-schema']
/** Texts remembered per config file. */
const VALIDATED_TEXTS = 8

interface ValidatedCache {
  entries: Array<{key: string; raw: RawConfig}>
}

function validatedCacheFile(file: string): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'mirror', 'configs', `${createHash('sha256').update(file).digest('hex').slice(0, 16)}.json`)
}

function validationKey(file: string, text: string): string {
  const self = fileURLToPath(import.meta.url)
  const hash = createHash('sha256').update(`${file}\0${text}\0`)
  // Beside this module, with its extension (.js when built, .ts when run from source).
  for (const name of VALIDATOR_MODULES) hash.update(readFileSync(join(dirname(self), `${name}${extname(self)}`)))
  return hash.digest('hex')
}

function readValidatedCache(file: string): ValidatedCache {
  try {
    const cached = JSON.parse(readFileSync(validatedCacheFile(file), 'utf8')) as Partial<ValidatedCache>
    return {entries: Array.isArray(cached.entries) ? cached.entries : []}
  } catch {
    return {entries: []}
  }
}

function readValidated(file: string, text: string): RawConfig | undefined {
  const {entries} = readValidatedCache(file)
  if (entries.length === 0) return undefined
  const key = validationKey(file, text)
  return entries.find((entry) => entry.key === key)?.raw
}

function saveValidated(file: string, text: string, raw: RawConfig): void {
  // Best effort: without the cache, the next run validates again.
  try {
    const cacheFile = validatedCacheFile(file)
    const key = validationKey(file, text)
    const entries = [{key, raw}, ...readValidatedCache(file).entries.filter((entry) => entry.key !== key)].slice(0, VALIDATED_TEXTS)
    mkdirSync(dirname(cacheFile), {recursive: true})
    const temp = `${cacheFile}.${process.pid}.tmp`
    writeFileSync(temp, JSON.stringify({entries}))
    renameSync(temp, cacheFile)
  } catch {}
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path
}

/** The validated config in the shape the rest of mirror uses. */
export function resolveConfig(raw: RawConfig, file: string): Config {
  const dir = dirname(file)
  const abs = (p: string) => (isAbsolute(expandHome(p)) ? expandHome(p) : resolve(dir, p))
  const targets: TargetConfig[] = Object.entries(raw.targets).map(([name, value]) => {
    const options = typeof value === 'string' ? {url: value} : value
    return {
      name,
      url: options.url,
      location: parseTargetUrl(options.url) as TargetLocation,
      state: options.state,
      transfers: options.transfers ?? raw.publish.transfers,
      hostKeys: options.hostKeys ?? 'strict',
      timeoutMs: (options.timeout ?? 20) * 1000,
      compress: options.compress ?? false,
      bulk: options.bulk ?? true,
    }
  })
  const segments: SegmentConfig[] = raw.segments?.map((s) => ({
    name: s.name,
    match: s.match ?? [],
    mime: s.mime ?? [],
    targets: s.targets,
    path: (s.path ?? '').replace(/^\/+|\/+$/g, ''),
    publicUrl: s.publicUrl,
  })) ?? [{name: 'all', match: ['**'], mime: [], targets: targets.map((t) => t.name), path: ''}]
  return {
    file,
    dir,
    source: abs(raw.source),
    targets,
    segments,
    exclude: raw.exclude,
    protect: raw.protect,
    stateDir: abs(raw.state),
    ssh: {config: raw.ssh.config && abs(raw.ssh.config), knownHosts: raw.ssh.knownHosts && abs(raw.ssh.knownHosts)},
    publish: raw.publish,
    render: raw.render,
    watch: raw.watch ?? {debounce: 100, reconcile: 300, renderInterval: 60, retryMax: 60},
  }
}
