// Glob matching for config patterns (exclude, protect, segment match). One place so that every
// pattern behaves alike: dotfiles included, and names with newlines matched too (picomatch's
// `**` uses `.`, which skips "\n" unless the regex gets the `s` flag).

import {createRequire} from 'node:module'

import type Picomatch from 'picomatch'

export type Matcher = (path: string) => boolean

/** picomatch, loaded at its first real use: a clean noop matches nothing and does without it. */
let picomatch: typeof Picomatch | undefined

export function compileGlobs(globs: readonly string[]): Matcher {
  if (globs.length === 0) return () => false
  // "**" (a catch-all segment) matches every path: no regex to run on each of 20,000 paths.
  if (globs.includes('**')) return () => true
  picomatch ??= createRequire(import.meta.url)('picomatch') as typeof Picomatch
  return picomatch([...globs], {dot: true, flags: 's'})
}
