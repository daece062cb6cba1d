import t from 'tap'

import {checkRelativePath} from '../../../src/targets/paths.js'

t.test('plain relative paths pass; anything that could leave the root is refused with the reason', async (t) => {
  for (const path of ['index.html', 'a/b/c.png', '.well-known/x', 'a/..b/c..', 'é'.repeat(120), `dir/${'é'.repeat(127)}`]) t.equal(checkRelativePath(path), path, path)
  const refused: Array<[string, RegExp]> = [
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['../escape.txt', /"\.\." component/],
    ['a/../../b', /"\.\." component/],
    ['a/./b', /empty or "\." component/],
    ['a//b', /empty or "\." component/],
    ['a/', /empty or "\." component/],
    ['.', /empty or "\." component/],
    ['nul\0byte', /NUL/],
    ['€'.repeat(86), /longer than 255 bytes/],
    [`a/${'x'.repeat(256)}`, /longer than 255 bytes/],
  ]
  for (const [path, why] of refused) t.throws(() => checkRelativePath(path), {code: 'UNSAFE_PATH', message: why}, JSON.stringify(path).slice(0, 40))
})
