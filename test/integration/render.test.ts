import {existsSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import type {Config} from '../../src/config/load.js'
import {parseConfig} from '../../src/config/validate.js'
import {renderSite} from '../../src/render/index.js'
import {checkSnapshot, GENERATED_META, startOrigin, type Origin} from '../helpers/origin.js'
import {tempDir} from '../helpers/site.js'

function configFor(origin: Origin, dir: string, extra = '', top = ''): Config {
  const yaml = `source: site
state: .mirror
targets:
  www: file://${dir}/www
  img: file://${dir}/img
${top}render:
  origin: ${origin.url}
  volatile: ['${GENERATED_META}']
${extra}`
  return parseConfig(yaml, join(dir, 'mirror.config.yaml'))
}

const read = (dir: string, file: string) => fs.readFile(join(dir, 'site', file), 'utf8')
const pathOf = (resolved: string) => {
  const url = new URL(resolved)
  return url.pathname + url.search
}

t.test('a full render: every link and asset in the snapshot resolves, or is reported', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const report = await renderSite(configFor(origin, dir))

  const check = await checkSnapshot(join(dir, 'site'))
  t.same(check.missing.filter((m) => m.kind === 'asset'), [], 'no image, stylesheet, script, font or media file is missing')
  const reported = new Set([...report.excluded, ...report.cutOff, ...report.broken, ...report.errors].map((r) => r.url))
  t.same(
    check.missing.filter((m) => !reported.has(pathOf(m.resolved))),
    [],
    'a link without a file behind it is one the report lists (excluded, cut off, broken or failed)',
  )
  t.same(
    check.external.filter((e) => !e.resolved.startsWith('https://example.com/') && e.resolved !== 'https://www.example.test/about'),
    [],
    'only off-site links lead off the snapshot',
  )

  for (const file of [
    'index.html',
    'about.html',
    'blog/index.html',
    'blog/index@page=2.html',
    'blog/post-1.html',
    'blog/post-12.html',
    'docs/index.html',
    'docs/guide/intro.html',
    'docs/api/index.html',
    'café/menü.html',
    'wiki/Straße.html',
    'list.php@page=1.html',
    'list.php@page=3.html',
    'search@q=café&page=1.html',
    'orphan.html',
    'from-noindex.html',
    'nofollow.html',
    'feed.rss',
    'files/report 2024.pdf',
    'robots.txt',
    'assets/site.css',
    'assets/base.css',
    'assets/print.css',
    'img/h1.png@v=2.png',
    'img/photo.webp',
    'fonts/x.woff2',
    'media/clip.mp4',
    'docs/guide/diagram.png',
  ]) {
    t.ok(existsSync(join(dir, 'site', file)), `${file} is saved`)
  }
  for (const file of ['noindex.html', 'nofollow-target.html', 'only-nofollowed.html', 'private/secret.html', 'missing.html', 'broken.html']) {
    t.notOk(existsSync(join(dir, 'site', file)), `${file} is not saved`)
  }
  t.equal(report.pages, check.htmlFiles.length - report.redirects.length, 'the report counts the pages saved')

  const requested = origin.requests
  for (const forbidden of ['do=', 'action=', '/login', '/private/', '/in-comment', '/in-script', '/nofollow-target', '/only-nofollowed', '/pages/12/edit', '/img/in-css-comment.png']) {
    t.notOk(requested.some((r) => r.includes(forbidden)), `nothing matching ${forbidden} was requested`)
  }
  t.ok(requested.filter((r) => r.startsWith('/calendar/')).length < 40, 'the endless calendar was cut short')
  t.equal(new Set(requested).size, requested.length, 'no URL was fetched twice')
  t.ok(report.cutOff.some((c) => c.url.startsWith('/calendar/') && c.reason === 'calendar' && c.linkedFrom[0]?.startsWith('/calendar/')), 'the calendar cut-off is reported with the page linking it')
})

t.test('the report names redirects, errors and broken links with the pages that link them', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const report = await renderSite(configFor(origin, dir))

  t.same(report.redirects, [
    {url: '/chain', status: 302, location: '/old-about', file: 'chain.html'},
    {url: '/go-out', status: 302, location: 'https://example.com/', file: 'go-out.html'},
    {url: '/moved', status: 301, location: '/blog/', file: 'moved.html'},
    {url: '/old-about', status: 301, location: '/about', file: 'old-about.html'},
  ])
  t.match(await read(dir, 'old-about.html'), /<meta http-equiv="refresh" content="0; url=about.html">/, 'a redirect is kept as a redirect page')
  t.match(await read(dir, 'chain.html'), /url=about.html"/, 'a redirect chain ends where the chain ends')
  t.match(await read(dir, 'go-out.html'), /url=https:\/\/example.com\/"/)
  const map = await read(dir, '.mirror-redirects.map')
  t.match(map, /^\/old-about \/about\.html;$/m, 'the nginx map sends the old URL to the new page')
  t.match(map, /^\/moved \/blog\/;$/m)
  const home = await read(dir, 'index.html')
  t.match(home, /<a href="about.html">Old about \(redirect\)<\/a>/, 'links to a redirect go straight to its target')

  t.same(report.broken, [{url: '/missing', status: 404, linkedFrom: ['/']}])
  t.match(report.errors, [{url: '/broken', status: 500, linkedFrom: ['/']}])
  t.match(report.excluded, [])
  const reasons = Object.fromEntries(report.excluded.map((e) => [e.url, e.reason]))
  t.equal(reasons['/private/secret'], 'robots')
  t.equal(reasons['/noindex'], 'noindex')
  t.equal(reasons['/only-nofollowed'], 'nofollow')
  t.equal(reasons['/nofollow-target'], 'nofollow')
  t.equal(reasons['/about?do=revisions'], 'default-exclude')
  t.equal(reasons['/login?return=%2Fabout'], 'default-exclude')
  t.ok(report.embeds['assets/site.css']?.includes('index.html'), 'the report says which pages embed a stylesheet')
  t.ok(report.embeds['img/bg.png']?.includes('blog/post-1.html'), 'an image used by the stylesheet affects every page using the stylesheet')
  t.same(report.embeds['img/post-3.jpg'], ['blog/post-3.html'])
  t.same(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON')
})

t.test('saved pages link each other by relative file names, from disk and from any server', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await renderSite(configFor(origin, dir))

  const post = await read(dir, 'blog/post-3.html')
  t.match(post, '<link rel="stylesheet" href="../assets/site.css">')
  t.match(post, '<a href="../about.html">About</a> <a href="post-2.html">Previous</a>')
  t.match(post, '<link rel="canonical" href="post-3.html">', 'a canonical URL on the internal origin points at the saved page')
  t.match(post, '<a href="/blog/post-3?do=revisions">', 'a link that is not saved points at the original path')
  const home = await read(dir, 'index.html')
  t.match(home, '<a href="about.html#team">About, absolute</a>', 'absolute links to the origin become relative; fragments survive')
  t.match(home, '<a href="docs/index.html">Docs, protocol-relative</a>')
  t.match(home, '<img srcset="img/photo-1x.jpg 1x, img/photo-2x.jpg 2x"')
  t.match(home, `<div style="background-image: url('img/inline.png')">`)
  t.match(home, '<style>.hero { background: url("img/hero.png") no-repeat }</style>')
  t.match(home, '<a href="search@q=caf%C3%A9&amp;page=1.html">Search</a>')
  t.match(home, '<!-- <a href="/in-comment">not a link</a> -->', 'comments are left alone')
  t.match(home, `var tpl = '<a href="/in-script">not a link</a>';`, 'scripts are left alone')
  t.match(home, '<a href="https://example.com/elsewhere">Elsewhere</a>', 'off-site links are left alone')
  const quirks = await read(dir, 'quirks.html')
  t.match(quirks, '<a href="about.html#team" class=x>About</a> <img src="img/quirk.png" alt=q>', 'unquoted values starting with "/" are read and rewritten')
  const docs = await read(dir, 'docs/index.html')
  t.match(docs, '<a href="guide/intro.html">Introduction</a> <a href="api/index.html">API</a> <img src="guide/diagram.png"', '<base href> is applied, then removed')
  t.notMatch(docs, /<base href/)
  const css = await read(dir, 'assets/site.css')
  t.match(css, '@import url("base.css");')
  t.match(css, 'url(../img/bg.png)')
  t.match(css, 'src: url("../fonts/x.woff2") format("woff2")')
  t.match(css, '/* url(/img/in-css-comment.png) */')
  t.match(await read(dir, 'assets/base.css'), 'url(../img/h1.png@v=2.png)')
})

t.test('links to a segment with a publicUrl point at that host; the files are still saved for it', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const segments = `segments:
  - name: images
    mime: ["image/*"]
    targets: [img]
    publicUrl: https://img.example.test/
  - name: html
    match: ["**"]
    targets: [www]
`
  await renderSite(configFor(origin, dir, '', segments))
  const home = await read(dir, 'index.html')
  t.match(home, '<img src="https://img.example.test/img/logo.png" alt=logo>')
  t.match(home, 'srcset="https://img.example.test/img/photo-1x.jpg 1x, https://img.example.test/img/photo-2x.jpg 2x"')
  t.match(home, '<link rel=\'icon\' href=\'https://img.example.test/favicon.ico\'>')
  t.match(home, '<a href="about.html">About</a>', 'pages still link pages relatively')
  t.match(home, '<script src="assets/app.js">', 'files of other segments stay relative')
  t.match(await read(dir, 'assets/site.css'), 'url(https://img.example.test/img/bg.png)', 'stylesheets point at the image host too')
  t.ok(existsSync(join(dir, 'site/img/logo.png')), 'the image is in the snapshot, for publish to send to the image host')
  t.notOk(origin.requests.some((r) => r.includes('img.example.test')))
})

t.test('clean links keep the origin\'s URLs, and dynamicUrl sends left-out pages to the master', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await renderSite(configFor(origin, dir, '  links: clean\n  dynamicUrl: https://master.example.test/\n'))
  const post = await read(dir, 'blog/post-3.html')
  t.match(post, '<a href="/about">About</a> <a href="/blog/post-2">Previous</a>')
  t.match(post, '<a href="https://master.example.test/login?return=%2Fblog%2Fpost-3">Log in</a>')
  const check = await checkSnapshot(join(dir, 'site'), {tryFiles: true})
  t.same(check.missing.filter((m) => m.kind === 'asset'), [], 'served with try_files, every asset is found')
  const unreported = check.missing.filter((m) => !['/missing', '/broken', '/private/secret', '/noindex', '/only-nofollowed', '/nofollow-target', '/pages/12/edit'].includes(pathOf(m.resolved)) && !m.resolved.includes('/calendar/'))
  t.same(unreported, [], 'served with try_files, every saved page is found')
})

t.test('render state is kept beside the config, never in the snapshot', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await renderSite(configFor(origin, dir, '  headers: {X-Token: "${MIRROR_TEST_TOKEN}"}\n'), {}).catch((error: unknown) => {
    t.match(error, {code: 'CONFIG_INVALID', message: /render\.headers\.X-Token: environment variable MIRROR_TEST_TOKEN is not set/})
  })
  t.notOk(existsSync(join(dir, 'site')), 'a config error writes nothing')
  process.env.MIRROR_TEST_TOKEN = 'secret-value'
  t.teardown(() => delete process.env.MIRROR_TEST_TOKEN)
  await renderSite(configFor(origin, dir, '  headers: {X-Token: "${MIRROR_TEST_TOKEN}"}\n'))
  t.ok(existsSync(join(dir, '.mirror/render/state.json')))
  const state = await fs.readFile(join(dir, '.mirror/render/state.json'), 'utf8')
  t.notMatch(state, 'secret-value', 'header values from the environment are never stored')
  t.notOk(existsSync(join(dir, 'site/.mirror')))
  const siblings = await fs.readdir(dir)
  t.same(siblings.filter((n) => n.includes('.render-') || n.includes('.previous-')), [], 'no staging directory is left behind')
})

t.test('a transient 503 is retried and the page saved', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  origin.flaky('/about', 2)
  const report = await renderSite(configFor(origin, dir))
  t.same(report.errors.filter((e) => e.url === '/about'), [])
  t.match(await read(dir, 'about.html'), 'About us.')
  t.equal(origin.requests.filter((r) => r === '/about').length, 3, 'asked again, with backoff, until it answered')
})

t.test('polite: never more requests at once than render.concurrency, and no faster than render.rate', async (t) => {
  const origin = await startOrigin({latencyMs: 15})
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await renderSite(configFor(origin, dir, '  concurrency: 3\n'))
  t.ok(origin.maxInFlight <= 3, `at most 3 requests at once (${origin.maxInFlight})`)
  t.ok(origin.maxInFlight >= 2, 'and it does use them')

  const slow = tempDir('mirror-render-')
  t.teardown(() => fs.rm(slow, {recursive: true, force: true}))
  const started = Date.now()
  const report = await renderSite(configFor(origin, slow, '  rate: 100\n  entry: ["/about"]\n  sitemap: false\n'))
  t.ok(Date.now() - started >= ((report.requests - 1) * 1000) / 100 - 20, `${report.requests} requests at 100 per second take their time`)
})

t.test('a page that never answers times out, is reported, and the render goes on', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  origin.stall('/about')
  const report = await renderSite(configFor(origin, dir, '  timeout: 0.3\n  retries: 0\n'))
  t.match(report.errors, [{url: '/about', code: 'TIMEOUT', message: /no answer from the origin for 0.3s/, linkedFrom: ['/']}])
  t.ok(report.pages > 20)
  t.match(await read(dir, 'index.html'), '<a href="/about">About</a>', 'the link stays as it was, pointing at the original path')
})

t.test('links on a public alias of the origin are fetched from the origin and rewritten', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const dir = tempDir('mirror-render-')
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  await renderSite(configFor(origin, dir))
  t.match(await read(dir, 'index.html'), '<a href="https://www.example.test/about">About, at the public URL</a>', 'without aliases it is another site')
  const aliased = tempDir('mirror-render-')
  t.teardown(() => fs.rm(aliased, {recursive: true, force: true}))
  await renderSite(configFor(origin, aliased, '  aliases: ["https://www.example.test"]\n'))
  t.match(await read(aliased, 'index.html'), '<a href="about.html">About, at the public URL</a>')
})
