import t from 'tap'

import {decodeEntities, parseSrcset, rewriteHtml, scanHtml, sniffCharset} from '../../../src/render/html.js'

const refsOf = (html: string) => scanHtml(html).refs.map((r) => `${r.kind} ${r.tag}.${r.attr} ${r.url}`)

t.test('every kind of link and embed is found, in any quote style', async (t) => {
  const html = `<!DOCTYPE html><html><head>
<link rel="stylesheet" href="/s.css"><link rel=icon href=/i.ico><link rel='alternate' type='application/rss+xml' href='/feed'>
<link rel="preconnect" href="https://cdn.example"><script src="/app.js"></script>
<style>body{background:url(/bg.png)} @import "/more.css";</style>
<meta http-equiv="refresh" content="5; url=/next">
</head><body>
<a href="/a">a</a><a href='/b'>b</a><a href=/c>c</a><a HREF = "/d" >d</a>
<area href="/map-area"><iframe src="/frame"></iframe>
<img src="/i.png" srcset="/i-1x.png 1x, /i-2x.png 2x"><img data-src="/lazy.jpg">
<picture><source srcset="/p.webp" type="image/webp"></picture>
<video src="/v.mp4" poster="/poster.jpg"><track src="/subs.vtt"></video><audio src="/a.mp3"></audio>
<embed src="/e.swf"><object data="/o.pdf"></object><input type="image" src="/btn.png">
<table background="/t.png"><td background="/td.png"></td></table>
<svg><use xlink:href="/sprite.svg#icon"></use><image href="/svg-image.png"></image></svg>
<div style="background-image: url('/inline.png')"></div>
<form action="/search"></form>
</body></html>`
  t.same(refsOf(html), [
    'asset link.href /s.css',
    'asset link.href /i.ico',
    'page link.href /feed',
    'other link.href https://cdn.example',
    'asset script.src /app.js',
    'asset style. /bg.png',
    'asset style. /more.css',
    'page meta.content /next',
    'page a.href /a',
    'page a.href /b',
    'page a.href /c',
    'page a.href /d',
    'page area.href /map-area',
    'page iframe.src /frame',
    'asset img.src /i.png',
    'asset img.srcset /i-1x.png',
    'asset img.srcset /i-2x.png',
    'asset img.data-src /lazy.jpg',
    'asset source.srcset /p.webp',
    'asset video.src /v.mp4',
    'asset video.poster /poster.jpg',
    'asset track.src /subs.vtt',
    'asset audio.src /a.mp3',
    'asset embed.src /e.swf',
    'asset object.data /o.pdf',
    'asset input.src /btn.png',
    'asset table.background /t.png',
    'asset td.background /td.png',
    'asset use.xlink:href /sprite.svg#icon',
    'asset image.href /svg-image.png',
    'asset div.style /inline.png',
    'other form.action /search',
  ])
})

t.test('comments, scripts and other raw text hold no links', async (t) => {
  const html = `<!-- <a href="/c1"> --><!--><a href="/after-empty-comment"><!--->
<script>document.write('<a href="/s1">'); if (a<b) {}</script>
<script type="text/template"><img src="/tpl.png"></script>
<textarea><a href="/t1"></textarea><title><a href="/t2"></title>
<![CDATA[ <a href="/cdata"> ]]><noscript><img src="/noscript.png"></noscript>
<a href="/real">x</a><SCRIPT>var x = "</scripty>"; "<a href='/s2'>"</SCRIPT ><a href="/after-script">`
  t.same(refsOf(html), ['page a.href /after-empty-comment', 'asset img.src /noscript.png', 'page a.href /real', 'page a.href /after-script'])
})

t.test('base href, meta robots and rel=nofollow are read', async (t) => {
  const scan = scanHtml(`<head><base href="/docs/guide/"><base href="/ignored/"><meta name="ROBOTS" content="NoIndex, nofollow"></head>
<a href="x" rel="external nofollow">x</a><link rel="canonical" href="/self">`)
  t.equal(scan.base, '/docs/guide/', 'the first <base> counts')
  t.ok(scan.noindex)
  t.ok(scan.nofollow)
  t.equal(scan.refs[0].nofollow, true)
  t.equal(scan.refs[1].self, true, 'a canonical link names the page itself')
  t.same(scanHtml('<meta name="robots" content="none">').nofollow, true)
  t.same(scanHtml('<meta name="description" content="noindex">').noindex, false)
})

t.test('entities in attribute values are decoded the way browsers do', async (t) => {
  t.equal(scanHtml('<a href="/p?a=1&amp;b=2">').refs[0].url, '/p?a=1&b=2')
  t.equal(scanHtml('<a href="/p?a=1&#38;b=2&#x26;c=3">').refs[0].url, '/p?a=1&b=2&c=3')
  t.equal(decodeEntities('/p?a=1&copy=2'), '/p?a=1&copy=2', 'no ";", no decoding of a name before "="')
  t.equal(decodeEntities('a &amp b'), 'a & b', 'legacy &amp without ";" before a space')
  t.equal(decodeEntities('&unknown;'), '&unknown;')
})

t.test('srcset is split as the HTML spec says', async (t) => {
  t.same(parseSrcset('/a.png 1x, /b.png 2x'), [
    {url: '/a.png', descriptor: '1x'},
    {url: '/b.png', descriptor: '2x'},
  ])
  t.same(parseSrcset('/a,b.png 100w,/c.png'), [
    {url: '/a,b.png', descriptor: '100w'},
    {url: '/c.png', descriptor: ''},
  ], 'a comma inside a URL is part of it')
  t.same(parseSrcset('data:image/png;base64,xyz 1x'), [{url: 'data:image/png;base64,xyz', descriptor: '1x'}])
  t.same(parseSrcset(' /only.png, '), [{url: '/only.png', descriptor: ''}])
})

t.test('rewriting replaces only the URLs that change and keeps every other byte', async (t) => {
  const html = `<a href="/a" class=x>A</a> <a href='/keep'>K</a> <img src=/i.png alt=i>
<img srcset="/1x.png 1x, /2x.png 2x"><div style="background: url(&quot;/bg.png&quot;)">é</div>
<style>p { background: url('/s.png') }</style><meta http-equiv="refresh" content="0; URL='/next'">
<!-- <a href="/a"> -->`
  const out = rewriteHtml(html, 'utf-8', (ref) => (ref.url === '/keep' ? undefined : `new${ref.url}`))
  t.equal(
    out,
    `<a href="new/a" class=x>A</a> <a href='/keep'>K</a> <img src="new/i.png" alt=i>
<img srcset="new/1x.png 1x, new/2x.png 2x"><div style="background: url(&quot;new/bg.png&quot;)">é</div>
<style>p { background: url('new/s.png') }</style><meta http-equiv="refresh" content="0; URL='new/next'">
<!-- <a href="/a"> -->`,
  )
  t.equal(rewriteHtml(html, 'utf-8', () => undefined), html, 'nothing to change: the very same text')
})

t.test('new values are escaped for their quotes and the page charset', async (t) => {
  t.equal(rewriteHtml(`<a href='/x'>`, 'utf-8', () => "it's&more"), `<a href='it&#39;s&amp;more'>`)
  t.equal(rewriteHtml('<a href="/x">', 'utf-8', () => '"q"'), '<a href="&quot;q&quot;">')
  t.equal(rewriteHtml('<a href=/x>', 'utf-8', () => 'a b'), '<a href="a b">', 'an unquoted value gets quotes')
  t.equal(rewriteHtml('<a href="/x">', 'utf-8', () => 'café'), '<a href="caf&#233;">', 'non-ASCII as a character reference')
})

t.test('a page in another charset keeps its bytes; its URLs are read in that charset', async (t) => {
  const bytes = Buffer.concat([Buffer.from('<p>caf'), Buffer.from([0xe9]), Buffer.from('</p><a href="/caf'), Buffer.from([0xe9]), Buffer.from('">x</a>')])
  const binary = bytes.toString('latin1')
  t.equal(scanHtml(binary, 'iso-8859-1').refs[0].url, '/café')
  const out = Buffer.from(rewriteHtml(binary, 'iso-8859-1', () => 'caf%C3%A9.html'), 'latin1')
  t.same([...out.subarray(0, 7)], [...bytes.subarray(0, 7)], 'the text before the link is byte for byte the same')
  t.equal(out.toString('latin1').slice(7), '</p><a href="caf%C3%A9.html">x</a>')
})

t.test('<base href> can be dropped so relative file links work', async (t) => {
  t.equal(rewriteHtml('<head><base href="/docs/" target="_top"></head>', 'utf-8', () => undefined, {dropBase: true}), '<head><base target="_top"></head>')
})

t.test('the declared charset is found', async (t) => {
  t.equal(sniffCharset('<meta charset="ISO-8859-1">'), 'iso-8859-1')
  t.equal(sniffCharset('<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'), 'windows-1252')
  t.equal(sniffCharset('<p>none</p>'), undefined)
})
