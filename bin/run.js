#!/usr/bin/env node
// publish and diff start walking and connecting before oclif loads (src/cli/head-start.ts).
const command = process.argv[2]
const head = command === 'publish' || command === 'diff' ? await import('../dist/cli/head-start.js') : undefined
await head?.startHeadStart(command, process.argv.slice(3))

// The subpath, not the package's index: the index loads every part of oclif (and semver).
const {execute} = await import('@oclif/core/execute')
await execute({dir: import.meta.url})
await head?.dropHeadStart()
