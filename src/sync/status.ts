// `mirror status`: per target, whether it answers, its last publish, and its drift against the
// manifest (customized, missing, slave-only and leftover temporary files). Reads only.

import pLimit from 'p-limit'

import type {Config} from '../config/load.js'
import {withContext, type MirrorError} from '../errors.js'
import {createTarget} from '../targets/index.js'
import {isTempName} from '../targets/paths.js'
import type {LockOwner} from '../targets/target.js'
import {loadManifest} from './manifest-cache.js'
import {needsHash} from './planner.js'
import {join} from 'node:path'

export interface TargetStatus {
  target: string
  url: string
  reachable: boolean
  error?: ReturnType<MirrorError['toJSON']>
  lastPublish: {at: string; by: string; generation: number; files: number} | null
  /** The manifest on the slave is damaged; the next publish rebuilds it. */
  manifestDamaged: boolean
  lockedBy?: LockOwner
  /** Changed on the slave since published: kept by publish. */
  customized: string[]
  /** Published, gone from the slave: `mirror publish --verify` puts them back. */
  missing: string[]
  /** Only on the slave, never published: never touched. */
  extra: string[]
  /** Temporary files left by an interrupted publish: removed by `mirror publish --verify`. */
  leftovers: string[]
  /** True when every file was compared by content (--deep). */
  deep: boolean
}

export async function targetStatuses(config: Config, options: {targets?: readonly string[]; deep?: boolean} = {}): Promise<TargetStatus[]> {
  const selected = options.targets?.length ? config.targets.filter((t) => options.targets!.includes(t.name)) : config.targets
  const limit = pLimit(config.publish.parallel)
  return Promise.all(
    selected.map((targetConfig) =>
      limit(async (): Promise<TargetStatus> => {
        const status: TargetStatus = {
          target: targetConfig.name,
          url: targetConfig.url,
          reachable: false,
          lastPublish: null,
          manifestDamaged: false,
          customized: [],
          missing: [],
          extra: [],
          leftovers: [],
          deep: Boolean(options.deep),
        }
        const target = await createTarget(targetConfig, config)
        try {
          await target.connect()
          status.reachable = true
          const lock = await target.readState('lock')
          if (lock) {
            try {
              status.lockedBy = JSON.parse(lock.toString()) as LockOwner
            } catch {
              status.lockedBy = {host: '?', user: '?', pid: 0, since: '?', command: 'unreadable lock'}
            }
          }
          const loaded = await loadManifest(target, targetConfig, join(config.stateDir, 'targets'))
          status.manifestDamaged = Boolean(loaded.corrupt)
          const manifest = loaded.manifest
          if (manifest) {
            status.lastPublish = {at: manifest.publishedAt, by: manifest.publisher, generation: manifest.generation, files: manifest.files.size}
          }
          const listing = await target.list()
          const files = manifest?.files ?? new Map()
          const hashLimit = pLimit(Math.max(1, target.capabilities.maxTransfers))
          await Promise.all(
            [...files].map(([path, record]) =>
              hashLimit(async () => {
                const stat = listing.get(path)
                if (!stat) return status.missing.push(path)
                if (stat.type !== 'file') return status.customized.push(path)
                const unsure = options.deep || needsHash(stat, record, undefined)
                if (unsure) {
                  if ((await target.hash(path)) !== record.hash) status.customized.push(path)
                } else if (stat.size !== record.size || stat.mtimeMs !== record.mtimeMs) {
                  status.customized.push(path)
                }
              }),
            ),
          )
          for (const path of listing.keys()) {
            if (isTempName(path)) status.leftovers.push(path)
            else if (!files.has(path)) status.extra.push(path)
          }
          for (const list of [status.customized, status.missing, status.extra, status.leftovers]) list.sort()
        } catch (error) {
          status.error = withContext(error, targetConfig.name).toJSON()
        } finally {
          await target.close()
        }
        return status
      }),
    ),
  )
}
