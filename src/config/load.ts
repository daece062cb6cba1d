// Finds, parses and validates the config, and resolves it into the shape the rest of mirror
// uses: absolute paths, parsed target URLs, segments with defaults. Throws CONFIG_NOT_FOUND or
// CONFIG_INVALID listing every problem, each with its key.

import {existsSync, readFileSync} from 'node:fs'
import {dirname, isAbsolute, resolve} from 'node:path'
import {homedir} from 'node:os'

import {parseDocument} from 'yaml'
import type {z} from 'zod'

import {MirrorError} from '../errors.js'
import type {RenderConfig} from './render-schema.js'
import {configSchema, crossCheck, type RawConfig, type SegmentConfig, type TargetConfig} from './schema.js'
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

export function loadConfig(options: {cwd?: string; config?: string} = {}): Config {
  const file = findConfig(options.cwd ?? process.cwd(), options.config)
  return parseConfig(readFileSync(file, 'utf8'), file)
}

/** Parses and validates config text; `file` gives the directory relative paths resolve against. */
export function parseConfig(text: string, file: string): Config {
  const doc = parseDocument(text, {prettyErrors: true})
  if (doc.errors.length > 0) {
    throw invalid(file, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`))
  }
  const parsed = configSchema.safeParse(doc.toJS() ?? {})
  if (!parsed.success) throw invalid(file, parsed.error.issues.flatMap(formatIssues))
  const raw = parsed.data
  const cross = crossCheck(raw)
  if (cross.length > 0) throw invalid(file, cross.map(([key, message]) => `${key}: ${message}`))
  return resolveConfig(raw, file)
}

function invalid(file: string, problems: string[]): MirrorError {
  return new MirrorError('CONFIG_INVALID', `${file} is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
    suggestion: 'Fix the keys named above; `mirror init --help` shows a commented example.',
  })
}

/**
 * A union (a target: URL string or object) that failed: when the value has the shape of one
 * branch (an object), that branch's own problems, each with its key, instead of one vague line.
 */
function formatIssues(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'invalid_union') {
    const branch = issue.errors.find((errors) => errors.length > 0 && !errors.some((e) => e.code === 'invalid_type' && e.path.length === 0))
    if (branch) return branch.flatMap((e) => formatIssues({...e, path: [...issue.path, ...e.path]}))
  }
  return [formatIssue(issue)]
}

/** `segments[1].targets[0]: no target named "cache3"` style: the key path, then the message. */
function formatIssue(issue: z.core.$ZodIssue): string {
  let key = ''
  for (const part of issue.path) {
    if (typeof part === 'number') key += `[${part}]`
    else key += key ? `.${String(part)}` : String(part)
  }
  let message = issue.message
  if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  else if (issue.code === 'invalid_type' && message.endsWith('received undefined')) message = `missing (a ${issue.expected} is required)`
  else if (issue.code === 'invalid_type') message = `expected ${issue.expected}${message.includes('received') ? `, ${message.split(', ').pop()}` : ''}`
  else if (issue.code === 'invalid_union') message = 'expected a URL string or an object with "url"'
  return `${key || '(top level)'}: ${message}`
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path
}

function resolveConfig(raw: RawConfig, file: string): Config {
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
    watch: raw.watch ?? {debounce: 150, reconcile: 300, renderInterval: 60, retryMax: 60},
  }
}
