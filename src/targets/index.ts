// Builds the Target for a configured target from its URL scheme. The only place that knows
// which kinds exist; the sync core sees only the Target interface.

import type {Config} from '../config/load.js'
import type {TargetConfig} from '../config/schema.js'
import {LocalTarget} from './local-target.js'
import {SftpTarget} from './ssh/sftp-target.js'
import type {Target} from './target.js'

export function createTarget(target: TargetConfig, config: Pick<Config, 'ssh'>): Target {
  switch (target.location.kind) {
    case 'file':
      return new LocalTarget(target)
    case 'sftp':
      return new SftpTarget(target, config.ssh)
  }
}
