// URL handling for the crawler: resolving and normalizing links so one resource has one key,
// telling the origin (and its aliases) from the rest of the web, and the "family" of a
// date-addressed URL used to notice calendars. Pure: no I/O.

/** The origin and the other base URLs that mean it. */
export interface Site {
  /** `scheme://host:port` of the origin, as URL.origin spells it. */
  origin: string
  aliases: ReadonlySet<string>
}

export function createSite(origin: string, aliases: readonly string[] = []): Site {
  return {origin: new URL(origin).origin, aliases: new Set(aliases.map((a) => new URL(a).origin))}
}

const UNRESERVED = /[A-Za-z0-9\-._~]/

/** Percent-escapes of unreserved characters decoded, the rest upper-cased: `%7e` and `~` are one URL. */
function normalizeEscapes(part: string): string {
  return part.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`
  })
}

/**
 * Resolves a link against its base and normalizes it: no fragment, an empty query dropped,
 * escapes normalized. Returns undefined for anything that is not http(s) or does not parse.
 */
export function resolveUrl(link: string, base: string | URL): URL | undefined {
  const trimmed = link.trim()
  if (trimmed === '' || trimmed.startsWith('#')) return undefined
  let url: URL
  try {
    url = new URL(trimmed, base)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  url.hash = ''
  url.username = ''
  url.password = ''
  url.pathname = normalizeEscapes(url.pathname)
  // An empty query ("/a?") reads as no query; setting it to '' drops the lone "?".
  if (!url.search) url.search = ''
  else url.search = normalizeEscapes(url.search)
  return url
}

/** The link's fragment (with "#"), kept when the link is rewritten. */
export function fragmentOf(link: string): string {
  const i = link.indexOf('#')
  return i < 0 ? '' : link.slice(i)
}

/**
 * The URL on the origin for a URL on the origin or an alias (an alias link is fetched from the
 * origin), or undefined for the rest of the web.
 */
export function onSite(site: Site, url: URL): URL | undefined {
  if (url.origin === site.origin) return url
  if (!site.aliases.has(url.origin)) return undefined
  return new URL(url.pathname + url.search, site.origin)
}

/** `/path?query` of a URL, the form patterns, robots rules and the report use. */
export function pathAndQuery(url: URL | string): string {
  const u = typeof url === 'string' ? new URL(url) : url
  return u.pathname + u.search
}

const YEAR = '(?:19|20)\\d\\d'
/** A path segment or query value that names a date: 2024, 2024-05, 2024-05-17, 20240517. */
const DATED_VALUE = new RegExp(`^${YEAR}(?:[-_.]?(?:0?[1-9]|1[0-2])(?:[-_.]?(?:0?[1-9]|[12]\\d|3[01]))?)?$`)
const SMALL_NUMBER = /^\d{1,2}$/

/**
 * The family of a date-addressed URL, or undefined when the URL names no date. Calendars link
 * month to month and day to day forever; counting hops inside one family bounds them without
 * touching ordinary pages. Year segments and the month/day segments after them collapse to "@";
 * a query with a dated value collapses to "?@" whatever its other keys.
 */
export function dateFamily(url: URL): string | undefined {
  let dated = false
  const segments = url.pathname.split('/')
  const out: string[] = []
  for (let i = 0; i < segments.length; i++) {
    if (DATED_VALUE.test(segments[i])) {
      dated = true
      while (i + 1 < segments.length && SMALL_NUMBER.test(segments[i + 1])) i++
      out.push('@')
    } else {
      out.push(segments[i].replace(/\d+/g, '#'))
    }
  }
  let query = ''
  if (url.search) {
    const keys: string[] = []
    let datedQuery = false
    for (const [key, value] of url.searchParams) {
      if (DATED_VALUE.test(value)) datedQuery = true
      keys.push(key)
    }
    if (datedQuery) dated = true
    query = datedQuery ? '?@' : `?${keys.sort().join('&')}`
  }
  return dated ? out.join('/') + query : undefined
}
