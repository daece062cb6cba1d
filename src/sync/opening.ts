// Targets opened ahead of their turn. A publish starts every connection at once, beside the
// source walk: on a noop the SSH handshake costs as much as the walk. Light to import (the SSH
// side loads with the first sftp:// target), so the CLI can start it before the rest loads.

import type {Config} from '../config/load.js'
import type {TargetConfig} from '../config/schema.js'
import {MirrorError} from '../errors.js'
import {createTarget} from '../targets/index.js'
import type {Target} from '../targets/target.js'

export interface OpeningTarget {
  target: Promise<Target>
  /** Settles when the handshake is over; a failure is met where the target's turn comes. */
  connected: Promise<void>
}

/** By target name. */
export type OpeningTargets = Map<string, OpeningTarget>

/** The targets named (all when none is); a name the config does not have is a usage error. */
export function selectTargets(config: Config, names: readonly string[] | undefined): TargetConfig[] {
  if (!names || names.length === 0) return config.targets
  for (const name of names) {
    if (!config.targets.some((t) => t.name === name)) {
      throw new MirrorError('USAGE', `no target named "${name}"`, {suggestion: `Targets in the config: ${config.targets.map((t) => t.name).join(', ')}.`})
    }
  }
  return config.targets.filter((t) => names.includes(t.name))
}

/**
 * Starts connecting to each of `selected`, except those in `skip` (already open). Only when they
 * all get a connection at once anyway (no more than `publish.parallel`); an empty map otherwise.
 */
export function openEarly(config: Config, selected: readonly TargetConfig[], skip?: ReadonlyMap<string, Target>): OpeningTargets {
  const opening: OpeningTargets = new Map()
  if (selected.length > config.publish.parallel) return opening
  for (const targetConfig of selected) {
    if (skip?.has(targetConfig.name)) continue
    const target = createTarget(targetConfig, config)
    const connected = target.then((t) => t.connect())
    // Failures are met (and reported per target) where the target's turn comes.
    target.catch(() => {})
    connected.catch(() => {})
    opening.set(targetConfig.name, {target, connected})
  }
  return opening
}

/** Closes targets that were opened and will not be used after all. */
export async function closeOpening(opening: OpeningTargets): Promise<void> {
  await Promise.all(
    [...opening.values()].map(async ({target, connected}) => {
      await connected.catch(() => {})
      const opened = await target.catch(() => undefined)
      await opened?.close().catch(() => {})
    }),
  )
}
