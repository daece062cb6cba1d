// Every command, listed explicitly so that start-up does not scan the file system.

import Diff from './diff.js'
import Init from './init.js'
import Publish from './publish.js'
import Render from './render.js'
import Status from './status.js'

export const COMMANDS = {
  diff: Diff,
  init: Init,
  publish: Publish,
  render: Render,
  status: Status,
}
