// Routes each source file to its segment (the first whose globs or MIME types match) and from
// there to the target paths it is published under. Pure: no I/O.

import {createRequire} from 'node:module'

import type {SegmentConfig} from '../config/schema.js'
import {compileGlobs} from './globs.js'

export interface Router {
  /** The segment a source path belongs to, or undefined when none matches. */
  segmentFor(path: string): SegmentConfig | undefined
  /** The path under a target's root for a source path in a segment. */
  targetPath(segment: SegmentConfig, path: string): string
  /** The public URL of a source path, when its segment has a publicUrl. */
  publicUrlFor(path: string): string | undefined
}

// mime-types parses its whole database when loaded: only a MIME rule (or the renderer) pays for it.
let lookup: ((path: string) => string | false) | undefined

/** MIME type by extension, as a static web server would send it. */
export function mimeTypeOf(path: string): string {
  lookup ??= (createRequire(import.meta.url)('mime-types') as typeof import('mime-types')).lookup
  return lookup(path) || 'application/octet-stream'
}

export function createRouter(segments: readonly SegmentConfig[]): Router {
  const compiled = segments.map((segment) => {
    const globs = compileGlobs(segment.match)
    const mimes = segment.mime.map((pattern) => {
      const [type, sub] = pattern.toLowerCase().split('/')
      return (m: string) => {
        const [mt, ms] = m.split('/')
        return (type === '*' || type === mt) && (sub === '*' || sub === ms)
      }
    })
    const matches = (path: string) => globs(path) || (mimes.length > 0 && mimes.some((m) => m(mimeTypeOf(path))))
    return {segment, matches}
  })
  // A plain loop: asked once per file of every publish, mostly before V8 compiles it.
  const segmentFor = (path: string) => {
    for (let i = 0; i < compiled.length; i++) if (compiled[i].matches(path)) return compiled[i].segment
    return undefined
  }
  const targetPath = (segment: SegmentConfig, path: string) => (segment.path ? `${segment.path}/${path}` : path)
  return {
    segmentFor,
    targetPath,
    publicUrlFor(path) {
      const segment = segmentFor(path)
      if (!segment?.publicUrl) return undefined
      const base = segment.publicUrl.endsWith('/') ? segment.publicUrl : `${segment.publicUrl}/`
      return base + path.split('/').map(encodeURIComponent).join('/')
    },
  }
}
