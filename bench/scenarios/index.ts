// The scenario modules `npm run bench` knows, in the order they run. A module whose
// prerequisites are missing in this checkout says why and is skipped.

import type {ScenarioModule} from '../types.js'
import {publishModule} from './publish.js'
import {renderModule} from './render.js'
import {watchModule} from './watch.js'

export const MODULES: ScenarioModule[] = [publishModule, renderModule, watchModule]
