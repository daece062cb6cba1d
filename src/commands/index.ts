// Every command, listed explicitly so that start-up does not scan the file system. Commands
// import their domain (ssh2, the renderer, chokidar, the config schema) inside run(): start-up
// loads only the command classes, and a command pays only for what it uses.

import Diff from './diff.js'
import Init from './init.js'
import Publish from './publish.js'
import Render from './render.js'
import {Schedule, ScheduleAdd, ScheduleList, ScheduleRemove, ScheduleRun} from './schedule.js'
import Status from './status.js'
import Watch from './watch.js'

export const COMMANDS = {
  diff: Diff,
  init: Init,
  publish: Publish,
  render: Render,
  schedule: Schedule,
  'schedule:add': ScheduleAdd,
  'schedule:list': ScheduleList,
  'schedule:remove': ScheduleRemove,
  'schedule:run': ScheduleRun,
  status: Status,
  watch: Watch,
}
