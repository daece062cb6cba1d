import t from 'tap'

import {parseRobots} from '../../../src/render/robots.js'

const robots = `# comment
User-agent: *
Disallow: /private/
Disallow: /*?print=
Disallow: /*.pdf$
Allow: /private/open/
Crawl-delay: 10

User-agent: BadBot
User-agent: OtherBot
Disallow: /

Sitemap: https://www.example.com/sitemap.xml
sitemap: /relative-sitemap.xml
`

t.test('the * group applies when none names us', async (t) => {
  const r = parseRobots(robots, 'mirror-render/0.1')
  t.equal(r.allows('/'), true)
  t.equal(r.allows('/private/x'), false)
  t.equal(r.allows('/private/open/x'), true, 'the longer Allow wins over the shorter Disallow')
  t.equal(r.allows('/page?print=1'), false, '* matches any run of characters')
  t.equal(r.allows('/doc.pdf'), false)
  t.equal(r.allows('/doc.pdf?download=1'), true, '$ anchors the end')
  t.same(r.sitemaps, ['https://www.example.com/sitemap.xml', '/relative-sitemap.xml'])
})

t.test('a group naming our product token replaces the * group', async (t) => {
  const ours = parseRobots(`User-agent: *\nDisallow: /\n\nUser-agent: mirror-render\nDisallow: /admin/\n`, 'mirror-render/0.1')
  t.equal(ours.allows('/page'), true)
  t.equal(ours.allows('/admin/x'), false)
  const grouped = parseRobots(robots, 'OtherBot/2.0')
  t.equal(grouped.allows('/anything'), false, 'consecutive user-agent lines share their rules')
})

t.test('Allow wins a tie; an empty Disallow allows all; encodings compare equal', async (t) => {
  t.equal(parseRobots('User-agent: *\nDisallow: /page\nAllow: /page\n', 'x').allows('/page'), true)
  t.equal(parseRobots('User-agent: *\nDisallow:\n', 'x').allows('/anything'), true)
  const r = parseRobots('User-agent: *\nDisallow: /café/\nDisallow: /%7euser/\n', 'x')
  t.equal(r.allows('/caf%C3%A9/menu'), false, 'a raw UTF-8 rule matches the escaped path')
  t.equal(r.allows('/~user/x'), false, 'an escaped unreserved character matches its plain form')
  t.equal(parseRobots('', 'x').allows('/'), true, 'no rules, no limits')
})
