import t from 'tap'

import {findCssUrls, rewriteCss} from '../../../src/render/css.js'

const urls = (css: string) => findCssUrls(css).map((u) => `${u.import ? 'import ' : ''}${u.value}`)

t.test('url() in every spelling and @import are found; comments are not', async (t) => {
  const css = `@charset "utf-8";
@import url("a.css");
@import 'b.css' screen;
@import url(c.css) print;
/* url(/commented.png) @import "commented.css"; */
body { background: url( /bg.png ) no-repeat, URL('/upper.png') }
.x { background-image: url("/with space.png"); content: "url(/in-string.png)" }
.y { background: url(/esc\\(aped\\).png) }
.z { background: image-set("/1x.png" 1x, url(/2x.png) 2x) }
@font-face { src: url(data:font/woff2;base64,AAAA) format("woff2"), url('/f.woff') format('woff') }
.q { quotes: "a" "b" }`
  t.same(urls(css), [
    'import a.css',
    'import b.css',
    'import c.css',
    '/bg.png',
    '/upper.png',
    '/with space.png',
    '/esc(aped).png',
    '/1x.png',
    '/2x.png',
    'data:font/woff2;base64,AAAA',
    '/f.woff',
  ])
})

t.test('CSS escapes in URLs are decoded', async (t) => {
  t.same(urls('a { b: url("/caf\\E9 .png") }'), ['/café.png'])
  t.same(urls("a { b: url('/it\\'s.png') }"), ["/it's.png"])
})

t.test('rewriting keeps the quote style and everything else', async (t) => {
  const css = `@import "a.css"; p{background:url(/p.png)} q{background:url('/q.png')} r{background:url("/keep.png")}`
  t.equal(
    rewriteCss(css, (u) => (u.value === '/keep.png' ? undefined : `new${u.value}`)),
    `@import "newa.css"; p{background:url(new/p.png)} q{background:url('new/q.png')} r{background:url("/keep.png")}`,
  )
  t.equal(rewriteCss('p{background:url(/a.png)}', () => 'a (1).png'), 'p{background:url(a\\20 \\(1\\).png)}', 'an unquoted URL escapes what would end it')
  t.equal(rewriteCss(`p{background:url('/a.png')}`, () => "it's.png"), `p{background:url('it\\'s.png')}`)
  t.equal(rewriteCss('p { color: red }', () => 'x'), 'p { color: red }')
})
