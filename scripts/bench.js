// `npm run bench`: makes sure what the benchmark needs is here (npm packages, sshd and rsync;
// rclone, wget2 and lsyncd for the optional baselines), builds, then runs bench/main.ts through
// tsx. As root it runs the benchmark in a private network namespace (`unshare --net`): traffic
// stays on that namespace's own 127.0.0.1, and its loopback counters are the bytes on the wire
// (behind `--link`, the emulated link's relays count them instead, with or without a namespace).
// Flags for this launcher: --no-build, --no-install, --no-netns; the rest go to bench/main.ts
// (`npm run bench -- --help`).

import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {join} from 'node:path'

import {build, ensureNodeModules, ensureSystemTools, projectDir} from './ensure-deps.js'

const own = new Set(['--no-build', '--no-install', '--no-netns'])
const argv = process.argv.slice(2)
const flags = new Set(argv.filter((a) => own.has(a)))
const args = argv.filter((a) => !own.has(a))
const help = args.includes('--help') || args.includes('-h')

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], {stdio: 'ignore'}).status === 0
}

/** rclone is not among ensure-deps.js's tools: install it the same way, optionally. */
function ensureRclone() {
  if (have('rclone')) return true
  if (process.getuid?.() !== 0 || !have('apt-get')) return false
  try {
    console.error('installing rclone (apt-get)…')
    const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'}
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'rclone'], {stdio: 'inherit', env})
    return true
  } catch {
    console.error('could not install rclone: its baseline is skipped')
    return false
  }
}

if (!help) {
  ensureNodeModules()
  ensureSystemTools(['sshd', 'rsync'])
  if (!flags.has('--no-install')) {
    for (const tool of ['wget2', 'lsyncd']) {
      try {
        if (!ensureSystemTools([tool], {required: false})) console.error(`${tool} is not installed: its baseline is skipped`)
      } catch (error) {
        console.error(`could not install ${tool} (${error.message}): its baseline is skipped`)
      }
    }
    ensureRclone()
  }
  if (!flags.has('--no-build')) build()
}

const node = [process.execPath, '--import', 'tsx', join(projectDir, 'bench/main.ts'), ...args]
// A private network namespace needs CAP_SYS_ADMIN (root); probe it rather than guess.
const netns = !help && !flags.has('--no-netns') && have('unshare') && have('ip') && spawnSync('unshare', ['--net', 'true'], {stdio: 'ignore'}).status === 0
const [cmd, ...cmdArgs] = netns ? ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...node] : node
const linked = args.some((a) => a === '--link' || a.startsWith('--link='))
if (!netns && !help && !linked) console.error('no private network namespace (needs root and unshare): bytes on the wire are not measured, only the tools\' own counts')

const child = spawn(cmd, cmdArgs, {cwd: projectDir, stdio: 'inherit', env: {...process.env, MIRROR_BENCH_NETNS: netns ? '1' : '0'}})
// Ctrl-C reaches the whole foreground group; the benchmark stops its slaves itself. Forward
// SIGTERM, which only reaches us.
process.on('SIGINT', () => {})
process.on('SIGTERM', () => child.kill('SIGTERM'))
child.on('close', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)))
