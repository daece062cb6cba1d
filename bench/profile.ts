// Summarizes the V8 CPU profiles mirror wrote under --profile (node --cpu-prof), per scenario:
// time by the mirror file or npm package on the stack (native and Node-internal work, such as
// file reads and encryption, is charged to the nearest caller that is one of them), when each was
// first and last on the stack (a timeline of the run), and the hottest functions. Idle is time
// spent waiting on the network, the slaves or the disk.

import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const SPECIAL = new Set(['(idle)', '(garbage collector)', '(program)', '(root)'])

/** "mirror: sync/scan", "npm: ssh2", or undefined for Node internals and native code. */
function owner(url: string): string | undefined {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return `npm: ${nm[1]}`
  const dist = /\/dist\/(.+)$/.exec(url)
  if (dist) return `mirror: ${dist[1].replace(/\.js$/, '')}`
  if (url.startsWith('file://') && url.includes('/bin/')) return 'mirror: bin'
  return undefined
}

interface Area {
  /** Microseconds of samples charged to this area (native work charged to its nearest caller). */
  charged: number
  /** Microseconds of samples with this area anywhere on the stack. */
  inclusive: number
  firstUs: number
  lastUs: number
}

export function summarizeProfiles(dir: string): {markdown: string; data: unknown} | undefined {
  if (!existsSync(dir)) return undefined
  const out: string[] = [
    '### Where mirror spends its time (V8 CPU profiles, --profile)',
    '',
    '"charged": samples whose nearest mirror file or npm package on the stack is this one (file reads, encryption and other native work count for their caller); "on stack": samples with it anywhere on the stack; "from–to": first and last time it was on the stack, ms after the process started profiling (first run).',
    '',
  ]
  const data: Record<string, unknown> = {}
  for (const group of readdirSync(dir).sort()) {
    const files = readdirSync(join(dir, group))
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort()
    if (files.length === 0) continue
    const areas = new Map<string, Area>()
    const functions = new Map<string, number>()
    let total = 0
    files.forEach((file, index) => {
      const profile = JSON.parse(readFileSync(join(dir, group, file), 'utf8')) as CpuProfile
      const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
      const parent = new Map<number, number>()
      for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
      let clock = 0
      profile.samples.forEach((id, i) => {
        const us = profile.timeDeltas[i] ?? 0
        clock += us
        const node = nodes.get(id)
        if (!node) return
        total += us
        const name = node.callFrame.functionName || '(anonymous)'
        const key = `${name} ${node.callFrame.url ? `${node.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${node.callFrame.lineNumber + 1}` : ''}`.trim()
        functions.set(key, (functions.get(key) ?? 0) + us)
        const seen = new Set<string>()
        let charged: string | undefined = SPECIAL.has(name) ? name : undefined
        for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
          const area = owner(nodes.get(at)!.callFrame.url)
          if (!area) continue
          charged ??= area
          seen.add(area)
        }
        charged ??= 'Node internals (no mirror or package caller)'
        seen.add(charged)
        for (const area of seen) {
          const a = areas.get(area) ?? {charged: 0, inclusive: 0, firstUs: Infinity, lastUs: 0}
          a.inclusive += us
          if (area === charged) a.charged += us
          if (index === 0) {
            a.firstUs = Math.min(a.firstUs, clock)
            a.lastUs = Math.max(a.lastUs, clock)
          }
          areas.set(area, a)
        }
      })
    })
    const pct = (us: number) => `${((100 * us) / Math.max(total, 1)).toFixed(1)} %`
    const ms = (us: number) => (Number.isFinite(us) ? (us / 1000).toFixed(0) : '–')
    const topAreas = [...areas.entries()].sort((a, b) => b[1].charged - a[1].charged).slice(0, 14)
    const topFunctions = [...functions.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)
    out.push(`**${group}** (${files.length} run${files.length > 1 ? 's' : ''}, ${(total / 1e6 / files.length).toFixed(2)} s profiled per run)`, '')
    out.push('| area | charged | on stack | from–to ms |', '|---|---:|---:|---:|')
    for (const [k, v] of topAreas) out.push(`| ${k} | ${pct(v.charged)} | ${SPECIAL.has(k) ? '' : pct(v.inclusive)} | ${SPECIAL.has(k) ? '' : `${ms(v.firstUs)}–${ms(v.lastUs)}`} |`)
    out.push('', '| function (self time) | self |', '|---|---:|', ...topFunctions.map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${pct(v)} |`), '')
    data[group] = {
      runs: files.length,
      totalMs: total / 1000,
      areas: Object.fromEntries(topAreas.map(([k, v]) => [k, {chargedMs: v.charged / 1000, inclusiveMs: v.inclusive / 1000, firstMs: v.firstUs / 1000, lastMs: v.lastUs / 1000}])),
      functions: Object.fromEntries(topFunctions.map(([k, v]) => [k, v / 1000])),
    }
  }
  return {markdown: out.join('\n'), data}
}
