// Resolves the host of an sftp:// target (a name, an address or a `~/.ssh/config` Host alias)
// into connection parameters, as OpenSSH would. It reads config; it does not connect.

import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {homedir, userInfo} from 'node:os'
import {dirname, isAbsolute, join} from 'node:path'

import SSHConfig from 'ssh-config'

import {MirrorError} from '../../errors.js'

export interface SshParams {
  /** The host as written in the target URL (maybe an alias). */
  host: string
  /** The address to connect to (ssh_config HostName, with %h expanded). */
  hostName: string
  port: number
  user: string
  /** Private keys to try, in order, `~` expanded. Only existing files when they are the defaults. */
  identityFiles: string[]
  /** True when identity files were named in the ssh config (a missing one is worth a note). */
  identityFilesExplicit: boolean
  /** Only offer the identity files (and agent keys that match them), as OpenSSH's IdentitiesOnly. */
  identitiesOnly: boolean
  /** known_hosts files from UserKnownHostsFile, `~` expanded; the first receives new keys. */
  userKnownHostsFiles: string[]
  /** HostKeyAlias: the name to look up in known_hosts instead of the host name. */
  hostKeyAlias?: string
  /** ConnectTimeout in milliseconds, when set. */
  connectTimeoutMs?: number
  /** Compression yes. */
  compression: boolean
  /** The agent socket: IdentityAgent, else SSH_AUTH_SOCK; undefined when there is none or "none". */
  agentSocket?: string
  /** ProxyJump / ProxyCommand, which mirror does not support yet: the connection refuses them. */
  proxy?: string
}

export interface ResolveOptions {
  host: string
  /** User from the target URL: overrides the ssh config's User, as `ssh user@host` does. */
  user?: string
  /** Port from the target URL: overrides the ssh config's Port. */
  port?: number
  /** ssh_config file to read instead of ~/.ssh/config (like `ssh -F`); it must exist. */
  configFile?: string
  /** For tests: the home directory and local user. */
  home?: string
  localUser?: string
  env?: NodeJS.ProcessEnv
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa']
const MAX_INCLUDE_DEPTH = 16

export function resolveSshHost(options: ResolveOptions): SshParams {
  const home = options.home ?? homedir()
  const localUser = options.localUser ?? safeUsername()
  const env = options.env ?? process.env
  const configFile = options.configFile ?? join(home, '.ssh', 'config')
  if (options.configFile && !existsSync(configFile)) {
    throw new MirrorError('CONFIG_INVALID', `ssh.config names ${configFile}, which does not exist`, {
      suggestion: 'Fix ssh.config in the mirror config, or remove it to use ~/.ssh/config.',
    })
  }
  const config = existsSync(configFile) ? loadConfig(configFile, home, 0) : new SSHConfig()
  // Match exec would run shell commands from the config on every publish: treated as not matching.
  const computed = config.compute({Host: options.host, ...(options.user && {User: options.user})}, {ignoreCase: true, matchExec: false})
  const one = (key: string): string | undefined => {
    const value = computed[key]
    return Array.isArray(value) ? value[0] : value
  }
  const many = (key: string): string[] => {
    const value = computed[key]
    return value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/).filter(Boolean)
  }

  const user = options.user ?? one('user') ?? localUser
  const port = options.port ?? (one('port') ? Number(one('port')) : 22)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MirrorError('CONFIG_INVALID', `ssh config gives host ${options.host} the port "${one('port')}", which is not a port number`, {
      suggestion: `Fix the Port line in ${configFile}.`,
    })
  }
  const tokens: Record<string, string> = {
    '%': '%',
    h: options.host,
    n: options.host,
    p: String(port),
    r: user,
    u: localUser,
    d: home,
    i: String(process.getuid?.() ?? ''),
  }
  const hostName = expandTokens(one('hostname') ?? options.host, tokens)
  tokens.h = hostName
  const path = (p: string) => expandPath(expandTokens(unquote(p), tokens), home)

  const explicit = many('identityfile').filter((f) => f.toLowerCase() !== 'none')
  const identityFiles = explicit.length > 0 ? explicit.map(path) : DEFAULT_IDENTITIES.map((n) => join(home, '.ssh', n)).filter((f) => existsSync(f))

  const knownHosts = many('userknownhostsfile').filter((f) => f.toLowerCase() !== 'none').map(path)

  const timeout = one('connecttimeout')
  const connectTimeoutMs = timeout && Number(timeout) > 0 ? Number(timeout) * 1000 : undefined

  const agentSetting = one('identityagent')
  let agentSocket: string | undefined = env.SSH_AUTH_SOCK || undefined
  if (agentSetting) {
    if (agentSetting.toLowerCase() === 'none') agentSocket = undefined
    else if (agentSetting !== 'SSH_AUTH_SOCK') {
      const fromEnv = /^\$(\w+)$/.exec(agentSetting)
      agentSocket = fromEnv ? env[fromEnv[1]] || undefined : path(agentSetting)
    }
  }

  const proxyJump = one('proxyjump')
  const proxyCommand = one('proxycommand')
  const proxy =
    proxyJump && proxyJump.toLowerCase() !== 'none'
      ? `ProxyJump ${proxyJump}`
      : proxyCommand && proxyCommand.toLowerCase() !== 'none'
        ? `ProxyCommand ${proxyCommand}`
        : undefined

  return {
    host: options.host,
    hostName,
    port,
    user,
    identityFiles,
    identityFilesExplicit: explicit.length > 0,
    identitiesOnly: one('identitiesonly')?.toLowerCase() === 'yes',
    userKnownHostsFiles: knownHosts.length > 0 ? knownHosts : [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')],
    hostKeyAlias: one('hostkeyalias'),
    connectTimeoutMs,
    compression: one('compression')?.toLowerCase() === 'yes',
    agentSocket,
    proxy,
  }
}

function safeUsername(): string {
  try {
    return userInfo().username
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'root'
  }
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value
}

/** `~` and `~/x` to the home directory, as ssh does for file options. */
export function expandPath(path: string, home: string = homedir()): string {
  if (path === '~') return home
  if (path.startsWith('~/')) return join(home, path.slice(2))
  return path
}

/** OpenSSH's percent tokens (%h, %p, %r, %u, %d, %%); unknown ones are left as written. */
function expandTokens(value: string, tokens: Record<string, string>): string {
  return value.replace(/%(.)/g, (whole, key: string) => tokens[key] ?? whole)
}

/**
 * Parses a config file with its `Include` lines spliced in (ssh-config does not follow them).
 * Relative includes are under ~/.ssh, as OpenSSH reads them for user configs; `*` and `?` are
 * expanded in the last path component.
 */
function loadConfig(file: string, home: string, depth: number): SSHConfig {
  const config = SSHConfig.parse(readFileSync(file, 'utf8'))
  if (depth >= MAX_INCLUDE_DEPTH) return config
  const splice = (lines: SSHConfig): SSHConfig => {
    const out = new SSHConfig()
    for (const line of lines) {
      if (line.type === SSHConfig.DIRECTIVE && line.param.toLowerCase() === 'include') {
        const values = Array.isArray(line.value) ? line.value.map((v) => v.val) : line.value.split(/\s+/)
        for (const pattern of values) {
          for (const included of expandInclude(pattern, home)) out.push(...loadConfig(included, home, depth + 1))
        }
        continue
      }
      if (line.type === SSHConfig.DIRECTIVE && 'config' in line) line.config = splice(line.config)
      out.push(line)
    }
    return out
  }
  return splice(config)
}

function expandInclude(pattern: string, home: string): string[] {
  let path = expandPath(unquote(pattern), home)
  if (!isAbsolute(path)) path = join(home, '.ssh', path)
  const base = path.slice(path.lastIndexOf('/') + 1)
  if (!/[*?]/.test(base)) return existsSync(path) ? [path] : []
  const dir = dirname(path)
  const re = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`)
  try {
    return readdirSync(dir)
      .filter((name) => re.test(name))
      .sort()
      .map((name) => join(dir, name))
  } catch {
    return []
  }
}
