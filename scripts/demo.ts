// The demo: mirror's main job on a built-in example. A small dynamic site (a stand-in CMS on
// 127.0.0.1) is rendered into a snapshot and published to three local slaves: real sshd
// processes on loopback when this machine has OpenSSH's sshd, else local directories. Then a
// page is edited on one slave and another changed on the master, and a second publish shows
// that only the change moved and the slave's edit was kept.

import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {binRun} from '../test/helpers/cli.js'
import {startSshd, type Sshd} from '../test/helpers/sshd.js'

const bold = (s: string) => (process.stdout.isTTY ? `\u001b[1m${s}\u001b[0m` : s)

/** The "CMS": pages rendered per request, an image, a stylesheet, and edit links a crawl must skip. */
function startOrigin(content: {about: string}): Promise<{server: Server; url: string}> {
  const page = (title: string, body: string) =>
    `<!doctype html><html><head><title>${title}</title><link rel="stylesheet" href="/static/site.css">` +
    `<meta name="generated" content="${new Date().toISOString()}"></head><body>` +
    `<nav><a href="/">Home</a> <a href="/about/">About</a> <a href="/news/">News</a></nav>` +
    `<img src="/media/logo.png" alt="logo">${body}<a href="/wiki?do=edit&page=${encodeURIComponent(title)}">edit</a></body></html>`
  const pages: Record<string, () => string> = {
    '/': () => page('Home', '<h1>Welcome</h1><p>A site published by mirror.</p>'),
    '/about/': () => page('About', `<h1>About</h1><p>${content.about}</p>`),
    '/news/': () => page('News', '<h1>News</h1><ul><li><a href="/news/first-post">First post</a></li></ul>'),
    '/news/first-post': () => page('First post', '<h1>First post</h1><img src="/media/photo.jpg" alt="photo">'),
  }
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin')
    if (url.searchParams.has('do')) {
      res.writeHead(403).end('editing needs a login')
      return
    }
    if (pages[url.pathname]) {
      res.writeHead(200, {'content-type': 'text/html; charset=utf-8'}).end(pages[url.pathname]())
    } else if (url.pathname === '/static/site.css') {
      res.writeHead(200, {'content-type': 'text/css'}).end('body { font-family: sans-serif; max-width: 40em; margin: auto }')
    } else if (url.pathname.startsWith('/media/')) {
      res.writeHead(200, {'content-type': url.pathname.endsWith('.png') ? 'image/png' : 'image/jpeg'}).end(Buffer.alloc(2048, url.pathname))
    } else {
      res.writeHead(404).end('not found')
    }
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    resolve({server, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`})
  }))
}

function mirror(cwd: string, ...args: string[]): Promise<number> {
  console.log(`\n${bold(`$ mirror ${args.join(' ')}`)}`)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binRun, ...args], {cwd, stdio: 'inherit'})
    child.on('error', reject)
    child.on('close', (code) => resolve(code ?? 1))
  })
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mirror-demo-'))
  const content = {about: 'We are a small team.'}
  const origin = await startOrigin(content)
  const names = ['img', 'cache1', 'cache2']
  const slaves: Sshd[] = []
  const roots = Object.fromEntries(names.map((n) => [n, join(dir, 'slaves', n)]))
  for (const root of Object.values(roots)) await fs.mkdir(root, {recursive: true})

  let targets: string
  let sshBlock = ''
  try {
    for (const name of names) slaves.push(await startSshd({alias: `demo-${name}`}))
    const sshConfig = join(dir, 'ssh_config')
    await fs.writeFile(sshConfig, (await Promise.all(slaves.map((s) => fs.readFile(s.sshConfigFile, 'utf8')))).join('\n'))
    sshBlock = `ssh:\n  config: ./ssh_config\n`
    targets = names.map((n) => `  ${n}: {url: "sftp://demo-${n}${roots[n]}", state: "${dir}/slave-state/${n}"}`).join('\n')
    console.log(`Slaves: three real OpenSSH sshd processes on 127.0.0.1 (ports ${slaves.map((s) => s.port).join(', ')}), host keys checked.`)
  } catch (error) {
    for (const s of slaves) await s.stop()
    slaves.length = 0
    targets = names.map((n) => `  ${n}: file://${roots[n]}`).join('\n')
    console.log(`Slaves: local directories (sshd could not be started: ${(error as Error).message.split('\n')[0]}).`)
  }

  await fs.writeFile(
    join(dir, 'mirror.config.yaml'),
    `# The demo's config: render the origin into ./public, images to "img", pages to the caches.
source: ./public
${sshBlock}targets:
${targets}
segments:
  - name: images
    mime: ["image/*"]
    targets: [img]
    publicUrl: https://img.example.com/   # pages point at the image host
  - name: pages
    match: ["**"]
    targets: [cache1, cache2]
render:
  origin: ${origin.url}
  entry: ["/"]
  exclude: ["*do=edit*"]
  volatile: ['<meta name="generated" content="[^"]*">']
`,
  )
  console.log(`Workspace: ${dir}\nOrigin: ${origin.url} (a stand-in dynamic site)`)

  try {
    let code = await mirror(dir, 'publish', '--render')
    if (code !== 0) throw new Error(`publish failed (exit ${code})`)

    console.log(`\n${bold('Someone edits about/index.html on cache2, and the about page changes on the master.')}`)
    await fs.writeFile(join(roots.cache2, 'about/index.html'), '<html><body><h1>About</h1><p>Local note added on cache2.</p></body></html>')
    content.about = 'We are a small team, now with a new office.'

    code = await mirror(dir, 'render')
    code = await mirror(dir, 'diff')
    code = await mirror(dir, 'publish')
    if (code !== 0) throw new Error(`publish failed (exit ${code})`)

    const kept = await fs.readFile(join(roots.cache2, 'about/index.html'), 'utf8')
    const updated = await fs.readFile(join(roots.cache1, 'about/index.html'), 'utf8')
    console.log(`\n${bold('Result:')}`)
    console.log(`  cache1 about page has the master's change: ${updated.includes('new office') ? 'yes' : 'NO'}`)
    console.log(`  cache2 kept its local edit:               ${kept.includes('Local note') ? 'yes' : 'NO'}`)
    console.log(`  images only on img:                        ${existsSync(join(roots.img, 'media/logo.png')) && !existsSync(join(roots.cache1, 'media/logo.png')) ? 'yes' : 'NO'}`)
    await mirror(dir, 'status')
    console.log(`\nThe slaves' trees are in ${join(dir, 'slaves')}; the config is ${join(dir, 'mirror.config.yaml')}.`)
  } finally {
    origin.server.close()
    for (const s of slaves) await s.stop()
  }
}

main().catch((error) => {
  console.error(`demo failed: ${(error as Error).message}`)
  process.exitCode = 1
})
