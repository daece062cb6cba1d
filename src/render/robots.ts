// robots.txt as RFC 9309 reads it: the group for our product token (else `*`), Allow/Disallow
// with `*` and `$`, the longest match wins and Allow wins a tie; plus the Sitemap lines. Pure.

export interface Robots {
  /** True when the rules let us fetch "/path?query". */
  allows(pathAndQuery: string): boolean
  /** Absolute URLs from Sitemap lines, in file order. */
  sitemaps: string[]
}

interface Rule {
  allow: boolean
  length: number
  match: (path: string) => boolean
}

export const ALLOW_ALL: Robots = {allows: () => true, sitemaps: []}

/** `agent` is our User-Agent; its first product token (e.g. "mirror-render") picks the group. */
export function parseRobots(text: string, agent: string): Robots {
  const token = agent.split(/[\s/]/)[0].toLowerCase()
  const sitemaps: string[] = []
  const groups: Array<{agents: string[]; rules: Rule[]}> = []
  let current: {agents: string[]; rules: Rule[]} | undefined
  let inAgents = false
  for (const rawLine of text.split(/\r\n|\r|\n/)) {
    const line = rawLine.replace(/#.*/, '').trim()
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (key === 'sitemap') {
      if (value) sitemaps.push(value)
      continue
    }
    if (key === 'user-agent') {
      // Consecutive user-agent lines share one group; a user-agent after rules starts a new one.
      if (!inAgents || !current) {
        current = {agents: [], rules: []}
        groups.push(current)
      }
      current.agents.push(value.toLowerCase())
      inAgents = true
      continue
    }
    if ((key === 'allow' || key === 'disallow') && current) {
      inAgents = false
      // An empty Disallow allows everything: it is no rule at all.
      if (value === '') continue
      current.rules.push(compileRule(key === 'allow', value))
    } else if (current) {
      inAgents = false
    }
  }
  const matchesUs = (a: string) => a !== '*' && (a === token || token.startsWith(a) || a.startsWith(token))
  let chosen = groups.filter((g) => g.agents.some(matchesUs))
  if (chosen.length === 0) chosen = groups.filter((g) => g.agents.includes('*'))
  const rules = chosen.flatMap((g) => g.rules)
  return {
    sitemaps,
    allows(pathAndQuery) {
      const path = normalizeForMatch(pathAndQuery)
      let best: Rule | undefined
      for (const rule of rules) {
        if (!rule.match(path)) continue
        if (!best || rule.length > best.length || (rule.length === best.length && rule.allow)) best = rule
      }
      return best ? best.allow : true
    },
  }
}

/** Rules and paths compare in one spelling: escapes of unreserved characters decoded, hex upper-cased. */
function normalizeForMatch(value: string): string {
  return value.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return /[A-Za-z0-9\-._~]/.test(char) ? char : `%${hex.toUpperCase()}`
  })
}

function compileRule(allow: boolean, pattern: string): Rule {
  let encoded = pattern
  // Rules are written by hand, often with raw non-ASCII; paths arrive percent-encoded.
  encoded = encoded.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c))
  encoded = normalizeForMatch(encoded)
  const anchoredEnd = encoded.endsWith('$')
  const body = anchoredEnd ? encoded.slice(0, -1) : encoded
  const source = body
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*')
  const regex = new RegExp(`^${source}${anchoredEnd ? '$' : ''}`, 's')
  return {allow, length: pattern.length, match: (path) => regex.test(path)}
}
