// A tokenizer-level HTML reader and rewriter for the URLs a page links and embeds: attributes
// in any quote style, srcset, inline style and <style> CSS, meta refresh, <base href>, meta
// robots. Comments, <script> and other raw text are skipped. It is not a DOM: the page is
// handled as a latin1 "binary" string, and a rewrite replaces only the attribute values and
// CSS tokens whose URL changed, so every other byte of the page survives as the origin sent it.

import {findCssUrls, rewriteCss} from './css.js'

/** `page`: a link to follow (depth + 1). `asset`: needed to show the page. `other`: not crawled. */
export type RefKind = 'page' | 'asset' | 'other'

export interface HtmlRef {
  /** The URL as a browser reads it (entities and charset decoded), not yet resolved. */
  url: string
  kind: RefKind
  tag: string
  attr: string
  /** The link carries rel="nofollow". */
  nofollow: boolean
  /** rel="canonical" and the like: the page's own address, not a link to follow. */
  self: boolean
}

export interface HtmlScan {
  refs: HtmlRef[]
  /** The first <base href>, as written. */
  base?: string
  /** <meta name="robots"> said noindex / nofollow (or "none"). */
  noindex: boolean
  nofollow: boolean
}

type AttrType = 'page' | 'asset' | 'other' | 'srcset' | 'link' | 'refresh'

const URL_ATTRS: Record<string, Record<string, AttrType>> = {
  a: {href: 'page'},
  area: {href: 'page'},
  link: {href: 'link', imagesrcset: 'srcset'},
  img: {src: 'asset', srcset: 'srcset', 'data-src': 'asset', 'data-srcset': 'srcset'},
  image: {href: 'asset', 'xlink:href': 'asset'},
  use: {href: 'asset', 'xlink:href': 'asset'},
  script: {src: 'asset'},
  source: {src: 'asset', srcset: 'srcset', 'data-src': 'asset', 'data-srcset': 'srcset'},
  video: {src: 'asset', poster: 'asset'},
  audio: {src: 'asset'},
  track: {src: 'asset'},
  embed: {src: 'asset'},
  object: {data: 'asset'},
  input: {src: 'asset'},
  iframe: {src: 'page'},
  frame: {src: 'page'},
  body: {background: 'asset'},
  table: {background: 'asset'},
  td: {background: 'asset'},
  th: {background: 'asset'},
  form: {action: 'other'},
  blockquote: {cite: 'other'},
  q: {cite: 'other'},
  ins: {cite: 'other'},
  del: {cite: 'other'},
  meta: {content: 'refresh'},
}

/** <link rel> values whose target the page needs in order to display. */
const ASSET_RELS = new Set([
  'stylesheet',
  'icon',
  'shortcut',
  'apple-touch-icon',
  'apple-touch-icon-precomposed',
  'mask-icon',
  'fluid-icon',
  'preload',
  'modulepreload',
  'manifest',
  'image_src',
])
/** <link rel> values that lead to other pages of the site. */
const PAGE_RELS = new Set(['alternate', 'next', 'prev', 'previous', 'first', 'last', 'up', 'home', 'index', 'start', 'contents', 'chapter', 'section', 'help', 'license', 'author'])
const SELF_RELS = new Set(['canonical'])

/** Elements whose content is text, not markup: a "<a href>" inside them is no link. */
const RAW_TEXT = new Set(['script', 'style', 'xmp', 'iframe', 'noembed', 'noframes', 'textarea', 'title'])

interface Attr {
  name: string
  /** Start of the attribute (its name) and end (after its value). */
  start: number
  end: number
  /** Span of the raw value, inside the quotes; -1 when the attribute has no value. */
  valueStart: number
  valueEnd: number
  quote: '"' | "'" | ''
}

const isSpace = (code: number) => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d
const isAlpha = (code: number) => (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)

/** Parses the attributes of a start tag from `i` (after the name); returns them and the index after ">". */
function readAttributes(s: string, i: number): {attrs: Attr[]; end: number} | undefined {
  const attrs: Attr[] = []
  const n = s.length
  let j = i
  for (;;) {
    while (j < n && (isSpace(s.charCodeAt(j)) || s[j] === '/')) j++
    if (j >= n) return undefined
    if (s[j] === '>') return {attrs, end: j + 1}
    const start = j
    j++
    while (j < n) {
      const c = s.charCodeAt(j)
      if (isSpace(c) || c === 0x2f || c === 0x3e || c === 0x3d) break
      j++
    }
    const name = s.slice(start, j).toLowerCase()
    let k = j
    while (k < n && isSpace(s.charCodeAt(k))) k++
    if (s[k] !== '=') {
      attrs.push({name, start, end: j, valueStart: -1, valueEnd: -1, quote: ''})
      continue
    }
    k++
    while (k < n && isSpace(s.charCodeAt(k))) k++
    const q = s[k]
    if (q === '"' || q === "'") {
      const close = s.indexOf(q, k + 1)
      if (close < 0) return undefined
      attrs.push({name, start, end: close + 1, valueStart: k + 1, valueEnd: close, quote: q})
      j = close + 1
    } else {
      let e = k
      while (e < n && !isSpace(s.charCodeAt(e)) && s[e] !== '>') e++
      attrs.push({name, start, end: e, valueStart: k, valueEnd: e, quote: ''})
      j = e
    }
  }
}

/** Index of the end tag `</name` closing raw text that starts at `from`, or the end of the text. */
function findRawTextEnd(s: string, name: string, from: number): number {
  let i = from
  const lower = name.toLowerCase()
  for (;;) {
    const lt = s.indexOf('</', i)
    if (lt < 0) return s.length
    const after = s.charCodeAt(lt + 2 + lower.length)
    if (s.slice(lt + 2, lt + 2 + lower.length).toLowerCase() === lower && (Number.isNaN(after) || isSpace(after) || after === 0x2f || after === 0x3e)) {
      return lt
    }
    i = lt + 2
  }
}

interface StartTag {
  name: string
  attrs: Attr[]
  start: number
  end: number
}

/**
 * Calls `onTag` for every start tag and `onStyle` for the CSS inside every <style>, in document
 * order, skipping comments, doctype, CDATA, end tags and the content of raw text elements.
 */
function walk(s: string, onTag: (tag: StartTag) => void, onStyle: (start: number, end: number) => void): void {
  const n = s.length
  let i = 0
  while (i < n) {
    const lt = s.indexOf('<', i)
    if (lt < 0) return
    const next = s.charCodeAt(lt + 1)
    if (s.startsWith('<!--', lt)) {
      // "<!-->" and "<!--->" are complete (empty) comments.
      if (s[lt + 4] === '>') i = lt + 5
      else if (s.startsWith('->', lt + 4)) i = lt + 6
      else {
        const close = s.indexOf('-->', lt + 4)
        const bang = s.indexOf('--!>', lt + 4)
        const end = close < 0 ? bang : bang < 0 ? close : Math.min(close, bang)
        i = end < 0 ? n : end + (end === bang ? 4 : 3)
      }
      continue
    }
    if (s.startsWith('<![CDATA[', lt)) {
      const close = s.indexOf(']]>', lt + 9)
      i = close < 0 ? n : close + 3
      continue
    }
    if (next === 0x21 || next === 0x3f || next === 0x2f) {
      // Doctype, processing instruction, end tag: nothing of ours until the next ">".
      const close = s.indexOf('>', lt + 2)
      i = close < 0 ? n : close + 1
      continue
    }
    if (!isAlpha(next)) {
      i = lt + 1
      continue
    }
    let j = lt + 1
    while (j < n) {
      const c = s.charCodeAt(j)
      if (isSpace(c) || c === 0x2f || c === 0x3e) break
      j++
    }
    const name = s.slice(lt + 1, j).toLowerCase()
    const parsed = readAttributes(s, j)
    if (!parsed) return
    onTag({name, attrs: parsed.attrs, start: lt, end: parsed.end})
    i = parsed.end
    if (name === 'plaintext') return
    if (RAW_TEXT.has(name)) {
      const close = findRawTextEnd(s, name, i)
      if (name === 'style') onStyle(i, close)
      i = close
    }
  }
}

const decoders = new Map<string, TextDecoder>()

/** Text of a latin1 "binary" slice in the page's charset. */
export function decodeBinary(binary: string, charset = 'utf-8'): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(binary)) return binary
  let decoder = decoders.get(charset)
  if (!decoder) {
    try {
      decoder = new TextDecoder(charset)
    } catch {
      decoder = new TextDecoder('utf-8')
    }
    decoders.set(charset, decoder)
  }
  return decoder.decode(Buffer.from(binary, 'latin1'))
}

const NAMED: Record<string, string> = {amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', sol: '/', colon: ':', quest: '?', equals: '=', num: '#', percnt: '%', period: '.', comma: ','}

/** Character references in an attribute value, as browsers decode them there. */
export function decodeEntities(value: string): string {
  if (!value.includes('&')) return value
  return value.replace(/&(#[xX][0-9A-Fa-f]+;?|#\d+;?|[A-Za-z][A-Za-z0-9]*;?)(?=(.?))/g, (all, ref: string, following: string) => {
    if (ref[0] === '#') {
      const hex = ref[1] === 'x' || ref[1] === 'X'
      const code = Number.parseInt(ref.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10)
      if (!Number.isFinite(code) || code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return '\ufffd'
      return String.fromCodePoint(code)
    }
    if (ref.endsWith(';')) return NAMED[ref.slice(0, -1)] ?? all
    // Without ";" only the legacy four decode, and not before "=" or an alphanumeric (`?a=1&ampx=2`).
    if (['amp', 'lt', 'gt', 'quot'].includes(ref) && !/[=A-Za-z0-9]/.test(following)) return NAMED[ref]
    return all
  })
}

/** An attribute value written back: quoted, with "&", the quote and non-ASCII as references. */
function encodeAttr(value: string, quote: '"' | "'"): string {
  let out = value.replace(/&/g, '&amp;')
  out = quote === '"' ? out.replace(/"/g, '&quot;') : out.replace(/'/g, '&#39;')
  return out.replace(/[^\x20-\x7e]/gu, (c) => `&#${c.codePointAt(0)};`)
}

interface SrcsetCandidate {
  url: string
  descriptor: string
}

/** srcset as the HTML spec splits it: URLs may contain commas, descriptors may contain parentheses. */
export function parseSrcset(value: string): SrcsetCandidate[] {
  const out: SrcsetCandidate[] = []
  let i = 0
  const n = value.length
  for (;;) {
    while (i < n && (/\s/.test(value[i]) || value[i] === ',')) i++
    if (i >= n) return out
    const start = i
    while (i < n && !/\s/.test(value[i])) i++
    let url = value.slice(start, i)
    let descriptor = ''
    if (url.endsWith(',')) {
      url = url.replace(/,+$/, '')
    } else {
      const dStart = i
      let depth = 0
      while (i < n) {
        const c = value[i]
        if (c === '(') depth++
        else if (c === ')') depth = Math.max(0, depth - 1)
        else if (c === ',' && depth === 0) break
        i++
      }
      descriptor = value.slice(dStart, i).trim()
      i++
    }
    if (url) out.push({url, descriptor})
  }
}

function attrValue(s: string, attr: Attr | undefined, charset: string): string | undefined {
  if (!attr) return undefined
  if (attr.valueStart < 0) return ''
  return decodeEntities(decodeBinary(s.slice(attr.valueStart, attr.valueEnd), charset))
}

function relTokens(value: string | undefined): string[] {
  return (value ?? '').toLowerCase().split(/\s+/).filter(Boolean)
}

function linkKind(rels: string[]): {kind: RefKind; self: boolean} {
  if (rels.some((r) => ASSET_RELS.has(r))) return {kind: 'asset', self: false}
  if (rels.some((r) => SELF_RELS.has(r))) return {kind: 'page', self: true}
  if (rels.some((r) => PAGE_RELS.has(r))) return {kind: 'page', self: false}
  return {kind: 'other', self: false}
}

/** `0; url=/next` → the URL part and how to put a new URL back. */
function parseRefresh(content: string): {url: string; rebuild: (url: string) => string} | undefined {
  const match = /^(\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?)(['"]?)(.*?)\2(\s*)$/is.exec(content)
  if (!match || !match[3] || !/[;,]|url\s*=/i.test(match[1])) return undefined
  return {url: match[3], rebuild: (url) => `${match[1]}${match[2]}${url}${match[2]}${match[4]}`}
}

/** The replacement for one URL (undefined: leave it as written). */
export type RefRewriter = (ref: HtmlRef) => string | undefined

interface Edit {
  start: number
  end: number
  text: string
}

/**
 * The one pass both scanning and rewriting use: every URL of the page goes through `onRef`; a
 * returned string replaces it. Returns the scan and the edits to apply.
 */
function processHtml(s: string, charset: string, onRef: RefRewriter, dropBase: boolean): {scan: HtmlScan; edits: Edit[]} {
  const scan: HtmlScan = {refs: [], noindex: false, nofollow: false}
  const edits: Edit[] = []
  const visit = (ref: HtmlRef) => {
    scan.refs.push(ref)
    return onRef(ref)
  }
  const replaceValue = (attr: Attr, value: string) => {
    const quote = attr.quote || '"'
    const text = encodeAttr(value, quote)
    if (attr.quote) edits.push({start: attr.valueStart, end: attr.valueEnd, text})
    else edits.push({start: attr.valueStart, end: attr.valueEnd, text: `"${text}"`})
  }
  const cssRefs = (css: string, tag: string, attr: string) =>
    rewriteCss(css, (u) => visit({url: u.value.trim(), kind: 'asset', tag, attr, nofollow: false, self: false}))

  walk(
    s,
    (tag) => {
      const byName = new Map<string, Attr>()
      for (const a of tag.attrs) if (!byName.has(a.name)) byName.set(a.name, a)
      const get = (name: string) => attrValue(s, byName.get(name), charset)

      if (tag.name === 'base') {
        const href = byName.get('href')
        if (href && scan.base === undefined) {
          scan.base = get('href')?.trim()
          // Saved pages link by relative file names, which a <base> would send elsewhere.
          if (dropBase) {
            let start = href.start
            while (start > 0 && isSpace(s.charCodeAt(start - 1))) start--
            edits.push({start, end: href.end, text: ''})
          }
        }
      }
      if (tag.name === 'meta') {
        const name = get('name')?.toLowerCase()
        if (name === 'robots') {
          const directives = (get('content') ?? '').toLowerCase().split(/[\s,]+/)
          if (directives.includes('noindex') || directives.includes('none')) scan.noindex = true
          if (directives.includes('nofollow') || directives.includes('none')) scan.nofollow = true
        }
      }

      const table = URL_ATTRS[tag.name]
      const rels = tag.name === 'link' || tag.name === 'a' || tag.name === 'area' ? relTokens(get('rel')) : []
      const nofollow = rels.includes('nofollow')
      for (const [name, attr] of byName) {
        if (attr.valueStart < 0) continue
        if (name === 'style') {
          const css = get('style') ?? ''
          const out = cssRefs(css, tag.name, 'style')
          if (out !== css) replaceValue(attr, out)
          continue
        }
        const type = table?.[name]
        if (!type) continue
        const value = get(name) ?? ''
        if (type === 'srcset') {
          const candidates = parseSrcset(value)
          let changed = false
          for (const c of candidates) {
            const next = visit({url: c.url, kind: 'asset', tag: tag.name, attr: name, nofollow: false, self: false})
            if (next !== undefined) {
              c.url = next
              changed = true
            }
          }
          if (changed) replaceValue(attr, candidates.map((c) => (c.descriptor ? `${c.url} ${c.descriptor}` : c.url)).join(', '))
          continue
        }
        if (type === 'refresh') {
          if (get('http-equiv')?.toLowerCase() !== 'refresh') continue
          const refresh = parseRefresh(value)
          if (!refresh) continue
          const next = visit({url: refresh.url.trim(), kind: 'page', tag: tag.name, attr: name, nofollow: false, self: false})
          if (next !== undefined) replaceValue(attr, refresh.rebuild(next))
          continue
        }
        let kind: RefKind = type === 'link' ? 'other' : type
        let self = false
        if (type === 'link') ({kind, self} = linkKind(rels))
        const next = visit({url: value.trim(), kind, tag: tag.name, attr: name, nofollow, self})
        if (next !== undefined) replaceValue(attr, next)
      }
    },
    (start, end) => {
      const css = s.slice(start, end)
      const out = rewriteCss(css, (u) => {
        const next = visit({url: decodeBinary(u.value, charset).trim(), kind: 'asset', tag: 'style', attr: '', nofollow: false, self: false})
        // The replacement lands in raw bytes: keep it ASCII so the page's charset does not matter.
        return next === undefined ? undefined : next.replace(/[^\x20-\x7e]/gu, encodeURIComponent)
      })
      if (out !== css) edits.push({start, end, text: out})
    },
  )
  return {scan, edits}
}

/** The page's links, embeds, <base> and robots directives. `html` is a latin1 binary string. */
export function scanHtml(html: string, charset = 'utf-8'): HtmlScan {
  return processHtml(html, charset, () => undefined, false).scan
}

/**
 * The page with every URL for which `rewrite` returns a value replaced, and <base href>
 * removed when `dropBase` (the caller then resolves links itself). Bytes elsewhere are kept.
 */
export function rewriteHtml(html: string, charset: string, rewrite: RefRewriter, options: {dropBase?: boolean} = {}): string {
  const {edits} = processHtml(html, charset, rewrite, options.dropBase ?? false)
  if (edits.length === 0) return html
  edits.sort((a, b) => a.start - b.start)
  let out = ''
  let last = 0
  for (const edit of edits) {
    if (edit.start < last) continue
    out += html.slice(last, edit.start) + edit.text
    last = edit.end
  }
  return out + html.slice(last)
}

/** The charset a page declares in its first bytes (<meta charset> or http-equiv), if any. */
export function sniffCharset(html: string): string | undefined {
  const head = html.slice(0, 4096)
  const direct = /<meta\s[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head)
  return direct?.[1].toLowerCase()
}

/** The CSS URLs of a stylesheet file (binary string), decoded for resolution. */
export function cssUrls(css: string, charset = 'utf-8'): Array<{url: string; import: boolean}> {
  return findCssUrls(css).map((u) => ({url: decodeBinary(u.value, charset).trim(), import: u.import}))
}
