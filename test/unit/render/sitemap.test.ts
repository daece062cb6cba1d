import {gzipSync} from 'node:zlib'

import t from 'tap'

import {parseSitemap} from '../../../src/render/sitemap.js'

t.test('a urlset lists pages, an index lists sitemaps, gzip or not', async (t) => {
  const urlset = `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
<url><loc>https://o.test/a?x=1&amp;y=2</loc><image:image><image:loc>https://o.test/i.png</image:loc></image:image></url>
<url><loc><![CDATA[https://o.test/b]]></loc></url></urlset>`
  t.same(parseSitemap(Buffer.from(urlset)), {urls: ['https://o.test/a?x=1&y=2', 'https://o.test/b'], sitemaps: []})
  t.same(parseSitemap(gzipSync(urlset)).urls, ['https://o.test/a?x=1&y=2', 'https://o.test/b'], 'gzip is recognised by its bytes')
  const index = '<sitemapindex><sitemap><loc>https://o.test/s1.xml.gz</loc></sitemap><sitemap><loc>https://o.test/s2.xml</loc></sitemap></sitemapindex>'
  t.same(parseSitemap(Buffer.from(index)), {urls: [], sitemaps: ['https://o.test/s1.xml.gz', 'https://o.test/s2.xml']})
  t.same(parseSitemap(Buffer.from('https://o.test/a\nnot a url\nhttps://o.test/b\n')).urls, ['https://o.test/a', 'https://o.test/b'], 'a text sitemap')
})
