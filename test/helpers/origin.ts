// Test harness: a real HTTP server on 127.0.0.1 serving a generated dynamic site, the kind
// `mirror render` crawls: every link kind, redirects, errors, robots.txt, sitemaps (index, gzip),
// query strings, non-ASCII paths, edit/login/history links on every page, an endless calendar,
// ETag/Last-Modified, a volatile <meta name="generated">. Not a fake of anything of ours; the
// render benchmark reuses it with `posts` and `latencyMs`.

import {createHash} from 'node:crypto'
import * as fs from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'

export interface OriginOptions {
  /** Blog posts generated (the site has about 25 other pages besides). */
  posts?: number
  /** Size the site by its pages instead: posts are added until the site has about this many. */
  pages?: number
  /** Milliseconds each HTML page takes to answer, like a CMS rendering it. */
  latencyMs?: number
  /** Milliseconds each static file takes. */
  assetLatencyMs?: number
  /** Send ETag and Last-Modified and answer conditional requests with 304 (default true). */
  validators?: boolean
}

export interface Origin {
  /** `http://127.0.0.1:<port>` */
  url: string
  port: number
  /** "/path?query" of every request, in arrival order. */
  requests: string[]
  /** How many requests were answered 304 Not Modified. */
  notModified: number
  /** The most requests the server was answering at the same time. */
  maxInFlight: number
  /** Paths of the site's real pages (what a snapshot should hold as HTML). */
  pages: string[]
  /** Changes the text of a page: its body and its validators change. */
  edit(path: string, text: string): void
  /** Makes a path answer with this status (and a small error page), or undoes it with undefined. */
  setStatus(path: string, status: number | undefined): void
  /** The next `times` requests for a path answer `status` (default 503), then it recovers. */
  flaky(path: string, times: number, status?: number): void
  /** Requests for a path are never answered (the connection stays open). */
  stall(path: string): void
  /** After `n` more requests the server stops: connections are cut and new ones refused. */
  dieAfter(n: number): void
  close(): Promise<void>
}

/** Volatile, like a CMS that prints when the page was generated: differs on every request. */
export const GENERATED_META = '<meta name="generated" content="[^"]*">'

const CALENDAR_START = {year: 2024, month: 5}
/** Pages of the site besides the posts and the blog's own index pages (counted from the routes below). */
const FIXED_PAGES = 26
const POSTS_PER_PAGE = 10

interface Answer {
  status: number
  type?: string
  body?: string | Buffer
  location?: string
  /** False for pages that are built fresh every time with no validators (like most PHP). */
  validators?: boolean
  headers?: Record<string, string>
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')

export async function startOrigin(options: OriginOptions = {}): Promise<Origin> {
  const posts = options.posts ?? (options.pages ? Math.max(1, options.pages - FIXED_PAGES) : 12)
  const latency = options.latencyMs ?? 0
  const assetLatency = options.assetLatencyMs ?? 0
  const useValidators = options.validators ?? true
  const edits = new Map<string, {text: string; version: number}>()
  const statuses = new Map<string, number>()
  const flaky = new Map<string, {times: number; status: number}>()
  const stalled = new Set<string>()
  let inFlight = 0
  let maxInFlight = 0
  const started = Math.floor(Date.now() / 1000) * 1000 - 60_000
  let dieAfter = Number.POSITIVE_INFINITY
  let dead = false
  let port = 0
  const origin = {requests: [] as string[], notModified: 0}
  const self = () => `http://127.0.0.1:${port}`

  const text = (path: string, fallback: string) => edits.get(path)?.text ?? fallback
  const versionOf = (path: string) => edits.get(path)?.version ?? 0

  const layout = (pathAndQuery: string, title: string, body: string, head = '') => {
    const path = pathAndQuery.split('?')[0]
    return `<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<meta name="generated" content="${new Date().toISOString()}">
<link rel="stylesheet" href="/assets/site.css">
<link rel='icon' href='/favicon.ico'>
<link rel="canonical" href="${self()}${pathAndQuery}">
<link rel="edit" href="${esc(path)}?do=edit">
<script src="/assets/app.js"></script>
<style>.hero { background: url("/img/hero.png") no-repeat }</style>
${head}</head><body>
<nav><a href="/">Home</a> <a href="/about">About</a> <a href='/blog/'>Blog</a> <a href="/docs/">Docs</a>
<a href="/caf%C3%A9/men%C3%BC">Café</a> <a href="/calendar/">Calendar</a> <a href="/list.php?page=1">List</a></nav>
<div class="tools"><a href="?do=edit" rel="nofollow">Edit</a> <a href="${esc(path)}?do=revisions">Old revisions</a>
<a href="/login?return=${encodeURIComponent(path)}">Log in</a> <a href="${esc(path)}?action=history">History</a>
<a href="${esc(path)}?do=diff&amp;rev=2">Diff</a></div>
<main>${body}</main>
<!-- <a href="/in-comment">not a link</a> -->
<script>var tpl = '<a href="/in-script">not a link</a>';</script>
<footer><a href="https://example.com/elsewhere">Elsewhere</a> <a href="mailto:web@example.com">Mail</a> <a href="#top">Top</a></footer>
</body></html>
`
  }

  const page = (path: string, title: string, body: string, head = ''): Answer => ({
    status: 200,
    type: 'text/html; charset=utf-8',
    body: layout(path, title, body, head),
  })

  const postPath = (i: number) => `/blog/post-${i}`
  const postLinks = (from: number, to: number) =>
    Array.from({length: Math.max(0, to - from + 1)}, (_, k) => `<li><a href="${postPath(from + k)}">Post ${from + k}</a></li>`).join('\n')

  const pages = new Map<string, () => Answer>()
  const add = (path: string, make: () => Answer) => pages.set(path, make)

  add('/', () => ({
    ...page(
      '/',
      'Home',
      `<h1 class="hero">Welcome</h1>
<p>${esc(text('/', 'The home page.'))}</p>
<img src=img/logo.png alt=logo>
<img srcset="/img/photo-1x.jpg 1x, /img/photo-2x.jpg 2x" src='/img/photo-1x.jpg' alt="photo">
<picture><source srcset="/img/photo.webp" type="image/webp"><img src="/img/photo-1x.jpg" alt=""></picture>
<video poster="/media/poster.jpg" src=media/clip.mp4 controls></video>
<audio src="/media/sound.mp3"></audio>
<div style="background-image: url('/img/inline.png')">inline style</div>
<ul>
<li><a href="/old-about">Old about (redirect)</a></li>
<li><a href="/chain">Redirect chain</a></li>
<li><a href="/moved">Moved blog</a></li>
<li><a href="/go-out">Off-site redirect</a></li>
<li><a href="/missing">Missing page</a></li>
<li><a href="/broken">Broken page</a></li>
<li><a href="/private/secret">Private</a></li>
<li><a href="/noindex">Not indexed</a></li>
<li><a href="/nofollow">Not followed</a></li>
<li><a rel="nofollow" href="/only-nofollowed">Only by nofollow</a></li>
<li><a href="/files/report%202024.pdf">Report (PDF)</a></li>
<li><a href="/feed">Feed</a></li>
<li><a href="${self()}/about#team">About, absolute</a></li>
<li><a href="//127.0.0.1:${port}/docs/">Docs, protocol-relative</a></li>
<li><a href="/wiki/Stra%C3%9Fe">Straße</a></li>
<li><a href="/search?q=caf%C3%A9&amp;page=1">Search</a></li>
<li><a href="/pages/12/edit">Edit page 12</a></li>
<li><a href="/quirks">Quirks</a></li>
<li><a href="https://www.example.test/about">About, at the public URL</a></li>
</ul>`,
    ),
    validators: false,
  }))
  add('/about', () => page('/about', 'About', `<h2 id="team">Team</h2><p>${esc(text('/about', 'About us.'))}</p>`))
  add('/blog/', () => page('/blog/', 'Blog', `<ul>${postLinks(1, Math.min(POSTS_PER_PAGE, posts))}</ul>${posts > POSTS_PER_PAGE ? '<a href="?page=2">Older posts</a>' : ''}`))
  for (let p = 2; (p - 1) * POSTS_PER_PAGE < posts; p++) {
    const from = (p - 1) * POSTS_PER_PAGE + 1
    const next = p * POSTS_PER_PAGE < posts ? `<a href="/blog/?page=${p + 1}">Older posts</a>` : ''
    add(`/blog/?page=${p}`, () => page(`/blog/?page=${p}`, `Blog page ${p}`, `<ul>${postLinks(from, Math.min(from + POSTS_PER_PAGE - 1, posts))}</ul>${next}`))
  }
  for (let i = 1; i <= posts; i++) {
    const path = postPath(i)
    add(path, () =>
      page(
        path,
        `Post ${i}`,
        `<article><h1>Post ${i}</h1><p>${esc(text(path, `Text of post ${i}.`))}</p>
<img src="/img/post-${i}.jpg" alt="">
<p><a href="../about">About</a>${i > 1 ? ` <a href="post-${i - 1}">Previous</a>` : ''}${i < posts ? ` <a href="post-${i + 1}">Next</a>` : ''}</p></article>`,
      ),
    )
  }
  add('/docs/', () =>
    page('/docs/', 'Docs', '<p><a href="intro">Introduction</a> <a href="../api/">API</a> <img src="diagram.png" alt=""> <a href="/about">About</a></p>', '<base href="/docs/guide/">\n'),
  )
  add('/docs/guide/intro', () => page('/docs/guide/intro', 'Introduction', '<p>Start here. <a href="/docs/">Docs</a></p>'))
  add('/docs/api/', () => page('/docs/api/', 'API', '<p>The API. <a href="/docs/guide/intro">Introduction</a></p>'))
  add('/caf%C3%A9/men%C3%BC', () => page('/caf%C3%A9/men%C3%BC', 'Café menü', '<h1>Café Menü</h1><p><a href="../about">About</a></p>'))
  add('/wiki/Stra%C3%9Fe', () => page('/wiki/Stra%C3%9Fe', 'Straße', '<p>Eine Straße. <a href="/wiki/Stra%C3%9Fe?action=edit">Bearbeiten</a></p>'))
  add('/search?q=caf%C3%A9&page=1', () => page('/search?q=caf%C3%A9&page=1', 'Search', '<p>Results for café.</p>'))
  for (let n = 1; n <= 3; n++) {
    add(`/list.php?page=${n}`, () => page(`/list.php?page=${n}`, `List ${n}`, `<p>Page ${n}</p>${n < 3 ? `<a href="list.php?page=${n + 1}">Next</a>` : ''}`))
  }
  add('/noindex', () => page('/noindex', 'Drafts', '<p><a href="/from-noindex">Only linked from a noindex page</a></p>', '<meta name="robots" content="noindex">\n'))
  add('/from-noindex', () => page('/from-noindex', 'From noindex', '<p>Reached through a noindex page.</p>'))
  add('/nofollow', () => page('/nofollow', 'Nofollow', '<p><a href="/nofollow-target">Not followed</a></p>', '<meta name="robots" content="nofollow">\n'))
  add('/nofollow-target', () => page('/nofollow-target', 'Nofollow target', '<p>Only linked from a nofollow page.</p>'))
  add('/only-nofollowed', () => page('/only-nofollowed', 'Only nofollowed', '<p>Only linked with rel=nofollow.</p>'))
  // Valid HTML that trips some crawlers (wget2 1.99 stops reading a page at an unquoted value starting with "/"): kept on a page of its own, last.
  add('/quirks', () => page('/quirks', 'Quirks', '<p>Unquoted values:</p>\n<a href=/about#team class=x>About</a> <img src=/img/quirk.png alt=q>'))
  add('/orphan', () => page('/orphan', 'Orphan', '<p>Only the sitemap names this page.</p>'))
  add('/private/secret', () => page('/private/secret', 'Secret', '<p>robots.txt forbids this.</p>'))
  add('/calendar/', () => page('/calendar/', 'Calendar', `<p><a href="/calendar/${CALENDAR_START.year}/${pad(CALENDAR_START.month)}">This month</a></p>`))

  // What a polite snapshot holds: not robots-forbidden, noindex or nofollow-only pages, nor the endless calendar behind /calendar/.
  const notInSnapshot = new Set(['/private/secret', '/noindex', '/nofollow-target', '/only-nofollowed'])
  const realPages = [...pages.keys()].filter((p) => !notInSnapshot.has(p))

  const staticFile = (path: string): Answer | undefined => {
    const type = typeOf(path)
    if (path === '/assets/site.css') {
      return {
        status: 200,
        type: 'text/css',
        body: `@charset "utf-8";
@import url("base.css");
@import 'print.css' print;
/* url(/img/in-css-comment.png) */
body { background: #fff url(../img/bg.png) repeat-x; }
@font-face { font-family: X; src: url("/fonts/x.woff2") format("woff2"), url('/fonts/x.woff') format("woff"); }
.logo { background-image: url( '/img/logo.png' ); }
.note::before { content: "${esc(text(path, 'note'))}"; }
`,
      }
    }
    if (path === '/assets/base.css') return {status: 200, type: 'text/css', body: 'h1 { background: url(/img/h1.png?v=2) }\n'}
    if (path === '/assets/print.css') return {status: 200, type: 'text/css', body: 'body { color: #000 }\n'}
    if (path === '/assets/app.js') return {status: 200, type: 'text/javascript', body: `console.log(${JSON.stringify(text(path, 'app'))})\n`}
    if (path === '/feed') {
      return {status: 200, type: 'application/rss+xml', body: `<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title><link>${self()}/</link></channel></rss>\n`}
    }
    if (path === '/files/report%202024.pdf') return {status: 200, type: 'application/pdf', body: Buffer.from('%PDF-1.4 report 2024\n')}
    if (path === '/favicon.ico' || /^\/(img|media|fonts|docs\/guide)\/[\w.-]+\.(png|jpg|webp|mp4|mp3|woff2?|ico)$/.test(path)) {
      return {status: 200, type, body: Buffer.from(`${type}:${path}:${text(path, '')}`)}
    }
    return undefined
  }

  const calendar = (path: string): Answer | undefined => {
    const month = /^\/calendar\/(\d{4})\/(\d{2})$/.exec(path)
    if (month) {
      const [y, m] = [Number(month[1]), Number(month[2])]
      const prev = m === 1 ? `${y - 1}/12` : `${y}/${pad(m - 1)}`
      const next = m === 12 ? `${y + 1}/01` : `${y}/${pad(m + 1)}`
      return page(path, `${y}-${pad(m)}`, `<a href="/calendar/${prev}">Previous month</a> <a href="/calendar/${next}">Next month</a> <a href="/calendar/${y}/${pad(m)}/01">1st</a> <a href="/calendar/${y}/${pad(m)}/15">15th</a>`)
    }
    const day = /^\/calendar\/(\d{4})\/(\d{2})\/(\d{2})$/.exec(path)
    if (day) {
      const date = new Date(Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3])))
      const link = (d: Date) => `/calendar/${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}`
      const before = new Date(date.getTime() - 86_400_000)
      const after = new Date(date.getTime() + 86_400_000)
      return page(path, link(date), `<a href="${link(before)}">Previous day</a> <a href="${link(after)}">Next day</a> <a href="/calendar/${day[1]}/${day[2]}">Month</a>`)
    }
    return undefined
  }

  const answer = (path: string, search: string): Answer => {
    const key = path + search
    const hiccup = flaky.get(key)
    if (hiccup && hiccup.times > 0) {
      hiccup.times--
      return {status: hiccup.status, type: 'text/html', body: `<h1>HTTP ${hiccup.status}</h1>`, validators: false}
    }
    const forced = statuses.get(key) ?? statuses.get(path)
    if (forced !== undefined) return {status: forced, type: 'text/html', body: `<h1>HTTP ${forced}</h1>`, validators: false}
    if (path === '/robots.txt') {
      return {
        status: 200,
        type: 'text/plain',
        body: `User-agent: *\nDisallow: /private/\nDisallow: /*?print=\n\nUser-agent: BadBot\nDisallow: /\n\nSitemap: ${self()}/sitemap.xml\n`,
      }
    }
    if (path === '/sitemap.xml') {
      return {
        status: 200,
        type: 'application/xml',
        body: `<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>${self()}/sitemap-posts.xml.gz</loc></sitemap>
<sitemap><loc>${self()}/sitemap-pages.xml</loc></sitemap>
</sitemapindex>
`,
      }
    }
    if (path === '/sitemap-posts.xml.gz') {
      const urls = Array.from({length: posts}, (_, k) => `<url><loc>${self()}${postPath(k + 1)}</loc></url>`).join('\n')
      return {status: 200, type: 'application/gzip', body: gzipSync(`<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${urls}\n</urlset>\n`)}
    }
    if (path === '/sitemap-pages.xml') {
      const locs = ['/', '/about', '/orphan', '/private/secret'].map((p) => `<url><loc>${self()}${p}</loc></url>`).join('\n')
      return {status: 200, type: 'application/xml', body: `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${locs}\n</urlset>\n`}
    }
    if (path === '/old-about') return {status: 301, location: '/about'}
    if (path === '/chain') return {status: 302, location: `${self()}/old-about`}
    if (path === '/moved') return {status: 301, location: '/blog/'}
    if (path === '/go-out') return {status: 302, location: 'https://example.com/'}
    if (path === '/broken') return {status: 500, type: 'text/html', body: '<h1>Internal Server Error</h1>'}
    const make = pages.get(key)
    if (make) return make()
    const file = staticFile(path) ?? calendar(path)
    if (file) return file
    // Tools answer like a CMS would: with a page, full of more tool links.
    if (search.includes('do=') || search.includes('action=') || path === '/login' || path.endsWith('/edit')) return page(key, 'Tool', '<form><textarea></textarea></form>')
    return {status: 404, type: 'text/html', body: '<h1>Not Found</h1>'}
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    origin.requests.push(url.pathname + url.search)
    if (origin.requests.length > dieAfter) {
      die()
      req.socket.destroy()
      return
    }
    if (stalled.has(url.pathname + url.search)) return
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    res.on('close', () => inFlight--)
    const result = answer(url.pathname, url.search)
    const isHtml = result.type?.startsWith('text/html') ?? false
    const delay = isHtml ? latency : assetLatency
    const send = () => {
      if (dead) {
        req.socket.destroy()
        return
      }
      const headers: Record<string, string> = {...result.headers}
      if (result.type) headers['content-type'] = result.type
      if (result.location) headers.location = result.location
      const body = typeof result.body === 'string' ? Buffer.from(result.body) : (result.body ?? Buffer.alloc(0))
      if (useValidators && result.status === 200 && result.validators !== false) {
        const key = url.pathname + url.search
        const stable = body.toString('latin1').replace(new RegExp(GENERATED_META, 'g'), '')
        const etag = `"${createHash('sha1').update(stable).digest('hex').slice(0, 16)}"`
        const lastModified = new Date(started + versionOf(key) * 1000 + (edits.has(key) ? 30_000 : 0)).toUTCString()
        headers.etag = etag
        headers['last-modified'] = lastModified
        const inm = req.headers['if-none-match']
        const ims = req.headers['if-modified-since']
        const fresh = inm ? inm.split(',').map((t) => t.trim()).includes(etag) : ims ? Date.parse(ims) >= Date.parse(lastModified) : false
        if (fresh) {
          origin.notModified++
          res.writeHead(304, {etag, 'last-modified': lastModified})
          res.end()
          return
        }
      }
      res.writeHead(result.status, headers)
      res.end(body)
    }
    if (delay > 0) setTimeout(send, delay)
    else send()
  })

  const die = () => {
    if (dead) return
    dead = true
    server.close()
    server.closeAllConnections()
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port

  return {
    url: self(),
    port,
    get requests() {
      return origin.requests
    },
    get notModified() {
      return origin.notModified
    },
    get maxInFlight() {
      return maxInFlight
    },
    pages: realPages,
    edit(path, value) {
      edits.set(path, {text: value, version: versionOf(path) + 1})
    },
    setStatus(path, status) {
      if (status === undefined) statuses.delete(path)
      else statuses.set(path, status)
    },
    flaky(path, times, status = 503) {
      flaky.set(path, {times, status})
    },
    stall(path) {
      stalled.add(path)
    },
    dieAfter(n) {
      dieAfter = origin.requests.length + n
    },
    async close() {
      die()
      await new Promise<void>((resolve) => setImmediate(resolve))
    },
  }
}

function pad(n: number): string {
  return String(n).padStart(2, '0')
}

function typeOf(path: string): string {
  const ext = path.slice(path.lastIndexOf('.') + 1)
  const types: Record<string, string> = {
    png: 'image/png',
    jpg: 'image/jpeg',
    webp: 'image/webp',
    mp4: 'video/mp4',
    mp3: 'audio/mpeg',
    woff2: 'font/woff2',
    woff: 'font/woff',
    ico: 'image/x-icon',
  }
  return types[ext] ?? 'application/octet-stream'
}

export interface SnapshotLink {
  /** The snapshot file the link is in. */
  file: string
  /** The link as written. */
  link: string
  /** The URL it resolves to with the snapshot served at http://snapshot.test/. */
  resolved: string
  /** `page`: a link a visitor follows (<a>, <area>); `asset`: something the page shows or uses. */
  kind: 'page' | 'asset'
}

export interface SnapshotCheck {
  /** Links a visitor follows and assets a page shows, on the snapshot's own host, with no file behind them. */
  missing: SnapshotLink[]
  /** Links to other hosts (left alone, or a segment's public host). */
  external: SnapshotLink[]
  /** HTML files in the snapshot. */
  htmlFiles: string[]
}

const SNAPSHOT_HOST = 'http://snapshot.test/'

/**
 * Serves the snapshot in the mind of a static web server and follows every link and asset in
 * its HTML and CSS, like a visitor (or a link checker) would. Written without the renderer's
 * code on purpose: plain regular expressions over the saved files. With `tryFiles`, "/a" also
 * finds "a.html" (nginx `try_files $uri $uri.html $uri/index.html`).
 */
export async function checkSnapshot(root: string, options: {tryFiles?: boolean} = {}): Promise<SnapshotCheck> {
  const files: string[] = []
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await fs.readdir(dir, {withFileTypes: true})) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name
      if (entry.isDirectory()) await walk(join(dir, entry.name), rel)
      else files.push(rel)
    }
  }
  await walk(root, '')
  const present = new Set(files)
  const finds = (path: string) => {
    const candidates = path.endsWith('/') ? [`${path}index.html`] : [path, `${path}/index.html`]
    if (options.tryFiles) candidates.push(`${path}.html`)
    return candidates.some((c) => present.has(c.replace(/^\//, '')))
  }
  const missing: SnapshotLink[] = []
  const external: SnapshotLink[] = []
  const check = (file: string, link: string, kind: 'page' | 'asset' = 'asset') => {
    const raw = link.replace(/&amp;/g, '&').trim()
    if (!raw || /^(#|mailto:|javascript:|data:|tel:)/i.test(raw)) return
    let url: URL
    try {
      url = new URL(raw, SNAPSHOT_HOST + file.split('/').map(encodeURIComponent).join('/'))
    } catch {
      missing.push({file, link, resolved: raw, kind})
      return
    }
    if (url.origin !== new URL(SNAPSHOT_HOST).origin) {
      external.push({file, link, resolved: url.href, kind})
      return
    }
    if (!finds(decodeURIComponent(url.pathname))) missing.push({file, link, resolved: url.href, kind})
  }
  const cssLinks = (css: string) => [
    ...[...css.replace(/\/\*[\s\S]*?\*\//g, '').matchAll(/url\(\s*(['"]?)(.*?)\1\s*\)/g)].map((m) => m[2]),
    ...[...css.matchAll(/@import\s+(['"])(.*?)\1/g)].map((m) => m[2]),
  ]
  const htmlFiles = files.filter((f) => f.endsWith('.html'))
  for (const file of files) {
    if (file.endsWith('.css')) {
      for (const link of cssLinks(await fs.readFile(join(root, file), 'utf8'))) check(file, link)
      continue
    }
    if (!file.endsWith('.html')) continue
    const html = (await fs.readFile(join(root, file), 'utf8'))
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/(<script\b[^>]*>)[\s\S]*?<\/script>/gi, '$1</script>')
    for (const tag of html.matchAll(/<([a-z]+)\b([^>]*)>/gi)) {
      const name = tag[1].toLowerCase()
      const attrs = tag[2]
      const attr = (n: string) => new RegExp(`\\s${n}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(attrs)
      const value = (n: string) => {
        const m = attr(n)
        return m ? (m[1] ?? m[2] ?? m[3]) : undefined
      }
      const links: string[] = []
      if (name === 'link') {
        if (/stylesheet|icon/i.test(value('rel') ?? '')) links.push(value('href') ?? '')
      } else if (name === 'a' || name === 'area') {
        const href = value('href')
        if (href !== undefined) check(file, href, 'page')
      } else {
        for (const n of ['src', 'poster']) {
          const v = value(n)
          if (v !== undefined) links.push(v)
        }
      }
      const srcset = value('srcset')
      if (srcset) links.push(...srcset.split(',').map((c) => c.trim().split(/\s+/)[0]))
      const style = value('style')
      if (style) links.push(...cssLinks(style.replace(/&quot;/g, '"').replace(/&#39;/g, "'")))
      for (const link of links) check(file, link)
    }
    for (const block of html.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/gi)) for (const link of cssLinks(block[1])) check(file, link)
  }
  return {missing, external, htmlFiles}
}

/** Every file of a snapshot with its mtime and content hash: what a publish would compare. */
export async function listSnapshot(root: string): Promise<Record<string, {mtimeMs: number; sha: string}>> {
  const out: Record<string, {mtimeMs: number; sha: string}> = {}
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await fs.readdir(dir, {withFileTypes: true})) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name
      if (entry.isDirectory()) await walk(join(dir, entry.name), rel)
      else {
        const full = join(dir, entry.name)
        const [stat, data] = await Promise.all([fs.stat(full), fs.readFile(full)])
        out[rel] = {mtimeMs: stat.mtimeMs, sha: createHash('sha256').update(data).digest('hex')}
      }
    }
  }
  await walk(root, '')
  return out
}
