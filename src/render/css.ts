// Finds and replaces the URLs in CSS text: `url(...)` (quoted or not, with escapes), `@import`
// strings and `image-set()` strings, skipping comments. Works on any string; a stylesheet file
// is passed as a latin1 "binary" string so that bytes outside the URLs survive untouched. Pure.

export interface CssUrl {
  /** The URL as written, CSS escapes decoded, not resolved. */
  value: string
  /** Span of the whole token that a replacement takes the place of. */
  start: number
  end: number
  /** `url(...)` token or a bare string (`@import "x"`, `image-set("x" 1x)`). */
  form: 'url' | 'string'
  quote: '"' | "'" | ''
  /** The URL is a stylesheet (@import) rather than an image, font or the like. */
  import: boolean
}

const isWhitespace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f'
const isIdentChar = (c: string) => /[A-Za-z0-9_-]/.test(c) || c.charCodeAt(0) >= 0x80

/** Reads a CSS escape at `i` (the backslash); returns the decoded text and the index after it. */
function readEscape(text: string, i: number): [string, number] {
  let j = i + 1
  if (j >= text.length) return ['', j]
  const hex = /^[0-9A-Fa-f]{1,6}/.exec(text.slice(j, j + 6))
  if (hex) {
    j += hex[0].length
    if (text[j] === '\r' && text[j + 1] === '\n') j += 2
    else if (isWhitespace(text[j] ?? '')) j += 1
    const code = Number.parseInt(hex[0], 16)
    return [code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) ? '\ufffd' : String.fromCodePoint(code), j]
  }
  // A backslash before a newline inside a string continues the line.
  if (text[j] === '\n') return ['', j + 1]
  if (text[j] === '\r') return ['', text[j + 1] === '\n' ? j + 2 : j + 1]
  return [text[j], j + 1]
}

/** Reads a string token starting at the quote at `i`; returns its value and the index after it. */
function readString(text: string, i: number): [string, number] {
  const quote = text[i]
  let value = ''
  let j = i + 1
  while (j < text.length) {
    const c = text[j]
    if (c === quote) return [value, j + 1]
    // An unescaped newline ends a string in error; the browser drops it.
    if (c === '\n') return [value, j]
    if (c === '\\') {
      const [decoded, next] = readEscape(text, j)
      value += decoded
      j = next
      continue
    }
    value += c
    j++
  }
  return [value, j]
}

export function findCssUrls(text: string): CssUrl[] {
  const found: CssUrl[] = []
  const functions: string[] = []
  let pendingImport = false
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i]
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      i = end < 0 ? n : end + 2
      continue
    }
    if (c === '"' || c === "'") {
      const [value, end] = readString(text, i)
      const inImageSet = /^(-webkit-)?image-set$/.test(functions.at(-1) ?? '')
      if (pendingImport || inImageSet) {
        found.push({value, start: i, end, form: 'string', quote: c, import: pendingImport})
      }
      pendingImport = false
      i = end
      continue
    }
    if (c === '@') {
      let j = i + 1
      while (j < n && isIdentChar(text[j])) j++
      pendingImport = text.slice(i + 1, j).toLowerCase() === 'import'
      i = j
      continue
    }
    if (c === '\\') {
      i = readEscape(text, i)[1]
      continue
    }
    if (isIdentChar(c)) {
      let j = i
      while (j < n && (isIdentChar(text[j]) || text[j] === '\\')) j += text[j] === '\\' ? 2 : 1
      const name = text.slice(i, j).toLowerCase()
      if (text[j] !== '(') {
        i = j
        continue
      }
      if (name === 'url') {
        const token = readUrlToken(text, i, j + 1)
        if (token) {
          found.push({...token, import: pendingImport})
          pendingImport = false
          i = token.end
          continue
        }
      }
      functions.push(name)
      i = j + 1
      continue
    }
    if (c === '(') functions.push('')
    else if (c === ')') functions.pop()
    else if (c === ';' || c === '{' || c === '}') pendingImport = false
    i++
  }
  return found
}

/** Parses `url(` ... `)` whose "(" ends just before `from`; `start` is where "url" begins. */
function readUrlToken(text: string, start: number, from: number): Omit<CssUrl, 'import'> | undefined {
  let j = from
  while (j < text.length && isWhitespace(text[j])) j++
  const q = text[j]
  if (q === '"' || q === "'") {
    const [value, after] = readString(text, j)
    let k = after
    while (k < text.length && isWhitespace(text[k])) k++
    if (text[k] !== ')') return undefined
    return {value, start, end: k + 1, form: 'url', quote: q}
  }
  let value = ''
  while (j < text.length) {
    const c = text[j]
    if (c === ')') return {value: value.trimEnd(), start, end: j + 1, form: 'url', quote: ''}
    if (c === '\\') {
      const [decoded, next] = readEscape(text, j)
      value += decoded
      j = next
      continue
    }
    // Quotes or "(" inside an unquoted url() make it a bad URL: browsers ignore it, so do we.
    if (c === '"' || c === "'" || c === '(') return undefined
    value += c
    j++
  }
  return undefined
}

function escapeCss(value: string, quote: '"' | "'" | ''): string {
  if (quote) {
    return value.replace(/[\\\n\r\f]/g, (c) => (c === '\\' ? '\\\\' : `\\${c.charCodeAt(0).toString(16)} `)).split(quote).join(`\\${quote}`)
  }
  return value.replace(/[\\()'"\s]/g, (c) => (isWhitespace(c) ? `\\${c.charCodeAt(0).toString(16)} ` : `\\${c}`))
}

/**
 * Replaces the URLs for which `replace` returns a new value, keeping each token's form and
 * quoting; everything else in the text is copied as is.
 */
export function rewriteCss(text: string, replace: (url: CssUrl) => string | undefined): string {
  const urls = findCssUrls(text)
  let out = ''
  let last = 0
  for (const url of urls) {
    const next = replace(url)
    if (next === undefined) continue
    const body = url.quote ? `${url.quote}${escapeCss(next, url.quote)}${url.quote}` : escapeCss(next, '')
    out += text.slice(last, url.start) + (url.form === 'url' ? `url(${body})` : body)
    last = url.end
  }
  return last === 0 ? text : out + text.slice(last)
}
