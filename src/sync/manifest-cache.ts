// The master's copy of each target's manifest. A clean noop costs one stat of the slave's
// manifest: when its size and mtime are those the master saw after its last write, the local
// copy is used and nothing is downloaded.

import {createHash} from 'node:crypto'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import type {TargetConfig} from '../config/schema.js'
import {MirrorError} from '../errors.js'
import {writeLocalFile} from '../targets/state-bytes.js'
import type {RemoteStat, StateBytes, Target} from '../targets/target.js'
import type {ScanWarning} from './scan.js'
import {applyJournal, fingerprint, JOURNAL, parseManifest, rowsFingerprint, type Manifest, type ManifestRecord, type ParsedFiles, type WrittenManifest} from './manifest.js'

export interface LoadedManifest {
  /** null on a first publish, or when the slave's manifest is damaged (then `corrupt` is set). */
  manifest: Manifest | null
  fromCache: boolean
  corrupt?: MirrorError
  /** The generation to continue from when the manifest had to be rebuilt. */
  generationHint: number
  /** The manifest's bytes as they are on the slave (a later write can send only what differs). */
  bytes?: Buffer
}

interface CopyMeta {
  url: string
  size: number
  mtimeMs: number
  /** `fingerprint` of the files of a complete manifest, and its generation. */
  fingerprint?: string
  generation?: number
  /** Set once the target is known to hold exactly what a walk of the source publishes there. */
  held?: HeldSource
}

/**
 * A walk of the source (its `print`, with the config that routes it) after which the target held
 * exactly the manifest's files: the same print again, and the same manifest on the slave, make a
 * noop that reads no hash and routes no file.
 */
export interface HeldSource {
  print: string
  unchanged: number
  protected: number
  /** What the scan of that source found: the clean noop answers with them without a scan. */
  files: number
  warnings: ScanWarning[]
}

function copyName(config: TargetConfig): string {
  const key = createHash('sha256').update(`${config.url}\n${config.state ?? ''}`).digest('hex').slice(0, 10)
  return `${config.name}-${key}`
}

/**
 * The quick check of a clean noop: the slave's manifest is still the one this master wrote (one
 * stat) and `files` is its fingerprint. Returns that manifest's generation, or undefined when
 * the manifest has to be loaded. Reads nothing else.
 */
export async function upToDateGeneration(target: Target, config: TargetConfig, cacheDir: string, files: string): Promise<number | undefined> {
  // The local copy first: when the files changed (most publishes that get here), no round trip.
  const meta = await readMeta(join(cacheDir, copyName(config)))
  if (!meta || meta.url !== config.url || meta.fingerprint !== files) return undefined
  const remote = await target.statState('manifest.json')
  return remote && meta.size === remote.size && meta.mtimeMs === remote.mtimeMs ? (meta.generation ?? 0) : undefined
}

/** The held source recorded for a target, with the stat of the manifest it goes with. */
export async function heldSource(config: TargetConfig, cacheDir: string): Promise<(HeldSource & {size: number; mtimeMs: number; generation: number}) | undefined> {
  const meta = await readMeta(join(cacheDir, copyName(config)))
  if (!meta?.held || meta.url !== config.url) return undefined
  return {...meta.held, size: meta.size, mtimeMs: meta.mtimeMs, generation: meta.generation ?? 0}
}

/** Records `held` for a target whose last manifest has the fingerprint `files` (and only then). */
export async function recordHeldSource(config: TargetConfig, cacheDir: string, files: string, held: HeldSource): Promise<void> {
  const base = join(cacheDir, copyName(config))
  const meta = await readMeta(base)
  if (!meta || meta.fingerprint !== files || meta.held?.print === held.print) return
  await writeMeta(base, {...meta, held})
}

function readMeta(base: string): Promise<CopyMeta | undefined> {
  return fs
    .readFile(`${base}.meta.json`, 'utf8')
    .then((text) => JSON.parse(text) as CopyMeta)
    .catch(() => undefined)
}

export async function loadManifest(target: Target, config: TargetConfig, cacheDir: string, parsedFiles?: ParsedFiles): Promise<LoadedManifest> {
  const loaded = await loadManifestFile(target, config, cacheDir, parsedFiles)
  // An interrupted publish: what landed after its manifest was written is in the journal.
  if (loaded.manifest && !loaded.manifest.complete) {
    const journal = await target.readState(JOURNAL).catch(() => null)
    // The files may be shared with other targets (parsedFiles): this one's own copy takes the journal.
    if (journal) applyJournal((loaded.manifest = {...loaded.manifest, files: new Map(loaded.manifest.files)}), journal)
  }
  return loaded
}

async function loadManifestFile(target: Target, config: TargetConfig, cacheDir: string, parsedFiles?: ParsedFiles): Promise<LoadedManifest> {
  const remote = await target.statState('manifest.json')
  const base = join(cacheDir, copyName(config))
  if (!remote) return {manifest: null, fromCache: false, generationHint: 0}
  const meta = await readMeta(base)
  if (meta && meta.url === config.url && meta.size === remote.size && meta.mtimeMs === remote.mtimeMs) {
    const copy = await fs.readFile(`${base}.manifest.json`).catch(() => undefined)
    if (copy) {
      try {
        const manifest = parseManifest(copy, target.name, parsedFiles)
        // A copy saved before fingerprints existed: give it one, so the next noop is the quick one.
        if (meta.fingerprint === undefined && manifest.complete) await writeMeta(base, {...meta, fingerprint: manifestFingerprint(manifest), generation: manifest.generation})
        return {manifest, fromCache: true, generationHint: 0, bytes: copy}
      } catch {
        // A damaged local copy: fall through and download the slave's.
      }
    }
  }
  const data = await target.readState('manifest.json')
  if (!data) return {manifest: null, fromCache: false, generationHint: 0}
  try {
    const manifest = parseManifest(data, target.name, parsedFiles)
    await writeCopy(base, config, remote.size, remote.mtimeMs, data, manifest)
    return {manifest, fromCache: false, generationHint: manifest.generation, bytes: data}
  } catch (error) {
    const hint = await fs.readFile(`${base}.manifest.json`).then((d) => parseManifest(d, target.name).generation).catch(() => 0)
    return {manifest: null, fromCache: false, corrupt: error as MirrorError, generationHint: hint}
  }
}

/** Records what was just written to the slave, with the stat the slave now reports for it. */
export async function saveManifestCopy(config: TargetConfig, cacheDir: string, data: Buffer | StateBytes, manifest: WrittenManifest, written: RemoteStat): Promise<void> {
  await writeCopy(join(cacheDir, copyName(config)), config, written.size, written.mtimeMs, data, manifest)
}

async function writeCopy(base: string, config: TargetConfig, size: number, mtimeMs: number, data: Buffer | StateBytes, manifest: WrittenManifest): Promise<void> {
  await fs.mkdir(join(base, '..'), {recursive: true})
  // The manifest first, then the meta that vouches for it: a crash between them only costs a download.
  await writeLocalFile(`${base}.manifest.json.tmp`, data)
  await fs.rename(`${base}.manifest.json.tmp`, `${base}.manifest.json`)
  await writeMeta(base, {url: config.url, size, mtimeMs, ...(manifest.complete ? {fingerprint: manifestFingerprint(manifest), generation: manifest.generation} : {})})
}

async function writeMeta(base: string, meta: CopyMeta): Promise<void> {
  const temp = `${base}.meta.json.${process.pid}.tmp`
  await fs.writeFile(temp, JSON.stringify(meta))
  await fs.rename(temp, `${base}.meta.json`)
}

/** Fingerprints by files map: targets that share one (see ManifestBodies) share its fingerprint. */
const fingerprints = new WeakMap<Map<string, ManifestRecord>, string>()

function manifestFingerprint(manifest: Manifest | WrittenManifest): string {
  const files = manifest.files
  if (typeof files === 'function') return rowsFingerprint(files())
  let print = fingerprints.get(files)
  if (print === undefined) fingerprints.set(files, (print = fingerprint(files.keys(), (path) => files.get(path)!)))
  return print
}
