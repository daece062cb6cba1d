// Summarizes the V8 CPU profiles mirror wrote under --profile (node --cpu-prof): self time by
// function and by area (mirror's own files, ssh2, other packages, Node internals, GC, idle), per
// scenario directory. Idle time is where mirror waits on the network or the slaves.

import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  hitCount?: number
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function area(url: string, name: string): string {
  if (name === '(idle)') return 'idle (waiting on I/O)'
  if (name === '(garbage collector)') return 'garbage collector'
  if (name === '(program)' || name === '(root)') return 'V8/program'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return `npm: ${nm[1]}`
  const dist = /\/dist\/(.+)$/.exec(url)
  if (dist) return `mirror: ${dist[1].replace(/\.js$/, '')}`
  if (url.startsWith('node:') || url === '') return 'Node internals / native'
  return url
}

export function summarizeProfiles(dir: string): {markdown: string; data: unknown} | undefined {
  if (!existsSync(dir)) return undefined
  const out: string[] = ['### Where mirror spends its time (V8 CPU profiles, --profile)', '']
  const data: Record<string, unknown> = {}
  for (const group of readdirSync(dir).sort()) {
    const files = readdirSync(join(dir, group)).filter((f) => f.endsWith('.cpuprofile'))
    if (files.length === 0) continue
    const byArea = new Map<string, number>()
    const byFunction = new Map<string, number>()
    let total = 0
    for (const file of files) {
      const profile = JSON.parse(readFileSync(join(dir, group, file), 'utf8')) as CpuProfile
      const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
      profile.samples.forEach((id, i) => {
        const us = profile.timeDeltas[i] ?? 0
        const node = nodes.get(id)
        if (!node) return
        const {functionName, url, lineNumber} = node.callFrame
        const name = functionName || '(anonymous)'
        total += us
        const a = area(url, name)
        byArea.set(a, (byArea.get(a) ?? 0) + us)
        const key = `${name} ${url ? `${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim()
        byFunction.set(key, (byFunction.get(key) ?? 0) + us)
      })
    }
    const top = (m: Map<string, number>, n: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    const pct = (us: number) => `${((100 * us) / Math.max(total, 1)).toFixed(1)} %`
    out.push(`**${group}** (${files.length} run${files.length > 1 ? 's' : ''}, ${(total / 1e6 / files.length).toFixed(2)} s sampled per run)`, '')
    out.push('| area | self time |', '|---|---:|', ...top(byArea, 8).map(([k, v]) => `| ${k} | ${pct(v)} |`), '')
    out.push('| function (self) | self time |', '|---|---:|', ...top(byFunction, 10).map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${pct(v)} |`), '')
    data[group] = {runs: files.length, totalMs: total / 1000, areas: Object.fromEntries(top(byArea, 20).map(([k, v]) => [k, v / 1000])), functions: Object.fromEntries(top(byFunction, 30).map(([k, v]) => [k, v / 1000]))}
  }
  return {markdown: out.join('\n'), data}
}
