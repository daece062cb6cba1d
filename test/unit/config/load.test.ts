import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import t from 'tap'

import {loadConfig} from '../../../src/config/load.js'
import {tempDir} from '../../helpers/site.js'

t.test('a config is validated once per text: an unchanged one, or one switched back to, comes from the cache; an edited one is checked again', async (t) => {
  const dir = tempDir('mirror-config-')
  const cacheHome = tempDir('mirror-cache-')
  const saved = process.env.XDG_CACHE_HOME
  process.env.XDG_CACHE_HOME = cacheHome
  t.teardown(() => {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME
    else process.env.XDG_CACHE_HOME = saved
  })
  const file = join(dir, 'mirror.config.yaml')
  writeFileSync(file, 'source: ./public\ntargets:\n  www: file:///srv/www\n')
  const first = await loadConfig({cwd: dir})
  t.equal(first.publish.parallel, 8)
  t.equal(first.source, join(dir, 'public'), 'paths are resolved against the config')

  // The cache is what the second load uses: a planted value shows through.
  const cacheDir = join(cacheHome, 'mirror', 'configs')
  const [cacheFile] = readdirSync(cacheDir)
  const cached = JSON.parse(readFileSync(join(cacheDir, cacheFile), 'utf8'))
  cached.entries[0].raw.publish.parallel = 3
  writeFileSync(join(cacheDir, cacheFile), JSON.stringify(cached))
  t.equal((await loadConfig({cwd: dir})).publish.parallel, 3, 'the unchanged text is not validated again')

  writeFileSync(file, 'source: ./public\ntargets:\n  www: file:///srv/www\npublish:\n  parallel: 2\n')
  t.equal((await loadConfig({cwd: dir})).publish.parallel, 2, 'an edited config is read afresh')
  writeFileSync(file, 'source: ./public\ntargets:\n  www: file:///srv/www\n')
  t.equal((await loadConfig({cwd: dir})).publish.parallel, 3, 'a text switched back to still comes from the cache')
  t.equal(readdirSync(cacheDir).length, 1, 'one cache file per config file')
  writeFileSync(file, 'source: ./public\ntargets:\n  www: file:///srv/www\npublish:\n  paralel: 2\n')
  await t.rejects(loadConfig({cwd: dir}), {code: 'CONFIG_INVALID', message: /publish: unknown key "paralel"/})
})
