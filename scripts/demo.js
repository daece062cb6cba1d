// `npm run demo`: makes a fresh clone runnable (npm packages, a build, OpenSSH's sshd when it
// can be installed), then runs the demo (scripts/demo.ts) through tsx.

import {spawnSync} from 'node:child_process'
import {join} from 'node:path'

import {build, ensureNodeModules, ensureSystemTools, projectDir} from './ensure-deps.js'

ensureNodeModules()
build()
try {
  // Real SSH slaves when we can have them; the demo falls back to local directories otherwise.
  ensureSystemTools(['sshd'], {required: false})
} catch (error) {
  console.error(`could not install openssh-server: ${error.message}`)
}
const run = spawnSync(process.execPath, ['--import', 'tsx', join(projectDir, 'scripts/demo.ts')], {cwd: projectDir, stdio: 'inherit'})
process.exit(run.status ?? 1)
