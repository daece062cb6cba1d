// Parses a target URL from the config: `sftp://user@host:port/path` (also `ssh://`), a
// `~/.ssh/config` Host alias as the host, or `file:///path` for a local directory.

import {fileURLToPath} from 'node:url'
import {posix} from 'node:path'

export type TargetLocation =
  | {kind: 'file'; root: string}
  | {kind: 'sftp'; host: string; user?: string; port?: number; root: string}

/** Returns the location, or a message saying what is wrong with the URL. */
export function parseTargetUrl(raw: string): TargetLocation | string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return `not a URL: "${raw}" (expected sftp://user@host/path or file:///path)`
  }
  if (url.password) return 'passwords do not belong in the config: use ssh-agent or an identity file'
  if (url.search || url.hash) return 'a target URL has no query or fragment'
  if (url.protocol === 'file:') {
    if (url.host && url.host !== 'localhost') return `file URLs name a local path: file:///path, not host "${url.host}"`
    const root = fileURLToPath(url)
    return checkRoot(root) ?? {kind: 'file', root: posix.normalize(root).replace(/\/$/, '')}
  }
  if (url.protocol === 'sftp:' || url.protocol === 'ssh:') {
    if (!url.hostname) return 'missing host'
    let root = decodeURIComponent(url.pathname)
    // `sftp://host/~/www` is relative to the SSH user's home, as scp and rclone allow.
    if (root.startsWith('/~/')) root = root.slice(3)
    else if (root === '/~') root = ''
    const bad = root === '' ? 'the root is the home directory itself: name a directory under it' : checkRoot(root)
    if (bad) return bad
    return {
      kind: 'sftp',
      host: url.hostname.replace(/^\[|\]$/g, ''),
      user: url.username ? decodeURIComponent(url.username) : undefined,
      port: url.port ? Number(url.port) : undefined,
      root: posix.normalize(root).replace(/\/$/, ''),
    }
  }
  return `unsupported scheme "${url.protocol.replace(/:$/, '')}" (use sftp:// or file://)`
}

function checkRoot(root: string): string | undefined {
  const normal = posix.normalize(root)
  if (normal === '/' || normal === '.') return 'a target root of "/" would publish over the whole file system'
  if (root.split('/').includes('..')) return 'the root path must not contain ".."'
  return undefined
}

/** True when one root contains the other (or they are the same). */
export function rootsOverlap(a: string, b: string): boolean {
  const slash = (p: string) => (p.endsWith('/') ? p : `${p}/`)
  return slash(a).startsWith(slash(b)) || slash(b).startsWith(slash(a))
}
