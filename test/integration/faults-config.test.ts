// Bad configuration, through the CLI against real sshd slaves: every problem named once with its
// key, exit 2, nothing pushed anywhere. (test/e2e/publish-local.test.ts covers an unknown segment
// key, a root of "/", an unsupported scheme and an unknown target name; this adds the rest, and
// the ssh side: an IdentityFile that is missing or cannot be used.)

import * as fs from 'node:fs/promises'
import {join} from 'node:path'

import t from 'tap'

import {faultProject, guardOutside, smallSite} from '../helpers/faults.js'
import {readTree} from '../helpers/site.js'

t.test('bad config: one message per problem, each with its key, exit 2, nothing pushed', async (t) => {
  const p = await faultProject(t, {slaves: ['a', 'b']})
  const {a, b} = p.slaves
  const guard = await guardOutside(p)
  const cases: Array<{what: string; config: string; problems: RegExp[]}> = [
    {
      what: 'unknown keys at every level',
      config: `source: ./public\nsourse: ./typo\nssh: {config: ./ssh_config, agent: yes}\ntargets:\n  a: {url: "sftp://slave-a${a.root}", timeuot: 5}\npublish: {paralel: 2}\n`,
      problems: [/\(top level\): unknown key "sourse"/, /ssh: unknown key "agent"/, /targets\.a: unknown key "timeuot"/, /publish: unknown key "paralel"/],
    },
    {
      what: 'wrong types',
      config: `source: [public]\ntargets:\n  a: {url: "sftp://slave-a${a.root}", transfers: many, timeout: -1, hostKeys: trust-all}\n  b: {state: /srv/state}\n  c: 42\nexclude: "*.tmp"\npublish: {parallel: 0}\n`,
      problems: [
        /source: expected string, received array/,
        /targets\.a\.transfers: expected number, received string/,
        /targets\.a\.timeout: Too small: expected number to be >0/,
        /targets\.a\.hostKeys: Invalid option: expected one of "strict"\|"accept-new"/,
        /targets\.b\.url: missing \(a string is required\)/,
        /targets\.c: expected a URL string or an object with "url"/,
        /exclude: expected array, received string/,
        /publish\.parallel: Too small: expected number to be >=1/,
      ],
    },
    {
      what: 'invalid URLs, a password, a root of "/", overlapping roots',
      config: `source: ./public\ntargets:\n  a: "not a url"\n  b: "sftp://deploy:hunter2@slave-b${b.root}"\n  c: "sftp:///var/www"\n  d: "sftp://slave-a/"\n  e: "sftp://slave-a${a.root}"\n  f: "sftp://slave-a${a.root}/sub"\n`,
      problems: [
        /targets\.a: not a URL: "not a url"/,
        /targets\.b: passwords do not belong in the config/,
        /targets\.c: missing host/,
        /targets\.d: a target root of "\/" would publish over the whole file system/,
        /targets\.f: its root overlaps the root of target "e"/,
      ],
    },
    {
      what: 'segments naming unknown targets, without match or mime, with ".." in the path',
      config: `source: ./public\nssh: {config: ./ssh_config}\ntargets:\n  a: "sftp://slave-a${a.root}"\nsegments:\n  - {name: img, mime: ["image/*"], targets: [a, imgs]}\n  - {name: all, targets: [a], path: "../up"}\n`,
      problems: [/segments\[0\]\.targets\[1\]: no target named "imgs"/, /segments\[1\]: give "match" globs, "mime" types, or both/, /segments\[1\]\.path: must not contain "\.\."/],
    },
  ]
  for (const c of cases) {
    await fs.writeFile(p.configFile, c.config)
    const r = await p.cli(['publish'])
    t.equal(r.code, 2, `${c.what}: exit 2`)
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  - '))
    for (const problem of c.problems) t.equal(lines.filter((l) => problem.test(l)).length, 1, `${c.what}: ${problem.source} said once`)
    t.equal(lines.length, c.problems.length, `${c.what}: one line per problem, no more:\n${lines.join('\n')}`)
  }
  t.same(await fs.readdir(a.root), [], 'nothing pushed to a')
  t.same(await fs.readdir(b.root), [], 'nothing pushed to b')
  await guard.check(t)
})

t.test('an IdentityFile that is missing, a directory or not a key: named, with why, for that target only', async (t) => {
  const p = await faultProject(t, {slaves: ['a', 'b', 'c', 'ok']})
  const guard = await guardOutside(p)
  const notAKey = join(p.dir, 'not-a-key')
  await fs.writeFile(notAKey, 'this is not a private key\n')
  const bad: Record<string, string> = {a: join(p.dir, 'no-such-key'), b: p.dir, c: notAKey}
  let sshConfig = await fs.readFile(p.sshConfig, 'utf8')
  for (const [name, file] of Object.entries(bad)) sshConfig = sshConfig.replace(p.slaves[name].sshd.identityFile, file)
  await fs.writeFile(p.sshConfig, sshConfig)

  const r = await p.json(['publish'])
  t.equal(r.code, 3, 'exit 3: the others publish')
  for (const [name, why] of [['a', /cannot read .*no-such-key: ENOENT/], ['b', /cannot read .*: EISDIR/], ['c', /skipped .*not-a-key: /]] as const) {
    const error = p.outcome(r.out, name).error
    t.equal(error?.code, 'AUTH_FAILED', `${name}: ${error?.message}`)
    t.match(error?.message, why, `${name}: says which file and why`)
    t.match(error?.suggestion, /IdentityFile/, `${name}: says where keys come from`)
    t.same(await fs.readdir(p.slaves[name].root), [], `${name}: nothing pushed`)
  }
  t.same(await readTree(p.slaves.ok.root), smallSite, 'the target with a good key got everything')
  await guard.check(t)
})
