// `mirror schedule` through bin/run.js with a fake crontab command (MIRROR_CRONTAB) that keeps
// the table in a temp file, and the installed entry run the way cron runs it: /bin/sh with a
// bare environment and no terminal. Two tests use the real crontab, restoring it: one only adds
// and removes, the other has a real cron daemon run the entry.

import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, existsSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {buildEntry} from '../../src/schedule/crontab.js'
import {binRun, runCli} from '../helpers/cli.js'
import {readTree, sampleSite, tempDir, writeTree} from '../helpers/site.js'

// The real cron test waits for a minute boundary (up to 130 s) on top of what the others take.
t.setTimeout(Number(process.env.TAP_TIMEOUT || 300) * 1000 + 130_000)

const CRON = '/usr/sbin/cron'
/** Where Debian's cron writes its pid (it also holds a lock on it while it runs). */
const CRON_PID_FILE = '/var/run/crond.pid'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const userTable = `# my jobs
MAILTO=ann@example.com
0 4 * * * /usr/local/bin/backup --all
`

async function project() {
  const dir = tempDir('mirror-e2e-schedule-')
  await writeTree(join(dir, 'public'), sampleSite)
  for (const s of ['www1', 'www2']) await fs.mkdir(join(dir, 'slaves', s), {recursive: true})
  const config = join(dir, 'mirror.config.yaml')
  await fs.writeFile(config, `source: ./public\ntargets:\n  www1: file://${dir}/slaves/www1\n  www2: file://${dir}/slaves/www2\n`)
  const table = join(dir, 'crontab.table')
  const fake = join(dir, 'fake-crontab')
  writeFileSync(fake, `#!/bin/sh\ncase "$1" in\n  -l) [ -f '${table}' ] || { echo "no crontab for $(id -un)" >&2; exit 1; }; cat '${table}' ;;\n  -) cat > '${table}' ;;\n  *) echo "usage" >&2; exit 1 ;;\nesac\n`)
  chmodSync(fake, 0o755)
  writeFileSync(table, userTable)
  const env = {MIRROR_CRONTAB: fake}
  return {
    // The line `schedule add "*/10 * * * *"` installs, built directly: one CLI start less a test.
    entry: () => buildEntry({schedule: '*/10 * * * *', node: process.execPath, bin: binRun, config, log: join(dir, '.mirror/schedule.log')}),
    dir,
    config,
    table: () => readFileSync(table, 'utf8'),
    cli: (...args: string[]) => runCli(args, {cwd: dir, env}),
  }
}

/** The user's crontab as `crontab -l` prints it (undefined: none); put back when `t` ends. */
function keepCrontab(t: Test): {saved: string | undefined; restore(): void} {
  const listed = spawnSync('crontab', ['-l'], {encoding: 'utf8'})
  const saved = listed.status === 0 ? listed.stdout : undefined
  const restore = () => {
    if (saved !== undefined) spawnSync('crontab', ['-'], {input: saved})
    else spawnSync('crontab', ['-r'])
  }
  t.teardown(restore)
  return {saved, restore}
}

/** The pid of a cron daemon already running here: its pid file names a live `cron`. */
function runningCron(): number | undefined {
  try {
    const pid = Number(readFileSync(CRON_PID_FILE, 'utf8').trim())
    if (pid > 0 && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'cron') return pid
  } catch {
    // No pid file, or a stale one (cron leaves it behind when it stops).
  }
  return undefined
}

/** Starts cron in the foreground (`-f`) as a child, stopped by its pid when `t` ends. */
async function startCron(t: Test): Promise<void> {
  const child = spawn(CRON, ['-f'], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  let exited = false
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true
      resolve()
    }),
  )
  // If this process dies before the teardown, cron goes too.
  const onExit = () => child.kill('SIGTERM')
  process.once('exit', onExit)
  t.teardown(async () => {
    process.off('exit', onExit)
    if (exited) return
    process.kill(child.pid!, 'SIGTERM')
    await gone
  })
  const deadline = Date.now() + 10_000
  while (!exited && Date.now() < deadline) {
    if (runningCron() === child.pid) return
    await sleep(50)
  }
  throw new Error(`${CRON} -f did not start: ${stderr.trim() || (exited ? 'it exited' : 'no pid file within 10 s')}`)
}

/** Runs the entry's command as cron does: /bin/sh -c, a bare environment, no terminal. */
function runLikeCron(line: string): Promise<{code: number | null; output: string}> {
  const fields = line.startsWith('@') ? 1 : 5
  const command = line.split(' ').slice(fields).join(' ').replace(/\\%/g, '%')
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {env: {HOME: process.env.HOME ?? '/root', LOGNAME: 'root', PATH: '/usr/bin:/bin', SHELL: '/bin/sh'}, stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('close', (code) => resolve({code, output}))
  })
}

t.test('add installs one entry with absolute paths, keeping the other lines; add again replaces it', async (t) => {
  const p = await project()
  const r = await p.cli('schedule', 'add', '*/10 * * * *')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /Added the crontab entry for .*mirror\.config\.yaml/)
  const table = p.table()
  t.ok(table.startsWith(userTable), 'the user lines are untouched')
  const entry = table.slice(userTable.length).trim()
  t.match(entry, new RegExp(`^\\*/10 \\* \\* \\* \\* ${process.execPath} /\\S+/bin/run\\.js schedule run --config ${p.config} --log ${p.dir}/\\.mirror/schedule\\.log # mirror:${p.config}$`))

  const again = await p.cli('schedule', 'add', '@hourly', '--log', 'logs/mirror.log')
  t.equal(again.code, 0)
  t.match(again.stdout, /Replaced the crontab entry/)
  const lines = p.table().split('\n').filter((l) => l.includes('# mirror:'))
  t.equal(lines.length, 1, 'one entry, not two')
  t.match(lines[0], new RegExp(`^@hourly .* --log ${p.dir}/logs/mirror\\.log # mirror:`))
  t.ok(p.table().startsWith(userTable))

  const list = await p.cli('schedule', 'list')
  t.match(list.stdout, new RegExp(`cron +@hourly +${p.config}  \\(this config\\)\\n +log: ${p.dir}/logs/mirror\\.log`))
  const json = JSON.parse((await p.cli('schedule', 'list', '--json')).stdout)
  t.match(json, {ok: true, cron: [{schedule: '@hourly', config: p.config, current: true}]})
})

t.test('a bad schedule is refused and the crontab left alone', async (t) => {
  const p = await project()
  const r = await p.cli('schedule', 'add', '*/10 * * *')
  t.equal(r.code, 2)
  t.match(r.stderr, /"\*\/10 \* \* \*" is not a cron schedule: it has 4 fields, cron needs 5/)
  t.equal(p.table(), userTable)
})

t.test('the installed entry, run as cron runs it: publishes, logs, prints nothing, exit 0', async (t) => {
  const p = await project()
  await p.cli('schedule', 'add', '*/10 * * * *')
  const line = p.table().split('\n').find((l) => l.includes('# mirror:'))!
  t.equal(line, p.entry(), 'the entry the other tests run is the installed one')
  const run = await runLikeCron(line)
  t.equal(run.code, 0)
  t.equal(run.output, '', 'no output: cron sends no mail')
  t.same(await readTree(join(p.dir, 'slaves/www1')), sampleSite, 'published')
  const log = readFileSync(join(p.dir, '.mirror/schedule.log'), 'utf8')
  t.match(log, /^\d{4}-\d\d-\d\dT\S+ scheduled publish of .*mirror\.config\.yaml \(pid \d+\)\n/)
  t.match(log, /Report:\n {2}www1: ok {2}6 sent/)
  t.match(log, /\d{4}-\d\d-\d\dT\S+ finished: ok \(exit 0\) in \d+\.\d s\n/)
  t.notMatch(log, /\u001b\[/, 'no progress bars or colours in the log')
})

t.test('a run that finds the previous one still running skips and says so in the log', async (t) => {
  const p = await project()
  const line = p.entry()
  const previous = spawn('sleep', ['30'])
  t.teardown(() => previous.kill())
  await fs.mkdir(join(p.dir, '.mirror'), {recursive: true})
  await fs.writeFile(join(p.dir, '.mirror/schedule.lock'), JSON.stringify({pid: previous.pid, host: hostname(), since: new Date().toISOString(), command: 'mirror schedule run'}))
  const run = await runLikeCron(line)
  t.equal(run.code, 0)
  t.equal(run.output, '')
  t.match(readFileSync(join(p.dir, '.mirror/schedule.log'), 'utf8'), new RegExp(`skipped: the previous scheduled publish of .* \\(pid ${previous.pid}, started .*\\) is still running`))
  t.notOk(existsSync(join(p.dir, 'slaves/www1/index.html')), 'nothing published')

  previous.kill()
  await new Promise((r) => previous.on('close', r))
  const after = await runLikeCron(line)
  t.equal(after.code, 0, 'a lock left by a process that is gone does not block the next run')
  t.ok(existsSync(join(p.dir, 'slaves/www1/index.html')))
})

t.test('a lock a killed run left on a slave is taken over; a live publisher\'s lock is not', async (t) => {
  const p = await project()
  const line = p.entry()
  const dead = spawn('true')
  await new Promise((r) => dead.on('close', r))
  const state = (name: string) => join(p.dir, 'slaves/.mirror-state', name)
  await fs.mkdir(state('www1'), {recursive: true})
  await fs.writeFile(join(state('www1'), 'lock'), JSON.stringify({host: hostname(), user: 'root', pid: dead.pid, since: '2026-01-01T00:00:00Z', command: 'publish'}))
  await fs.mkdir(state('www2'), {recursive: true})
  await fs.writeFile(join(state('www2'), 'lock'), JSON.stringify({host: 'otherhost', user: 'ann', pid: 4242, since: '2026-01-01T00:00:00Z', command: 'publish'}))
  const run = await runLikeCron(line)
  t.equal(run.code, 4, 'exit 4: a target is locked by another publisher')
  t.match(run.output, /target www2: locked by ann@otherhost/)
  t.match(readFileSync(join(p.dir, '.mirror/schedule.log'), 'utf8'), / {2}www1: ok {2}6 sent/)
  t.same(await readTree(join(p.dir, 'slaves/www1')), sampleSite, 'www1 published')
  t.ok(existsSync(join(state('www2'), 'lock')), "the live publisher's lock is left alone")
})

t.test('a failed run exits non-zero and prints why (cron mails it); the log has the report', async (t) => {
  const p = await project()
  const line = p.entry()
  await fs.rm(join(p.dir, 'slaves/www2'), {recursive: true})
  const run = await runLikeCron(line)
  t.equal(run.code, 3, 'exit 3: partial')
  t.match(run.output, /mirror: scheduled publish of .*mirror\.config\.yaml failed \(exit 3\); the full report is in .*schedule\.log\n/)
  t.match(run.output, /target www2: root .*slaves\/www2 does not exist/)
  t.match(readFileSync(join(p.dir, '.mirror/schedule.log'), 'utf8'), /finished: FAILED \(exit 3\)/)
  t.ok(existsSync(join(p.dir, 'slaves/www1/index.html')), 'the healthy target was published')
})

t.test('remove deletes only this config\'s entry; --all every mirror entry; nothing else changes', async (t) => {
  const p = await project()
  await p.cli('schedule', 'add', '*/10 * * * *')
  // Another project's entry in the same crontab.
  writeFileSync(join(p.dir, 'other.yaml'), `source: ./public\ntargets:\n  www1: file://${p.dir}/slaves/www1\n`)
  t.equal((await p.cli('schedule', 'add', '@daily', '--config', 'other.yaml')).code, 0)
  const r = await p.cli('schedule', 'remove')
  t.equal(r.code, 0)
  t.match(r.stdout, /Removed 1 mirror entry for .*mirror\.config\.yaml from the crontab\./)
  t.match(p.table(), /# mirror:.*other\.yaml/)
  t.notMatch(p.table(), /# mirror:.*mirror\.config\.yaml/)
  const again = await p.cli('schedule', 'remove')
  t.equal(again.code, 0)
  t.match(again.stdout, /No mirror entry for .* in the crontab\./)
  const all = await p.cli('schedule', 'remove', '--all')
  t.match(all.stdout, /Removed 1 mirror entry from the crontab\./)
  t.equal(p.table(), userTable, 'exactly the user\'s table again')
})

t.test('--systemd writes a service and a timer that systemd accepts', async (t) => {
  const p = await project()
  const units = join(p.dir, 'units')
  const r = await p.cli('schedule', 'add', '30 2 * * mon-fri', '--systemd', '--dir', units)
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /systemctl --user daemon-reload && systemctl --user enable --now mirror-mirror-e2e-schedule-\S+\.timer/)
  const files = (await fs.readdir(units)).sort()
  t.equal(files.length, 2)
  const service = readFileSync(join(units, files[0]), 'utf8')
  const timer = readFileSync(join(units, files[1]), 'utf8')
  t.match(service, new RegExp(`ExecStart=${process.execPath} /\\S+/bin/run\\.js schedule run --config ${p.config}\\n`))
  t.match(service, /Type=oneshot/)
  t.match(timer, /OnCalendar=Mon,Tue,Wed,Thu,Fri \*-\*-\* 02:30:00\n/)
  t.match(timer, /Persistent=true/)
  t.equal(p.table(), userTable, 'the crontab is not touched')
  const verify = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, files[0]), join(units, files[1])], {encoding: 'utf8'})
  if (verify.error) t.comment('systemd-analyze not installed: unit files checked by their text only')
  else t.notMatch(verify.stderr, /Unknown (key|section)|Failed to parse|Invalid/, `systemd reads them: ${verify.stderr}`)

  const list = await p.cli('schedule', 'list', '--dir', units)
  t.match(list.stdout, new RegExp(`systemd +Mon,Tue,Wed,Thu,Fri \\*-\\*-\\* 02:30:00 ${p.config}  \\(this config\\)`))
  const removed = await p.cli('schedule', 'remove', '--systemd', '--dir', units)
  t.equal(removed.code, 0)
  t.same(await fs.readdir(units), [])
})

t.test('the real crontab (root only): added and removed, the original table restored', async (t) => {
  const crontab = spawnSync('sh', ['-c', 'command -v crontab'], {encoding: 'utf8'}).stdout.trim()
  if (process.getuid?.() !== 0 || !crontab) {
    t.comment('not root or no crontab: the real crontab is not used')
    return
  }
  const {saved} = keepCrontab(t)
  const p = await project()
  const env = {MIRROR_CRONTAB: ''}
  const r = await runCli(['schedule', 'add', '*/15 * * * *'], {cwd: p.dir, env})
  t.equal(r.code, 0, r.stderr)
  const installed = spawnSync('crontab', ['-l'], {encoding: 'utf8'}).stdout
  t.ok(installed.startsWith(saved ?? ''), 'what was there is kept')
  t.match(installed, new RegExp(`\\*/15 \\* \\* \\* \\* .* # mirror:${p.config}\\n`))
  const removed = await runCli(['schedule', 'remove'], {cwd: p.dir, env})
  t.equal(removed.code, 0)
  t.notMatch(spawnSync('crontab', ['-l'], {encoding: 'utf8'}).stdout, /# mirror:/)
})

t.test('a real cron daemon runs the installed entry: published, the report in the log', async (t) => {
  // No skip: `npm test` installs cron as root (scripts/ensure-deps.js), so CI always runs this.
  if (!existsSync(CRON)) {
    t.fail(`${CRON} not found: install Debian's cron package (npm test does so as root)`)
    return
  }
  const live = runningCron()
  if (live === undefined && process.getuid?.() !== 0) {
    t.fail('no cron daemon is running, and only root can start one: run the tests as root or start cron')
    return
  }
  const crontab = keepCrontab(t)
  const p = await project()
  const env = {MIRROR_CRONTAB: ''}
  const added = await runCli(['schedule', 'add', '* * * * *'], {cwd: p.dir, env})
  t.equal(added.code, 0, added.stderr)
  t.match(spawnSync('crontab', ['-l'], {encoding: 'utf8'}).stdout, new RegExp(`^\\* \\* \\* \\* \\* .* # mirror:${p.config}$`, 'm'))
  // A cron already running rereads the table at its next minute; ours reads it as it starts.
  if (live === undefined) await startCron(t)
  else t.comment(`using the cron daemon already running (pid ${live})`)

  const log = join(p.dir, '.mirror/schedule.log')
  const readLog = () => (existsSync(log) ? readFileSync(log, 'utf8') : '')
  // cron starts jobs on minute boundaries: the first one is at most a minute away.
  const deadline = Date.now() + 130_000
  while (!/ finished: /.test(readLog()) && Date.now() < deadline) await sleep(500)
  t.match(readLog(), /^\d{4}-\d\d-\d\dT\S+ scheduled publish of .*mirror\.config\.yaml \(pid \d+\)\n/, 'cron ran the entry')
  t.match(readLog(), /Report:\n {2}www1: ok {2}6 sent/)
  t.match(readLog(), / finished: ok \(exit 0\) in \d+\.\d s\n/)
  t.same(await readTree(join(p.dir, 'slaves/www1')), sampleSite, 'www1 published')
  t.same(await readTree(join(p.dir, 'slaves/www2')), sampleSite, 'www2 published')

  const removed = await runCli(['schedule', 'remove'], {cwd: p.dir, env})
  t.equal(removed.code, 0, removed.stderr)
  t.notMatch(spawnSync('crontab', ['-l'], {encoding: 'utf8'}).stdout, /# mirror:/)
  crontab.restore()
  const now = spawnSync('crontab', ['-l'], {encoding: 'utf8'})
  t.same(now.status === 0 ? now.stdout : undefined, crontab.saved, "root's original crontab, exactly")
})
