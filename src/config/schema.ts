// The shape of mirror.config.yaml: parsed with zod, then cross-checked (segment targets exist,
// roots do not overlap). Every problem is collected and reported at once, each naming its key.

import {z} from 'zod'

import {renderSchema} from './render-schema.js'
import {parseTargetUrl, rootsOverlap, type TargetLocation} from './target-url.js'

const targetOptions = z.strictObject({
  url: z.string(),
  /** Where the target's manifest, lock and backups live on the slave (outside the web root). */
  state: z.string().min(1).optional(),
  /** Transfers in flight at once on this target. */
  transfers: z.number().int().min(1).max(256).optional(),
  /** `strict` refuses unknown host keys; `accept-new` records a first-seen key (explicit opt-in). */
  hostKeys: z.enum(['strict', 'accept-new']).optional(),
  /** Seconds to wait for the slave before giving up on it. */
  timeout: z.number().positive().optional(),
  /** Compress the SSH connection (zlib): for slow links; costs CPU on fast ones. */
  compress: z.boolean().optional(),
  /** Send many small files in one `tar` stream when the slave allows commands; false: SFTP only. */
  bulk: z.boolean().optional(),
})

const segmentSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only'),
  /** Globs relative to the source; the segment takes a file that matches any of them. */
  match: z.array(z.string().min(1)).optional(),
  /** MIME types (e.g. "image/*"); the segment takes a file whose type matches any of them. */
  mime: z.array(z.string().regex(/^[a-z*]+\/[a-z0-9.+*-]+$/i, 'a MIME type such as "image/png" or "image/*"')).optional(),
  targets: z.array(z.string()).min(1),
  /** Sub-path under each target's root where this segment's files go. */
  path: z.string().optional(),
  /** Public base URL of this segment's files, used by the renderer when it rewrites links. */
  publicUrl: z.url().optional(),
})

export const configSchema = z.strictObject({
  source: z.string().min(1),
  targets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'target names use letters, digits, "_", "." and "-"'), z.union([z.string(), targetOptions])),
  segments: z.array(segmentSchema).optional(),
  exclude: z.array(z.string()).default([]),
  protect: z.array(z.string()).default([]),
  /** Where the master keeps its caches (hashes, copies of the manifests); relative to the config. */
  state: z.string().default('.mirror'),
  ssh: z
    .strictObject({
      /** An ssh_config file to read instead of ~/.ssh/config (like `ssh -F`). */
      config: z.string().optional(),
      /** A known_hosts file to use besides ~/.ssh/known_hosts. */
      knownHosts: z.string().optional(),
    })
    .default({}),
  publish: z
    .strictObject({
      /** Targets published at once. */
      parallel: z.number().int().min(1).max(64).default(8),
      /** Transfers in flight per target (unless the target sets its own). */
      transfers: z.number().int().min(1).max(256).default(32),
      /** Stop before deleting more than this many files on a target. */
      maxDelete: z.number().int().min(0).optional(),
    })
    .default({parallel: 8, transfers: 32}),
  render: renderSchema.optional(),
  watch: z
    .strictObject({
      /** Milliseconds of quiet before a batch of changes is published. */
      debounce: z.number().int().min(0).default(100),
      /** Seconds between full reconciles (0 disables). */
      reconcile: z.number().min(0).default(300),
      /** Seconds between re-renders with `mirror watch --render`. */
      renderInterval: z.number().min(1).default(60),
      /** Longest wait, in seconds, before a failing target is tried again (retries start at 1 s and double). */
      retryMax: z.number().min(1).default(60),
    })
    .optional(),
})

export type RawConfig = z.infer<typeof configSchema>

/** A target after validation: its URL parsed, options resolved. */
export interface TargetConfig {
  name: string
  url: string
  location: TargetLocation
  state?: string
  transfers: number
  hostKeys: 'strict' | 'accept-new'
  timeoutMs: number
  compress: boolean
  bulk: boolean
}

export interface SegmentConfig {
  name: string
  match: string[]
  mime: string[]
  targets: string[]
  /** Sub-path under the target root, no leading or trailing slash ('' for the root). */
  path: string
  publicUrl?: string
}

/** Cross-field checks zod cannot express per field; returns [keyPath, message] pairs. */
export function crossCheck(raw: RawConfig): Array<[string, string]> {
  const problems: Array<[string, string]> = []
  const names = Object.keys(raw.targets)
  if (names.length === 0) problems.push(['targets', 'name at least one target'])
  const locations = new Map<string, TargetLocation>()
  for (const [name, value] of Object.entries(raw.targets)) {
    const url = typeof value === 'string' ? value : value.url
    const key = typeof value === 'string' ? `targets.${name}` : `targets.${name}.url`
    const parsed = parseTargetUrl(url)
    if (typeof parsed === 'string') problems.push([key, parsed])
    else locations.set(name, parsed)
  }
  const entries = [...locations.entries()]
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      const [a, la] = entries[i]
      const [b, lb] = entries[j]
      const sameHost = la.kind === lb.kind && (la.kind === 'file' || (lb.kind === 'sftp' && la.host === lb.host && la.port === lb.port))
      if (sameHost && rootsOverlap(la.root, lb.root)) {
        problems.push([`targets.${b}`, `its root overlaps the root of target "${a}"`])
      }
    }
  }
  raw.segments?.forEach((segment, i) => {
    if (!segment.match && !segment.mime) problems.push([`segments[${i}]`, 'give "match" globs, "mime" types, or both'])
    segment.targets.forEach((target, j) => {
      if (!(target in raw.targets)) problems.push([`segments[${i}].targets[${j}]`, `no target named "${target}"`])
    })
    if (segment.path?.split('/').includes('..')) problems.push([`segments[${i}].path`, 'must not contain ".."'])
  })
  const seen = new Set<string>()
  raw.segments?.forEach((segment, i) => {
    if (seen.has(segment.name)) problems.push([`segments[${i}].name`, `duplicate segment name "${segment.name}"`])
    seen.add(segment.name)
  })
  return problems
}
