#!/usr/bin/env node
// A run is short: at V8's default budget its optimizing compiler spent a fifth of a changed
// publish's CPU (0.6 s of 3.5 s on 2 cores, on its own threads) compiling functions that ran a
// few times. Sixteen times the budget still optimizes the hot loops (hashing, deltas, transfers).
import {setFlagsFromString} from 'node:v8'
setFlagsFromString('--interrupt-budget=1081344')

// publish and diff start walking and connecting before oclif loads (src/cli/head-start.ts).
const command = process.argv[2]
const head = command === 'publish' || command === 'diff' ? await import('../dist/cli/head-start.js') : undefined
await head?.startHeadStart(command, process.argv.slice(3))
// A plain publish runs without oclif at all.
if (!(await head?.answerPlainPublish())) {
  // The subpath, not the package's index: the index loads every part of oclif (and semver).
  const {execute} = await import('@oclif/core/execute')
  await execute({dir: import.meta.url})
  await head?.dropHeadStart()
}
