import t from 'tap'

import {assignFiles, cleanHref, fileForUrl, relativeHref} from '../../../src/render/url-map.js'
import {resolveUrl} from '../../../src/render/urls.js'

const file = (link: string, type: string | undefined) => fileForUrl(resolveUrl(link, 'http://origin.test/')!, type)

t.test('pages land where a static server looks for them', async (t) => {
  t.equal(file('/', 'text/html'), 'index.html')
  t.equal(file('/a/b/', 'text/html; charset=utf-8'), 'a/b/index.html')
  t.equal(file('/a/b', 'text/html'), 'a/b.html', 'an extension-less page gets .html (nginx: try_files $uri $uri.html)')
  t.equal(file('/a/b.html', 'text/html'), 'a/b.html')
  t.equal(file('/a/b.htm', 'text/html'), 'a/b.htm')
  t.equal(file('/index.php', 'text/html'), 'index.php.html', 'a .php page is saved as HTML so the server sends text/html')
  t.equal(file('/doc.xhtml', 'application/xhtml+xml'), 'doc.xhtml')
})

t.test('the content type decides the extension, not the URL', async (t) => {
  t.equal(file('/feed', 'application/rss+xml'), 'feed.rss')
  t.equal(file('/api/', 'application/json'), 'api/index.json')
  t.equal(file('/img/logo.png', 'image/png'), 'img/logo.png')
  t.equal(file('/img/photo.jpeg', 'image/jpeg'), 'img/photo.jpeg', 'any of the type\'s extensions will do')
  t.equal(file('/img/photo.jpg', 'image/webp'), 'img/photo.jpg.webp', 'content negotiation sent another type')
  t.equal(file('/app.js', 'application/javascript'), 'app.js')
  t.equal(file('/app.js', 'text/plain'), 'app.js', 'a generic type does not override a known extension')
  t.equal(file('/LICENSE', 'text/plain'), 'LICENSE.txt')
  t.equal(file('/blob', undefined), 'blob', 'no type, no guess')
})

t.test('query strings become part of a deterministic, safe file name', async (t) => {
  t.equal(file('/list.php?page=2', 'text/html'), 'list.php@page=2.html')
  t.equal(file('/blog/?page=2', 'text/html'), 'blog/index@page=2.html')
  t.equal(file('/style.css?ver=6.4', 'text/css'), 'style.css@ver=6.4.css', 'the extension comes last so the server knows the type')
  t.equal(file('/search?q=caf%C3%A9', 'text/html'), 'search@q=café.html', 'escaped UTF-8 reads as text')
  const odd = file('/search?q=a%2Fb%20c', 'text/html')
  t.match(odd, /^search@q=a_2Fb_20c~[0-9a-f]{10}\.html$/, 'escaped ASCII is replaced and the name carries a hash')
  t.not(file('/s?a=b%26c', 'text/html'), file('/s?a=b&c', 'text/html'), 'an escaped "&" is not a separator')
  t.equal(file('/list.php?page=2', 'text/html'), file('/list.php?page=2', 'text/html'), 'the same URL always gets the same name')
  const long = file(`/p?${'x'.repeat(300)}=1`, 'text/html')
  t.ok(Buffer.byteLength(long) < 120, 'a long query is shortened')
  t.not(long, file(`/p?${'x'.repeat(301)}=1`, 'text/html'), 'two long queries stay apart')
})

t.test('non-ASCII and percent-encoded paths become UTF-8 names', async (t) => {
  t.equal(file('/caf%C3%A9/men%C3%BC', 'text/html'), 'café/menü.html')
  t.equal(file('/café/menü', 'text/html'), 'café/menü.html', 'the raw and the encoded spelling are one file')
  t.equal(file('/files/report%202024.pdf', 'application/pdf'), 'files/report 2024.pdf')
  t.equal(file('/%7Euser/', 'text/html'), '~user/index.html')
  t.match(file('/a%2Fb', 'text/html'), /^a_b~[0-9a-f]{8}\.html$/, 'an encoded slash does not create a directory')
  t.match(file('/a%00b', 'text/html'), /^a_b~[0-9a-f]{8}\.html$/, 'control characters are replaced')
  t.equal(file('/caf%E9', 'text/html'), 'café.html', 'latin1 escapes are read rather than rejected')
  const deep = file(`/${'é'.repeat(200)}`, 'text/html')
  t.ok(Buffer.byteLength(deep) <= 255, 'a name longer than a file system allows is shortened')
})

t.test('clashes are resolved once for all, the same way every time', async (t) => {
  const entries = [
    {url: 'http://o.test/a', contentType: 'text/html'},
    {url: 'http://o.test/a.html', contentType: 'text/html'},
    {url: 'http://o.test/x.css', contentType: 'text/css'},
    {url: 'http://o.test/x.css/y', contentType: 'text/html'},
    {url: 'http://o.test/About', contentType: 'text/html'},
    {url: 'http://o.test/about', contentType: 'text/html'},
  ]
  const files = assignFiles(entries, new Set(['reserved.map']))
  t.equal(files.get('http://o.test/a'), 'a.html')
  t.match(files.get('http://o.test/a.html'), /^a~[0-9a-f]{8}\.html$/)
  t.match(files.get('http://o.test/x.css'), /^x~[0-9a-f]{8}\.css$/, 'a file never sits where a directory is needed')
  t.equal(files.get('http://o.test/x.css/y'), 'x.css/y.html')
  t.not(files.get('http://o.test/About')!.toLowerCase(), files.get('http://o.test/about')!.toLowerCase(), 'names differing only in case stay apart')
  t.same(assignFiles([...entries].reverse(), new Set(['reserved.map'])), files, 'order of discovery does not matter')
  const reserved = assignFiles([{url: 'http://o.test/reserved.map', contentType: 'text/plain'}], new Set(['reserved.map']))
  t.not(reserved.get('http://o.test/reserved.map'), 'reserved.map')
})

t.test('links between saved files are relative and encoded', async (t) => {
  t.equal(relativeHref('index.html', 'about.html'), 'about.html')
  t.equal(relativeHref('blog/post-1.html', 'about.html'), '../about.html')
  t.equal(relativeHref('blog/post-1.html', 'blog/post-2.html'), 'post-2.html')
  t.equal(relativeHref('a/b/c.html', 'a/d/e.png'), '../d/e.png')
  t.equal(relativeHref('index.html', 'café/menü.html'), 'caf%C3%A9/men%C3%BC.html')
  t.equal(relativeHref('index.html', 'files/report 2024.pdf'), 'files/report%202024.pdf')
  t.equal(relativeHref('index.html', 'list.php@page=2.html'), 'list.php@page=2.html', 'query names stay readable')
  t.equal(relativeHref('index.html', "it's (1).html"), 'it%27s%20%281%29.html', 'quotes and parentheses are escaped for CSS url() and HTML')
  t.equal(relativeHref('index.html', 'wiki/Special:All.html'), 'wiki/Special:All.html')
  t.equal(relativeHref('index.html', 'Special:All.html'), './Special:All.html', 'a colon in the first segment would read as a scheme')
  t.equal(relativeHref('a/index.html', 'a/index.html'), 'index.html')
})

t.test('clean links keep the origin\'s paths', async (t) => {
  t.equal(cleanHref(new URL('http://o.test/a/b'), 'a/b.html'), '/a/b')
  t.equal(cleanHref(new URL('http://o.test/a/'), 'a/index.html'), '/a/')
  t.equal(cleanHref(new URL('http://o.test/l.php?page=2'), 'l.php@page=2.html'), '/l.php@page=2.html', 'a static server ignores queries, so those name the file')
  t.equal(cleanHref(new URL('http://o.test/feed'), 'feed.rss'), '/feed.rss', 'try_files would not find feed.rss for /feed')
  t.equal(cleanHref(new URL('http://o.test/caf%C3%A9'), 'café.html'), '/caf%C3%A9')
})
