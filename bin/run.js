#!/usr/bin/env node
// The subpath, not the package's index: the index loads every part of oclif (and semver).
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})
