// Names the file each saved URL becomes in the snapshot, so that a static server (or a browser
// reading from disk) finds it, and writes the link from one saved file to another. Pure: the
// crawler calls it once the whole set of URLs and their content types is known.
//
// Rules: `/a/b/` → `a/b/index.html`; a path whose extension does not match its content type
// gets the type's extension (`/a/b` → `a/b.html`, `/feed` → `feed.rss`, `/x.php` → `x.php.html`);
// a query becomes part of the name (`/list.php?page=2` → `list.php@page=2.html`); segments are
// percent-decoded to UTF-8 names; unsafe or overlong names, clashes and a file that would
// also have to be a directory get a short hash of the URL.

import {createHash} from 'node:crypto'

import mime from 'mime-types'

/** Types a server sends when it does not know: the path's own extension is then the better guess. */
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'text/plain', 'application/unknown'])
const MAX_SEGMENT_BYTES = 200
const QUERY_UNSAFE = /[^\p{L}\p{N}._=&,+-]/gu

export function shortHash(value: string, length = 10): string {
  return createHash('sha256').update(value).digest('hex').slice(0, length)
}

/** `text/html; charset=utf-8` → `text/html`. */
export function essence(contentType: string | undefined): string | undefined {
  const type = contentType?.split(';')[0].trim().toLowerCase()
  return type || undefined
}

export function isHtmlType(contentType: string | undefined): boolean {
  const type = essence(contentType)
  return type === 'text/html' || type === 'application/xhtml+xml'
}

export function isCssType(contentType: string | undefined): boolean {
  return essence(contentType) === 'text/css'
}

function extensionOf(name: string): string | undefined {
  const dot = name.lastIndexOf('.')
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : undefined
}

/** The extension to append to `name` so a server sends `contentType`, or '' when it already will. */
function extensionFor(name: string, contentType: string | undefined): string {
  const type = essence(contentType)
  const ext = extensionOf(name)
  if (!type) return ''
  if (ext && (mime.extensions[type] ?? []).includes(ext)) return ''
  if (GENERIC_TYPES.has(type) && ext && mime.lookup(ext)) return ''
  const wanted = type === 'application/xhtml+xml' ? 'html' : mime.extension(type)
  return wanted ? `.${wanted}` : ''
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    // Not UTF-8 (e.g. a latin1 %E9): read the bytes as latin1 rather than fail.
    return segment.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
  }
}

/** A path segment as a file name: decoded, with separators and control characters made safe. */
function segmentName(raw: string): string {
  const decoded = safeDecode(raw)
  // eslint-disable-next-line no-control-regex
  let name = decoded.replace(/[/\\\x00-\x1f\x7f]/g, '_')
  if (name === '.' || name === '..') name = name.replace(/\./g, '_')
  if (name !== decoded) name = `${name}~${shortHash(raw, 8)}`
  return truncate(name, raw)
}

function truncate(name: string, key: string): string {
  if (Buffer.byteLength(name) <= MAX_SEGMENT_BYTES) return name
  return `${truncateChars(name, MAX_SEGMENT_BYTES - 12)}~${shortHash(key, 10)}`
}

/**
 * Escaped UTF-8 (non-ASCII) decoded, escapes of ASCII kept: `q=caf%C3%A9` reads `q=café`, while
 * `a=b%26c` must not become `a=b&c`, another query.
 */
function decodeNonAscii(query: string): string {
  return query.replace(/(?:%[89A-Fa-f][0-9A-Fa-f])+/g, (run) => {
    try {
      return decodeURIComponent(run)
    } catch {
      return run
    }
  })
}

/** The query as part of a file name: kept readable when it is plain, hashed when it is not. */
function queryName(search: string): string {
  const query = search.replace(/^\?/, '')
  const readable = decodeNonAscii(query)
  const plain = readable.replace(QUERY_UNSAFE, '_')
  return plain === readable && Buffer.byteLength(plain) <= 80 ? plain : `${truncateChars(plain, 60)}~${shortHash(query, 10)}`
}

/** The longest prefix of whole code points that fits in `bytes` of UTF-8. */
function truncateChars(value: string, bytes: number): string {
  const chars = Array.from(value)
  while (Buffer.byteLength(chars.join('')) > bytes) chars.pop()
  return chars.join('')
}

/**
 * The file a URL is saved as, before clashes are resolved: a relative POSIX path. `contentType`
 * is what the origin sent (redirect pages are `text/html`).
 */
export function fileForUrl(url: URL, contentType: string | undefined): string {
  const segments = url.pathname.split('/').slice(1)
  const last = segments.pop() ?? ''
  const dirs = segments.map(segmentName)
  let name = last === '' ? 'index' : segmentName(last)
  if (url.search) {
    name = `${name}@${queryName(url.search)}`
    // The extension must come last for the server to know the type: `style.css?v=2` → `style.css@v=2.css`.
    const type = essence(contentType)
    const wanted = type && !GENERIC_TYPES.has(type) ? mime.extension(type) : extensionOf(last === '' ? '' : safeDecode(last))
    name += wanted ? `.${wanted === 'xhtml' ? 'html' : wanted}` : ''
  } else {
    name += extensionFor(name, contentType)
    if (last === '' && !extensionOf(name)) name += '.html'
  }
  return [...dirs, truncate(name, url.href)].join('/')
}

/** Inserts `~hash` before the extension: `a/b.html` → `a/b~1a2b3c4d.html`. */
function disambiguate(file: string, key: string): string {
  const slash = file.lastIndexOf('/')
  const dot = file.lastIndexOf('.')
  const at = dot > slash + 1 ? dot : file.length
  return `${file.slice(0, at)}~${shortHash(key, 8)}${file.slice(at)}`
}

/**
 * Files for a set of URLs, clashes resolved deterministically (URLs sorted, later ones get a
 * hash), never a file where another file needs a directory, never one of the `reserved` names.
 */
export function assignFiles(entries: ReadonlyArray<{url: string; contentType: string | undefined}>, reserved: ReadonlySet<string> = new Set()): Map<string, string> {
  const sorted = [...entries].sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
  const wanted = sorted.map((e) => ({url: e.url, file: fileForUrl(new URL(e.url), e.contentType)}))
  const dirs = new Set<string>()
  for (const {file} of wanted) {
    const parts = file.split('/')
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'))
  }
  const taken = new Set<string>(reserved)
  const result = new Map<string, string>()
  for (const {url, file} of wanted) {
    let chosen = file
    // Case-insensitive file systems (a Mac, a Windows share) would merge names that differ in case.
    if (taken.has(chosen.toLowerCase()) || dirs.has(chosen)) chosen = disambiguate(file, url)
    taken.add(chosen.toLowerCase())
    result.set(url, chosen)
  }
  return result
}

/** A path segment in a link: readable where that is safe, percent-encoded elsewhere. */
export function encodeSegment(segment: string): string {
  return encodeURIComponent(segment)
    .replace(/%(40|3D|26|2C|2B|3A)/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** The relative link from one saved file to another (both relative POSIX paths). */
export function relativeHref(fromFile: string, toFile: string): string {
  const from = fromFile.split('/').slice(0, -1)
  const to = toFile.split('/')
  let common = 0
  while (common < from.length && common < to.length - 1 && from[common] === to[common]) common++
  const up = from.length - common
  const parts = [...Array.from({length: up}, () => '..'), ...to.slice(common).map(encodeSegment)]
  const href = parts.join('/')
  // "a:b.html" would read as a URL scheme.
  return up === 0 && parts[0].includes(':') ? `./${href}` : href
}

/**
 * The root-relative link to a saved file as the origin named it (`a/b.html` for `/a/b` stays
 * `/a/b`) where `try_files $uri $uri.html $uri/index.html` finds it; otherwise the file's own path.
 */
export function cleanHref(url: URL, file: string): string {
  if (!url.search) {
    const path = safeDecode(url.pathname).slice(1)
    const found = path === '' || path.endsWith('/') ? file === `${path}index.html` : file === path || file === `${path}.html`
    if (found) return url.pathname
  }
  return `/${file.split('/').map(encodeSegment).join('/')}`
}
