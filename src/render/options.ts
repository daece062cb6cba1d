// Turns the validated config into what the renderer runs on: the site and its entries, header
// values with ${NAME} taken from the environment (never stored), compiled volatile patterns, the
// segment router. Throws CONFIG_INVALID naming the key when something cannot be resolved.

import type {Config} from '../config/load.js'
import type {RenderConfig} from '../config/render-schema.js'
import {MirrorError} from '../errors.js'
import {createRouter, type Router} from '../sync/segments.js'
import {createSite, resolveUrl, type Site} from './urls.js'

export interface RenderOptions extends Omit<RenderConfig, 'volatile' | 'entry' | 'headers' | 'redirectMap'> {
  site: Site
  entries: URL[]
  headers: Record<string, string>
  volatile: RegExp[]
  timeoutMs: number
  redirectMap?: string
  source: string
  stateDir: string
  router: Router
}

function invalid(key: string, message: string): MirrorError {
  return new MirrorError('CONFIG_INVALID', `render.${key}: ${message}`, {
    suggestion: 'Fix the key named above in the config file.',
  })
}

/** `${NAME}` references replaced from `env`; a missing variable is an error, not an empty header. */
export function expandEnv(value: string, key: string, env: NodeJS.ProcessEnv = process.env): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const found = env[name]
    if (found === undefined) throw invalid(key, `environment variable ${name} is not set`)
    return found
  })
}

export function resolveOptions(config: Config, env: NodeJS.ProcessEnv = process.env): RenderOptions {
  const render = config.render
  if (!render) {
    throw new MirrorError('USAGE', 'the config has no "render" block, so there is nothing to render', {
      suggestion: 'Add render: {origin: http://...} to the config (see `mirror init --help`).',
    })
  }
  const site = createSite(render.origin, render.aliases)
  const entries = render.entry.map((path, i) => {
    const url = resolveUrl(path, site.origin)
    if (!url || url.origin !== site.origin) throw invalid(`entry[${i}]`, `"${path}" is not a path on the origin`)
    return url
  })
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(render.headers)) headers[name] = expandEnv(value, `headers.${name}`, env)
  const volatile = render.volatile.map((pattern) => new RegExp(pattern, 'g'))
  const {entry: _entry, headers: _headers, volatile: _volatile, redirectMap, timeout, ...rest} = render
  return {
    ...rest,
    timeout,
    site,
    entries,
    headers,
    volatile,
    timeoutMs: timeout * 1000,
    redirectMap: redirectMap === false ? undefined : redirectMap,
    source: config.source,
    stateDir: config.stateDir,
    router: createRouter(config.segments),
  }
}
