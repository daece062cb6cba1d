import {mkdtempSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import t from 'tap'

import type {TargetConfig} from '../../../src/config/schema.js'
import {LocalTarget} from '../../../src/targets/local-target.js'
import {runConformance} from '../../helpers/conformance.js'

function localConfig(root: string): TargetConfig {
  return {name: 'local', url: `file://${root}`, location: {kind: 'file', root}, transfers: 8, hostKeys: 'strict', timeoutMs: 5000}
}

runConformance(t, 'local', async () => {
  const base = mkdtempSync(join(tmpdir(), 'mirror-local-'))
  const root = join(base, 'www')
  await fs.mkdir(root)
  const target = new LocalTarget(localConfig(root))
  return {
    target,
    root,
    stateDir: target.stateDir,
    reopen: async () => new LocalTarget(localConfig(root)),
    cleanup: () => fs.rm(base, {recursive: true, force: true}),
  }
})

t.test('local: a missing root is ROOT_MISSING naming the target', async (t) => {
  const target = new LocalTarget(localConfig('/nonexistent/mirror/root'))
  await t.rejects(target.connect(), {code: 'ROOT_MISSING', target: 'local'})
})
