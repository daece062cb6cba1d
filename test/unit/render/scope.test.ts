import t from 'tap'

import {parseRobots} from '../../../src/render/robots.js'
import {compilePattern, createScope, isToolUrl} from '../../../src/render/scope.js'
import {dateFamily, onSite, createSite, resolveUrl} from '../../../src/render/urls.js'

const u = (link: string) => resolveUrl(link, 'http://o.test/')!

t.test('edit, login, history, diff, revision and sort links are tools, not pages', async (t) => {
  for (const link of [
    '/page?do=edit',
    '/page?do=revisions',
    '/index.php?title=Main&action=history',
    '/index.php?title=Main&oldid=42',
    '/index.php?title=Main&diff=43&oldid=42',
    '/post/?replytocom=7',
    '/list?sort=date',
    '/list?orderby=title&order=asc',
    '/files/?C=N;O=D',
    '/login',
    '/user/login?destination=/',
    '/wp-login.php?redirect_to=x',
    '/wp-admin/edit.php',
    '/wiki/Special:RecentChanges',
    '/pages/12/edit',
    '/list.php?page=1?do=revisions',
  ]) {
    t.ok(isToolUrl(u(link)), link)
  }
  for (const link of ['/', '/about', '/about/history', '/blog/?page=2', '/edit', '/docs/editing', '/files/?c=3', '/search?q=edit']) {
    t.notOk(isToolUrl(u(link)), link)
  }
})

t.test('exclude patterns: * matches anything, a bare word matches anywhere', async (t) => {
  t.ok(compilePattern('/login*')('/login'))
  t.ok(compilePattern('/login*')('/login.php?x=1'))
  t.notOk(compilePattern('/login*')('/blog/login'))
  t.ok(compilePattern('*do=edit*')('/page?id=1&do=edit'))
  t.ok(compilePattern('/wiki/*/talk')('/wiki/a/b/talk'))
  t.ok(compilePattern('print=1')('/page?print=1&x'))
  t.ok(compilePattern('/caf*')('/caf%C3%A9'), 'raw spelling')
  t.ok(compilePattern('/café/*')('/caf%C3%A9/menu'), 'decoded spelling')
  t.notOk(compilePattern('/a.b')('/axb'), 'a dot is a dot')
})

t.test('the scope says why a URL is not fetched', async (t) => {
  const robots = parseRobots('User-agent: *\nDisallow: /private/\n', 'mirror-render')
  const scope = createScope({exclude: ['/drafts/*'], defaultExclude: true, robots})
  t.equal(scope.check(u('/drafts/x')), 'exclude')
  t.equal(scope.check(u('/about?do=edit')), 'default-exclude')
  t.equal(scope.check(u('/private/x')), 'robots')
  t.equal(scope.check(u('/about')), undefined)
  t.equal(createScope({exclude: [], defaultExclude: false}).check(u('/about?do=edit')), undefined, 'defaultExclude: false lets tools through')
})

t.test('date-addressed URLs fall into families; ordinary ones do not', async (t) => {
  t.equal(dateFamily(u('/calendar/2024/05')), '/calendar/@')
  t.equal(dateFamily(u('/calendar/2024/05/17')), '/calendar/@', 'months and days of one calendar are one family')
  t.equal(dateFamily(u('/events.php?month=2024-05')), '/events.php?@')
  t.equal(dateFamily(u('/events.php?day=2024-05-17&view=day')), '/events.php?@')
  t.equal(dateFamily(u('/blog/2024/05/hello-world')), '/blog/@/hello-world', 'each dated post is its own family')
  t.equal(dateFamily(u('/blog/post-12')), undefined)
  t.equal(dateFamily(u('/blog/?page=3')), undefined)
  t.equal(dateFamily(u('/products/12345')), undefined, 'a product number is no year')
})

t.test('aliases of the origin are the origin; the rest of the web is not', async (t) => {
  const site = createSite('http://127.0.0.1:8080', ['https://www.example.com'])
  t.equal(onSite(site, u('http://127.0.0.1:8080/a'))?.href, 'http://127.0.0.1:8080/a')
  t.equal(onSite(site, new URL('https://www.example.com/b?x=1'))?.href, 'http://127.0.0.1:8080/b?x=1')
  t.equal(onSite(site, new URL('https://cdn.example.com/c')), undefined)
  t.equal(onSite(site, new URL('http://127.0.0.1:8081/a')), undefined, 'another port is another site')
})

t.test('links resolve to one spelling per resource', async (t) => {
  t.equal(resolveUrl('/a/../b/./c#frag', 'http://o.test/x/')?.href, 'http://o.test/b/c')
  t.equal(resolveUrl('/%7euser/%41', 'http://o.test/')?.href, 'http://o.test/~user/A')
  t.equal(resolveUrl('/a%2fb', 'http://o.test/')?.href, 'http://o.test/a%2Fb')
  t.equal(resolveUrl('/a?', 'http://o.test/')?.href, 'http://o.test/a')
  t.equal(resolveUrl('HTTP://O.TEST:80/a', 'http://o.test/')?.href, 'http://o.test/a')
  t.equal(resolveUrl('  /spaced  ', 'http://o.test/')?.href, 'http://o.test/spaced')
  for (const skip of ['mailto:a@b.c', 'javascript:void(0)', 'data:text/plain,x', '#top', '', 'tel:123']) {
    t.equal(resolveUrl(skip, 'http://o.test/'), undefined, skip || '(empty)')
  }
})
