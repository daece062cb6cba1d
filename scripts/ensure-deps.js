// Makes a fresh clone runnable: installs the npm dependencies when missing, the system tools the
// tests need (OpenSSH's sshd and sftp-server, the cron daemon) when missing and we may install
// them, and builds.
// Used by `npm test`, `npm run demo` and `npm run bench`.

import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const projectDir = join(dirname(fileURLToPath(import.meta.url)), '..')

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, {stdio: 'inherit', cwd: projectDir, ...opts})

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

/** Debian packages for the tools asked for; installs those missing when running as root. */
export function ensureSystemTools(tools, {required = true} = {}) {
  const packages = {sshd: ['openssh-server', '/usr/sbin/sshd'], rsync: ['rsync', 'rsync'], wget2: ['wget2', 'wget2'], lsyncd: ['lsyncd', 'lsyncd'], crontab: ['cron', 'crontab'], cron: ['cron', '/usr/sbin/cron'], find: ['findutils', 'find']}
  const missing = tools.filter((tool) => {
    const probe = packages[tool][1]
    return probe.startsWith('/') ? !existsSync(probe) : !have(probe)
  })
  if (missing.length === 0) return true
  const canInstall = process.getuid?.() === 0 && have('apt-get')
  if (!canInstall) {
    if (required) throw new Error(`missing ${missing.join(', ')}: install ${missing.map((t) => packages[t][0]).join(' ')} (e.g. sudo apt-get install)`)
    return false
  }
  console.error(`installing ${missing.map((t) => packages[t][0]).join(' ')} (apt-get)…`)
  const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'}
  run('apt-get', ['update', '-qq'], {env})
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((t) => packages[t][0])], {env})
  return true
}

export function ensureNodeModules() {
  if (!existsSync(join(projectDir, 'node_modules', '.package-lock.json'))) {
    console.error('installing npm dependencies…')
    run('npm', ['ci', '--no-audit', '--no-fund'])
  }
}

export function build() {
  run(process.execPath, [join(projectDir, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'])
}
