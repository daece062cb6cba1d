import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import * as Flags from '@oclif/core/flags'

import {BaseCommand} from '../cli/base-command.js'
import {CONFIG_NAMES} from '../config/load.js'
import {parseTargetUrl} from '../config/target-url.js'
import {MirrorError} from '../errors.js'

const TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), '../../templates/mirror.config.yaml')

export default class Init extends BaseCommand<typeof Init> {
  static override summary = 'Write a commented mirror.config.yaml.'
  static override examples = [
    '<%= config.bin %> init --source ./public --target cache1=sftp://deploy@cache1.example.com/var/www/html',
    '<%= config.bin %> init --target img=sftp://img-host/srv/img --target www=sftp://www/var/www --images img --origin http://127.0.0.1:8080',
  ]

  static override flags = {
    source: Flags.string({description: 'the tree to publish', default: './public'}),
    target: Flags.string({description: 'a target as NAME=URL (repeatable)', multiple: true}),
    images: Flags.string({description: 'send images to this target only (an "images" segment); the rest go to the others'}),
    origin: Flags.string({description: 'the dynamic site to render into the source, e.g. http://127.0.0.1:8080'}),
    force: Flags.boolean({description: 'overwrite an existing config'}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const file = resolve(flags.config ?? CONFIG_NAMES[0])
    if (existsSync(file) && !flags.force) {
      throw new MirrorError('USAGE', `${file} already exists`, {suggestion: 'Use --force to overwrite it.'})
    }
    const targets = (flags.target ?? ['www=sftp://deploy@www.example.com/var/www/html']).map((spec) => {
      const at = spec.indexOf('=')
      if (at < 1) throw new MirrorError('USAGE', `--target ${spec}: expected NAME=URL`)
      const [name, url] = [spec.slice(0, at), spec.slice(at + 1)]
      const parsed = parseTargetUrl(url)
      if (typeof parsed === 'string') throw new MirrorError('USAGE', `--target ${name}: ${parsed}`)
      return {name, url}
    })
    const names = targets.map((t) => t.name)
    if (flags.images && !names.includes(flags.images)) throw new MirrorError('USAGE', `--images ${flags.images}: no such --target`)
    const rest = names.filter((n) => n !== flags.images)
    const segments = [
      ...(flags.images
        ? [`  - name: images`, `    mime: ["image/*"]`, `    targets: [${flags.images}]`, `    # publicUrl: https://img.example.com/`]
        : []),
      `  - name: pages`,
      `    match: ["**"]`,
      `    targets: [${(rest.length > 0 ? rest : names).join(', ')}]`,
    ]
    const render = flags.origin
      ? ['render:', `  origin: ${flags.origin}`, '  entry: ["/"]', '  exclude: ["/login*", "*?do=edit*", "*action=edit*"]', '  concurrency: 8'].join('\n')
      : ['# render:', '#   origin: http://127.0.0.1:8080', '#   entry: ["/"]', '#   exclude: ["/login*", "*?do=edit*"]'].join('\n')
    const text = readFileSync(TEMPLATE, 'utf8')
      .replace('{{source}}', flags.source)
      .replace('{{targets}}', targets.map((t) => `  ${t.name}: ${t.url}`).join('\n'))
      .replace('{{segments}}', segments.join('\n'))
      .replace('{{render}}', render)
    // What init writes must load: a broken template is a bug, caught here rather than later.
    const {parseConfig} = await import('../config/validate.js')
    parseConfig(text, file)
    writeFileSync(file, text)
    if (this.flags.json) await this.printJson({ok: true, file})
    else this.log(`Wrote ${file}\nNext: mirror diff (the plan), then mirror publish.`)
  }
}
