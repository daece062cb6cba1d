// Reads a sitemap: an XML urlset, a sitemap index, either gzipped, or a plain list of URLs.
// Returns the URLs as written; the crawler decides which are on the origin. Pure.

import {gunzipSync} from 'node:zlib'

export interface Sitemap {
  /** Page URLs (`<url><loc>`). */
  urls: string[]
  /** Further sitemaps (`<sitemap><loc>` of an index). */
  sitemaps: string[]
}

const XML_ENTITIES: Record<string, string> = {amp: '&', lt: '<', gt: '>', quot: '"', apos: "'"}

function decodeXml(text: string): string {
  const cdata = /^\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(text)
  if (cdata) return cdata[1].trim()
  return text
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, name: string) => {
      if (name[0] === '#') {
        const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10)
        return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : all
      }
      return XML_ENTITIES[name.toLowerCase()] ?? all
    })
    .trim()
}

/** Decompresses gzip by its magic bytes: `.xml.gz` is served as a file, not as a Content-Encoding. */
export function parseSitemap(body: Buffer): Sitemap {
  let data = body
  if (data.length > 2 && data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data)
  const text = data.toString('utf8')
  if (!/<\s*(?:[\w-]+:)?(?:urlset|sitemapindex)\b/i.test(text)) {
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^https?:\/\//i.test(l))
    return {urls: lines, sitemaps: []}
  }
  const urls: string[] = []
  const sitemaps: string[] = []
  const block = /<\s*((?:[\w-]+:)?(url|sitemap))\b[^>]*>([\s\S]*?)<\/\s*\1\s*>/gi
  for (const match of text.matchAll(block)) {
    // An unprefixed <loc> first: `<image:loc>` inside a <url> names an image, not the page.
    const loc =
      /<\s*loc\b[^>]*>([\s\S]*?)<\/\s*loc\s*>/i.exec(match[3]) ??
      /<\s*[\w-]+:loc\b[^>]*>([\s\S]*?)<\/\s*[\w-]+:loc\s*>/i.exec(match[3])
    if (!loc) continue
    const value = decodeXml(loc[1])
    if (!value) continue
    if (match[2].toLowerCase() === 'sitemap') sitemaps.push(value)
    else urls.push(value)
  }
  return {urls, sitemaps}
}
