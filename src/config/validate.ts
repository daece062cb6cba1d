// Parses config text (YAML) and validates it against the schema. The heavy half of loading a
// config (yaml and zod take longer to load than a noop publish takes to scan its tree), so
// `loadConfig` reaches it only when the text is not one it has validated before.

import {parseDocument} from 'yaml'
import type {z} from 'zod'

import {MirrorError} from '../errors.js'
import {resolveConfig, type Config} from './load.js'
import {configSchema, crossCheck, type RawConfig} from './schema.js'

/** Parses, validates and resolves config text; `file` gives the directory relative paths resolve against. */
export function parseConfig(text: string, file: string): Config {
  return resolveConfig(validateConfig(text, file), file)
}

/** The config as written, with defaults filled in; throws CONFIG_INVALID naming every bad key. */
export function validateConfig(text: string, file: string): RawConfig {
  const doc = parseDocument(text, {prettyErrors: true})
  if (doc.errors.length > 0) {
    throw invalid(file, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`))
  }
  const parsed = configSchema.safeParse(doc.toJS() ?? {})
  if (!parsed.success) throw invalid(file, parsed.error.issues.flatMap(formatIssues))
  const raw = parsed.data
  const cross = crossCheck(raw)
  if (cross.length > 0) throw invalid(file, cross.map(([key, message]) => `${key}: ${message}`))
  return raw
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
