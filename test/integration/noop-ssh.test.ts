// What a publish costs a slave, seen from the slave: every process sshd starts for mirror goes
// through a ForceCommand that logs it. A clean noop must start one sftp-server and nothing else.

import {chmodSync, readFileSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {runCli} from '../helpers/cli.js'
import {sampleSite, tempDir, writeTree} from '../helpers/site.js'
import {sshdFor} from '../helpers/sshd.js'

t.test('a clean noop starts one sftp-server on the slave: no shell, no second channel', async (t) => {
  const dir = tempDir('mirror-noop-ssh-')
  const log = join(dir, 'sessions.log')
  const wrapper = join(dir, 'log-session.sh')
  // sshd hands the forced command what the client asked for (the subsystem's path for SFTP).
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$SSH_ORIGINAL_COMMAND" >> ${log}\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`)
  chmodSync(wrapper, 0o755)
  const slave = await sshdFor(t, {alias: 'slave-logged', extraConfig: [`ForceCommand ${wrapper}`]})
  await fs.mkdir(join(dir, 'root'))
  await writeTree(join(dir, 'public'), sampleSite)
  await fs.writeFile(
    join(dir, 'mirror.config.yaml'),
    `source: ./public\nssh:\n  config: ${slave.sshConfigFile}\ntargets:\n  www: {url: "sftp://slave-logged${join(dir, 'root')}", state: "${dir}/state"}\n`,
  )
  const sessions = () => readFileSync(log, 'utf8').trim().split('\n')

  const first = await runCli(['publish'], {cwd: dir})
  t.equal(first.code, 0, first.stderr)
  t.ok(sessions().some((line) => line.startsWith('printf ')), 'a publish with work probes for commands')
  t.ok(sessions().filter((line) => line.includes('sftp-server')).length >= 2, 'and opens its SFTP channels')

  await fs.writeFile(log, '')
  const noop = await runCli(['publish', '--json'], {cwd: dir})
  t.equal(noop.code, 0, noop.stderr)
  t.equal(JSON.parse(noop.stdout).targets[0].report.sent, 0, 'nothing sent')
  t.same(sessions().map((line) => line.replace(/.*\//, '')), ['sftp-server'], 'one session, the SFTP channel')
})
