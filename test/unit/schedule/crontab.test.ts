// mirror's crontab entry: added, replaced, listed and removed without touching the user's other
// lines; read and written through a crontab-compatible command (a fake that keeps the table in
// a temp file, never the real crontab).

import {spawnSync} from 'node:child_process'
import {chmodSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import t from 'tap'

import {buildEntry, findEntries, removeEntry, setEntry, shellQuote, systemCrontab} from '../../../src/schedule/crontab.js'
import {tempDir} from '../../helpers/site.js'

const userTable = `# m h dom mon dow command
MAILTO=ops@example.com
0 4 * * * /usr/local/bin/backup --all   # nightly
@reboot /home/ann/start.sh
`

const parts = (config: string, schedule = '*/10 * * * *') => ({schedule, node: '/usr/bin/node', bin: '/opt/mirror/bin/run.js', config, log: `${config}.log`})

t.test('the entry runs `schedule run` with absolute paths and marks its config', async (t) => {
  const line = buildEntry(parts('/srv/site/mirror.config.yaml'))
  t.equal(line, '*/10 * * * * /usr/bin/node /opt/mirror/bin/run.js schedule run --config /srv/site/mirror.config.yaml --log /srv/site/mirror.config.yaml.log # mirror:/srv/site/mirror.config.yaml')
})

t.test('paths with spaces, quotes and % survive cron and sh', async (t) => {
  const config = "/srv/my site/it's 100%/mirror.config.yaml"
  const line = buildEntry(parts(config))
  t.notMatch(line.replace(/\\%/g, ''), /%/, 'every % escaped for cron')
  // What sh gets once cron has turned \% back into %: the arguments, word for word.
  const dir = tempDir()
  const echo = join(dir, 'args')
  writeFileSync(echo, '#!/bin/sh\nfor a; do echo "[$a]"; done\n')
  chmodSync(echo, 0o755)
  const command = buildEntry({...parts(config), node: echo}).split(' ').slice(5).join(' ').replace(/\\%/g, '%')
  const run = spawnSync('/bin/sh', ['-c', command], {encoding: 'utf8'})
  t.equal(run.stdout, ['/opt/mirror/bin/run.js', 'schedule', 'run', '--config', config, '--log', `${config}.log`].map((a) => `[${a}]\n`).join(''))
  const [entry] = findEntries(line)
  t.equal(entry.config, config)
  t.equal(entry.log, `${config}.log`)
  t.equal(shellQuote("it's"), `'it'\\''s'`)
})

t.test('adding keeps every other line; adding again replaces mirror\'s entry', async (t) => {
  const first = setEntry(userTable, buildEntry(parts('/a/mirror.config.yaml')), '/a/mirror.config.yaml')
  t.notOk(first.replaced)
  t.ok(first.table.startsWith(userTable), "the user's lines are untouched, in order")
  const other = setEntry(first.table, buildEntry(parts('/b/mirror.config.yaml')), '/b/mirror.config.yaml')
  const again = setEntry(other.table, buildEntry(parts('/a/mirror.config.yaml', '@hourly')), '/a/mirror.config.yaml')
  t.ok(again.replaced)
  const entries = findEntries(again.table)
  t.same(entries.map((e) => [e.config, e.schedule]), [['/b/mirror.config.yaml', '*/10 * * * *'], ['/a/mirror.config.yaml', '@hourly']], 'one entry per config')
  t.ok(again.table.startsWith(userTable))
})

t.test('removing takes out only mirror\'s entry for that config (or all with --all)', async (t) => {
  let table = setEntry(userTable, buildEntry(parts('/a/mirror.config.yaml')), '/a/mirror.config.yaml').table
  table = setEntry(table, buildEntry(parts('/b/mirror.config.yaml')), '/b/mirror.config.yaml').table
  const one = removeEntry(table, '/a/mirror.config.yaml')
  t.equal(one.removed, 1)
  t.same(findEntries(one.table).map((e) => e.config), ['/b/mirror.config.yaml'])
  const all = removeEntry(table, undefined)
  t.equal(all.removed, 2)
  t.equal(all.table, userTable, 'back to exactly what the user had')
  t.equal(removeEntry(userTable, '/a/mirror.config.yaml').removed, 0)
})

t.test('a commented-out entry is the user\'s, not mirror\'s', async (t) => {
  const table = `#*/10 * * * * node run.js # mirror:/a/mirror.config.yaml\n`
  t.same(findEntries(table), [])
  t.equal(removeEntry(table, undefined).table, table)
})

t.test('read and write go through the crontab command MIRROR_CRONTAB names', async (t) => {
  const dir = tempDir()
  const store = join(dir, 'table')
  const fake = join(dir, 'fake-crontab')
  writeFileSync(fake, `#!/bin/sh\ncase "$1" in\n  -l) [ -f '${store}' ] || { echo "no crontab for $(id -un)" >&2; exit 1; }; cat '${store}' ;;\n  -) cat > '${store}' ;;\n  *) exit 2 ;;\nesac\n`)
  chmodSync(fake, 0o755)
  const crontab = systemCrontab({MIRROR_CRONTAB: fake})
  t.equal(await crontab.read(), '', 'no table yet is an empty table')
  await crontab.write(userTable)
  t.equal(readFileSync(store, 'utf8'), userTable)
  t.equal(await crontab.read(), userTable)

  const missing = systemCrontab({MIRROR_CRONTAB: join(dir, 'nope')})
  await t.rejects(missing.read(), {code: 'USAGE', message: /not found/, suggestion: /apt-get install cron|--systemd/})

  const broken = join(dir, 'broken')
  writeFileSync(broken, '#!/bin/sh\necho "you are not allowed to use this program" >&2\nexit 1\n')
  chmodSync(broken, 0o755)
  await t.rejects(systemCrontab({MIRROR_CRONTAB: broken}).read(), {message: /not allowed/})
})
