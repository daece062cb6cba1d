// `mirror publish --render` (and `render.beforePublish`): render first, with progress on a
// terminal and a one-line summary on stderr, so that stdout stays the publish's own output.
// A failed render throws, and the publish does not start.

import type {Config} from '../config/load.js'
import {formatDuration} from '../ui/format.js'
import {untilStopped} from '../util/process.js'
import {renderSite, type RenderReport} from './index.js'
import {createRenderProgress} from './progress.js'

export async function renderBeforePublish(config: Config, options: {json?: boolean} = {}): Promise<RenderReport> {
  const progress = createRenderProgress(!options.json)
  try {
    const report = await untilStopped((signal) => renderSite(config, {signal, onProgress: (p) => progress.update(p)}))
    progress.done()
    if (!options.json) process.stderr.write(`${summaryLine(report)}\n`)
    return report
  } finally {
    progress.done()
  }
}

/** One line for a log: what the render saved and what needs a look. */
export function summaryLine(report: RenderReport): string {
  const problems = [
    report.errors.length > 0 && `${report.errors.length} errors`,
    report.broken.length > 0 && `${report.broken.length} broken links`,
    report.cutOff.length > 0 && `${report.cutOff.length} cut off`,
  ].filter(Boolean)
  return (
    `render: ${report.pages} pages, ${report.assets} assets in ${formatDuration(report.durationMs)}; ` +
    `${report.files.written.length} files written, ${report.files.removed.length} removed` +
    (problems.length > 0 ? `; ${problems.join(', ')} (run \`mirror render\` for details)` : '')
  )
}
