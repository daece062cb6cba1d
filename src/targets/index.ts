// Builds the Target for a configured target from its URL scheme. The only place that knows
// which kinds exist; the sync core sees only the Target interface. The SSH side is loaded only
// when a config has an sftp:// target.

import type {Config} from '../config/load.js'
import type {TargetConfig} from '../config/schema.js'
import {LocalTarget} from './local-target.js'
import type {Target} from './target.js'

export async function createTarget(target: TargetConfig, config: Pick<Config, 'ssh'>): Promise<Target> {
  switch (target.location.kind) {
    case 'file':
      return new LocalTarget(target)
    case 'sftp': {
      const {SftpTarget} = await import('./ssh/sftp-target.js')
      return new SftpTarget(target, config.ssh)
    }
  }
}
