// `npm test`: makes sure what the tests need is here (npm packages, OpenSSH sshd, cron), builds,
// runs the whole suite with tap, and ends with one line `N passed, N failed`.
// Extra arguments go to tap (e.g. `npm test -- test/unit`).

import {spawn} from 'node:child_process'
import {join} from 'node:path'

import {build, ensureNodeModules, ensureSystemTools, projectDir} from './ensure-deps.js'

ensureNodeModules()
// The integration tests start real sshd processes, one e2e test has a real cron daemon run
// the installed entry, and the walk's tests compare GNU find's listing with Node's own walk;
// without them they must fail, not skip.
ensureSystemTools(['sshd', 'cron', 'find'])
build()

const tap = spawn(process.execPath, [join(projectDir, 'node_modules/tap/dist/esm/run.mjs'), '--reporter=tap', ...process.argv.slice(2)], {
  cwd: projectDir,
  stdio: ['ignore', 'pipe', 'inherit'],
})
let tail = ''
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4000)
})
tap.on('close', (code) => {
  const summary = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/.exec(tail)
  const passed = Number(summary?.[2] ?? 0)
  const failed = Number(summary?.[3] ?? 0) + (summary ? 0 : 1)
  console.log(`\n${passed} passed, ${failed} failed`)
  process.exit(code ?? 1)
})
