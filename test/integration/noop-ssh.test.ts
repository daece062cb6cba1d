// What a publish costs a slave, seen from the slave: every process sshd starts for mirror goes
// through a ForceCommand that logs it. A clean noop must start one sftp-server and nothing else.

import {chmodSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t, {type Test} from 'tap'

import {runCli} from '../helpers/cli.js'
import {sampleSite, tempDir, writeTree} from '../helpers/site.js'
import {sshdFor} from '../helpers/sshd.js'

/** A slave whose sshd logs every session it starts, and a site published to it by the config `configName`. */
async function loggedSlave(t: Test, alias: string, configName: string) {
  const dir = tempDir(`mirror-${alias}-`)
  const log = join(dir, 'sessions.log')
  const wrapper = join(dir, 'log-session.sh')
  // sshd hands the forced command what the client asked for (the subsystem's path for SFTP).
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$SSH_ORIGINAL_COMMAND" >> ${log}\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`)
  chmodSync(wrapper, 0o755)
  const slave = await sshdFor(t, {alias, extraConfig: [`ForceCommand ${wrapper}`]})
  await fs.mkdir(join(dir, 'root'))
  await writeTree(join(dir, 'public'), sampleSite)
  await fs.writeFile(
    join(dir, configName),
    `source: ./public\nssh:\n  config: ${slave.sshConfigFile}\ntargets:\n  www: {url: "sftp://${alias}${join(dir, 'root')}", state: "${dir}/state"}\n`,
  )
  return {dir, log, sessions: () => readFileSync(log, 'utf8').trim().split('\n')}
}

t.test('a clean noop starts one sftp-server on the slave: no shell, no second channel', async (t) => {
  const {dir, log, sessions} = await loggedSlave(t, 'slave-logged', 'mirror.config.yaml')

  const first = await runCli(['publish'], {cwd: dir})
  t.equal(first.code, 0, first.stderr)
  t.ok(sessions().some((line) => line.startsWith('printf ')), 'a publish with work probes for commands')
  t.ok(sessions().filter((line) => line.includes('sftp-server')).length >= 2, 'and opens its SFTP channels')

  await fs.writeFile(log, '')
  const noop = await runCli(['publish', '--json'], {cwd: dir})
  t.equal(noop.code, 0, noop.stderr)
  t.equal(JSON.parse(noop.stdout).targets[0].report.sent, 0, 'nothing sent')
  t.same(sessions().map((line) => line.replace(/.*\//, '')), ['sftp-server'], 'one session, the SFTP channel')

  // A small change (no file large enough for a delta): sent, and the process ends by itself.
  await fs.writeFile(join(dir, 'public', 'about.html'), '<html><h1>About us, edited</h1></html>')
  const edit = await runCli(['publish'], {cwd: dir, timeoutMs: 20_000})
  t.equal(edit.code, 0, `the publish ends: ${edit.stderr}`)
  t.equal(await fs.readFile(join(dir, 'root', 'about.html'), 'utf8'), '<html><h1>About us, edited</h1></html>')
})

// publish and diff start connecting before oclif has read their flags (src/cli/head-start.ts):
// the command must take that connection over, not open a second one, and a command that ends
// without taking it (a bad flag, an unknown target) must still end.
t.test('the connection started before the flags are read is the one the command uses', async (t) => {
  const {dir, log, sessions} = await loggedSlave(t, 'slave-head', 'site.yaml')
  const sftpSessions = () => sessions().filter((line) => line.includes('sftp-server')).length
  t.equal((await runCli(['publish', '--config', 'site.yaml'], {cwd: dir})).code, 0)

  for (const args of [['publish', '--config=site.yaml', '--target', 'www', '--json'], ['diff', '-c', 'site.yaml', '-t', 'www', '--json']]) {
    await fs.writeFile(log, '')
    const run = await runCli(args, {cwd: dir})
    t.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`)
    t.equal(JSON.parse(run.stdout).targets[0].plan.actions.length, 0, `${args[0]}: nothing to do`)
    t.equal(sftpSessions(), 1, `${args.join(' ')}: one SFTP session, not one per start`)
  }

  const badFlag = await runCli(['publish', '--config', 'site.yaml', '--no-such-flag'], {cwd: dir, timeoutMs: 20_000})
  t.equal(badFlag.code, 2, 'a bad flag is a usage error, and the process ends')
  t.match(badFlag.stderr, /no-such-flag/)
  const unknown = await runCli(['publish', '--config', 'site.yaml', '--target', 'nope'], {cwd: dir, timeoutMs: 20_000})
  t.not(unknown.code, null, 'an unknown target ends the process too')
  t.match(unknown.stderr, /no target named "nope"/)
  // Bundled short flags are left to oclif: no head start, the same answer.
  const bundled = await runCli(['publish', '-nv', '--config', 'site.yaml'], {cwd: dir, timeoutMs: 20_000})
  t.equal(bundled.code, 0, bundled.stderr)
  t.match(bundled.stdout, /www/)
})
