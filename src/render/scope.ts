// Which URLs on the origin the crawler may fetch: the user's `exclude` patterns, the built-in
// exclusions for edit / login / history / diff / export / sort links, and robots.txt. Pure;
// depth, page and calendar limits are the crawler's.

import type {Robots} from './robots.js'

export type ExcludeReason = 'exclude' | 'default-exclude' | 'robots' | 'nofollow' | 'noindex'

/**
 * Query keys that turn a page into a tool on that page (DokuWiki `do=`, MediaWiki `action=`,
 * `oldid=`, `diff=`, WordPress `replytocom=`, sort orders, Apache listing sorts). A crawl that
 * follows them saves every page many times over and never ends.
 */
const TOOL_QUERY_KEYS = new Set([
  'do',
  'action',
  'oldid',
  'diff',
  'curid',
  'printable',
  'redlink',
  'veaction',
  'replytocom',
  'share',
  'preview',
  'returnto',
  'redirect_to',
  'sort',
  'order',
  'orderby',
  'rev',
  'rev2',
  'revision',
  'difftype',
  'export',
])

/** Apache directory listings sort with `?C=N;O=D`; only the upper-case keys mean that. */
const LISTING_SORT_KEYS = new Set(['C', 'O'])

/** Path segments that are logins, admin areas and APIs, never content. */
const TOOL_SEGMENTS = new Set([
  'login',
  'logout',
  'signin',
  'sign-in',
  'signout',
  'sign-out',
  'signup',
  'sign-up',
  'register',
  'wp-login.php',
  'wp-admin',
  'wp-json',
  'xmlrpc.php',
])

/** Last path segments that edit the page before them (`/pages/12/edit`). */
const TOOL_LAST_SEGMENTS = new Set(['edit', 'delete'])

/** True for links that are tools on a page rather than pages (edit, login, history, sort...). */
export function isToolUrl(url: URL): boolean {
  // Keys are read from the raw query, split on "?" too: a tool link built by appending "?do=x" to a URL that already had a query hides its key in a value.
  for (const part of url.search.slice(1).split(/[&;?]/)) {
    const key = safeDecode(part.split('=')[0])
    if (TOOL_QUERY_KEYS.has(key.toLowerCase().replace(/\[\]$/, '')) || LISTING_SORT_KEYS.has(key)) return true
  }
  const segments = url.pathname.split('/').filter(Boolean)
  for (const raw of segments) {
    const segment = safeDecode(raw).toLowerCase()
    if (TOOL_SEGMENTS.has(segment) || segment.startsWith('special:')) return true
  }
  const last = segments.at(-1)
  return segments.length > 1 && last !== undefined && TOOL_LAST_SEGMENTS.has(last.toLowerCase())
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/**
 * Compiles an exclude pattern: matched against "/path?query" (raw and percent-decoded), `*`
 * matches any run of characters including "/" and "?", everything else is literal. A pattern
 * that does not start with "/" or "*" matches anywhere.
 */
export function compilePattern(pattern: string): (pathAndQuery: string) => boolean {
  const anchored = pattern.startsWith('/') || pattern.startsWith('*') ? pattern : `*${pattern}*`
  const source = anchored
    .split(/\*+/)
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*')
  const regex = new RegExp(`^${source}$`, 's')
  return (value) => regex.test(value) || regex.test(safeDecode(value))
}

export interface Scope {
  /** Why the URL must not be fetched, or undefined when it may be. */
  check(url: URL): ExcludeReason | undefined
}

export function createScope(options: {exclude: readonly string[]; defaultExclude: boolean; robots?: Robots}): Scope {
  const patterns = options.exclude.map(compilePattern)
  return {
    check(url) {
      const target = url.pathname + url.search
      if (patterns.some((match) => match(target))) return 'exclude'
      if (options.defaultExclude && isToolUrl(url)) return 'default-exclude'
      if (options.robots && !options.robots.allows(target)) return 'robots'
      return undefined
    },
  }
}
