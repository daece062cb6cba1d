// An SftpTarget reaching a real sshd through the benchmark's emulated link (bench/link.ts): the
// relay's port in an ssh_config of its own, the slave's host key known under the slave's name.

import {mkdtempSync, writeFileSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {Test} from 'tap'

import {startLink, type LinkSpec} from '../../bench/link.js'
import {SftpTarget} from '../../src/targets/ssh/sftp-target.js'
import {sshdFor} from './sshd.js'

export interface LinkedTarget {
  target: SftpTarget
  /** A temporary directory for the test's own files; the target's root is `root` inside it. */
  dir: string
  root: string
  /** The target's state directory (outside the root). */
  state: string
}

/** A connected target behind a link of `spec`; everything is stopped and removed at the test's end. */
export async function linkedTarget(t: Test, spec: LinkSpec): Promise<LinkedTarget> {
  const sshd = await sshdFor(t)
  const link = await startLink(spec, [sshd.port])
  t.teardown(() => link.stop())
  const dir = mkdtempSync(join(tmpdir(), 'mirror-link-'))
  t.teardown(() => fs.rm(dir, {recursive: true, force: true}))
  const root = join(dir, 'www')
  const state = join(dir, 'www-state')
  await fs.mkdir(root)
  const sshConfig = join(dir, 'ssh_config')
  writeFileSync(
    sshConfig,
    [
      `Host ${sshd.alias}`,
      '  HostName 127.0.0.1',
      `  Port ${link.ports[0]}`,
      // The relay's port is not the slave's: its key is known under the slave's own name.
      `  HostKeyAlias [127.0.0.1]:${sshd.port}`,
      `  User ${sshd.user}`,
      `  IdentityFile ${sshd.identityFile}`,
      `  UserKnownHostsFile ${sshd.knownHostsFile}`,
      '  IdentitiesOnly yes',
      '',
    ].join('\n'),
  )
  const target = new SftpTarget(
    {name: 'far', url: `sftp://${sshd.alias}${root}`, location: {kind: 'sftp', host: sshd.alias, root}, state, transfers: 32, hostKeys: 'strict', timeoutMs: 30_000, compress: false, bulk: true},
    {config: sshConfig},
  )
  t.teardown(() => target.close())
  await target.connect()
  return {target, dir, root, state}
}
