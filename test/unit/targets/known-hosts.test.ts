// known_hosts parsing, lookup and the host key decision. Fixtures (keys, fingerprints, hashed
// lines) were made with OpenSSH's ssh-keygen, so they check us against OpenSSH, not ourselves.

import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import t from 'tap'

import {MirrorError} from '../../../src/errors.js'
import {
  fingerprint,
  KnownHosts,
  knownHostsFiles,
  knownHostsName,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
} from '../../../src/targets/ssh/known-hosts.js'

const made: string[] = []
t.teardown(() => made.forEach((dir) => rmSync(dir, {recursive: true, force: true})))
/** A temp directory removed when the file's tests end. */
function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

const A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4Q5dTYEE6TzB/Gff0YTh7iYkTvlkBwYgHN2l3L218M'
const A_FP = 'SHA256:JMBGlj3oreE1BQichHzRWfgiWXeiPsfZmGKum42mF8E'
const B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIANoy1Z/d1DfgCggyoH1h0zDUWV+PeeD30+6x5yyxGYH'
const B_FP = 'SHA256:OKGxCDo9uysDQPYJLImRxvMV/9Ge2i82y5EAje6nBKs'
const C = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFK77ZSRHbhp6E00m75sXOzQ/+MsyThcSY4PHdEwBqsEZLe2tmtXG8J6/r1RP4I6JvHXrQ7qZO+duGS7E64epl4='
const C_FP = 'SHA256:i2oo4aguwhvOf6ihfrIrKvZUr+mlXzwsH1pv6tlK1mE'
/** `ssh-keygen -H` of "example.com A" and "[example.com]:2222 B". */
const HASHED = [
  '|1|3gXNopzhySA8nQPQCarrCuO9P3Y=|l/1Idos4SY1aIV8CvyMk3MY9jO0= ' + A,
  '|1|L8fRXmRXAYpHrPc0tDuCHCG+ceE=|FWGtlqcqrAneb5uLqer6nd4YxKw= ' + B,
].join('\n')

const blob = (line: string) => Buffer.from(line.split(' ')[1], 'base64')

function hosts(text: string, userFile = join(temp('mirror-kh-'), 'known_hosts')): KnownHosts {
  return KnownHosts.fromEntries(parseKnownHosts(text, 'fixture'), userFile)
}

function thrown(fn: () => unknown): MirrorError {
  try {
    fn()
  } catch (error) {
    if (error instanceof MirrorError) return error
    throw error
  }
  throw new Error('expected an error')
}

t.test('fingerprints are printed as OpenSSH prints them', async (t) => {
  t.equal(fingerprint(blob(A)), A_FP)
  t.equal(fingerprint(blob(C)), C_FP)
})

t.test('the known_hosts name of a host: bare on port 22, [host]:port otherwise, lower case', async (t) => {
  t.equal(knownHostsName('Example.COM', 22), 'example.com')
  t.equal(knownHostsName('10.0.0.5', 2222), '[10.0.0.5]:2222')
})

t.test('plain names, comma lists and [host]:port entries', async (t) => {
  const kh = hosts(`web1.example.com,10.0.0.1 ${A}\n[web2.example.com]:2222 ${B}\nweb2.example.com ${C}\n`)
  t.same(kh.lookup('web1.example.com', 22).map((e) => e.keyType), ['ssh-ed25519'])
  t.same(kh.lookup('10.0.0.1', 22).length, 1, 'second name of a comma list')
  t.same(kh.lookup('WEB1.example.com', 22).length, 1, 'case-insensitive')
  t.same(kh.lookup('web2.example.com', 2222).map((e) => e.keyType), ['ssh-ed25519'], 'port-specific entry')
  t.same(kh.lookup('web2.example.com', 22).map((e) => e.keyType), ['ecdsa-sha2-nistp256'], 'port 22 entry is separate')
  t.same(kh.lookup('web1.example.com', 2222), [], 'a bare name does not cover other ports')
  t.same(kh.lookup('web3.example.com', 22), [])
})

t.test('a HostKeyAlias is looked up and recorded as it is, whatever the port', async (t) => {
  const kh = hosts(`cache-cluster ${A}\n[10.0.0.5]:2222 ${B}\n`)
  t.equal(kh.verify(blob(A), {target: 't', host: '127.0.0.1', port: 40022, alias: 'cache-cluster', policy: 'strict'}), 'known')
  t.equal(kh.verify(blob(B), {target: 't', host: '127.0.0.1', port: 40022, alias: '[10.0.0.5]:2222', policy: 'strict'}), 'known', 'an alias written as [host]:port')
  t.same(kh.keyTypes('127.0.0.1', 40022, 'Cache-Cluster'), ['ssh-ed25519'], 'case-insensitive')
  t.same(kh.lookup('cache-cluster', 40022), [], 'without the alias, the port counts')
  const error = (() => {
    try {
      kh.verify(blob(C), {target: 't', host: '127.0.0.1', port: 40022, alias: 'img-host', policy: 'strict'})
    } catch (e) {
      return e as MirrorError
    }
  })()
  t.equal(error?.code, 'HOST_KEY_UNKNOWN')
  t.match(error?.message, /host img-host is not/)
  t.match(error?.suggestion, "ssh-keyscan -p 40022 127.0.0.1 | sed 's|^[^ ]*|img-host|'")
})

t.test('hashed entries made by ssh-keygen -H are found', async (t) => {
  const kh = hosts(HASHED)
  t.equal(kh.verify(blob(A), {target: 't', host: 'example.com', port: 22, policy: 'strict'}), 'known')
  t.equal(kh.verify(blob(B), {target: 't', host: 'example.com', port: 2222, policy: 'strict'}), 'known')
  t.same(kh.lookup('example.org', 22), [])
})

t.test('wildcards and negation', async (t) => {
  const kh = hosts(`*.example.com,!bad.example.com ${A}\nweb?.test ${B}\n[*.example.net]:* ${C}\n`)
  t.equal(kh.lookup('cache1.example.com', 22).length, 1, '*')
  t.equal(kh.lookup('bad.example.com', 22).length, 0, '! excludes')
  t.equal(kh.lookup('web7.test', 22).length, 1, '?')
  t.equal(kh.lookup('web10.test', 22).length, 0, '? is exactly one character')
  t.equal(kh.lookup('img.example.net', 2200).length, 1, 'wildcard inside [host]:port')
})

t.test('comments, blank, malformed and @cert-authority lines are skipped', async (t) => {
  const entries = parseKnownHosts(
    [
      '# a comment',
      '',
      `@cert-authority *.example.com ${A}`,
      `broken.example.com ssh-rsa ${A.split(' ')[1]}`,
      'only-two-fields ssh-ed25519',
      `good.example.com ${B} a comment with spaces`,
    ].join('\n'),
  )
  t.same(
    entries.map((e) => [e.patterns, e.line]),
    [[['good.example.com'], 6]],
  )
})

t.test('a changed key is refused with both fingerprints and how to fix it', async (t) => {
  const kh = hosts(`[slave.example.com]:2222 ${A}\n`)
  for (const policy of ['strict', 'accept-new'] as const) {
    const error = thrown(() => kh.verify(blob(B), {target: 'cache1', host: 'slave.example.com', port: 2222, policy}))
    t.equal(error.code, 'HOST_KEY_CHANGED', policy)
    t.equal(error.target, 'cache1')
    t.match(error.message, B_FP, 'presented fingerprint')
    t.match(error.message, A_FP, 'known fingerprint')
    t.match(error.message, 'fixture:1', 'where the old key is')
    t.match(error.suggestion, "ssh-keygen -R '[slave.example.com]:2222' -f fixture")
    t.equal(error.retryable, false)
  }
})

t.test('a key of another type than the known one counts as changed, not unknown', async (t) => {
  const kh = hosts(`slave.example.com ${C}\n`)
  t.equal(thrown(() => kh.verify(blob(A), {target: 't', host: 'slave.example.com', port: 22, policy: 'accept-new'})).code, 'HOST_KEY_CHANGED')
})

t.test('an unknown host is refused with the fingerprint and how to trust it', async (t) => {
  const kh = hosts(`other.example.com ${A}\n`)
  const error = thrown(() => kh.verify(blob(A), {target: 'img', host: 'new.example.com', port: 22, policy: 'strict'}))
  t.equal(error.code, 'HOST_KEY_UNKNOWN')
  t.equal(error.target, 'img')
  t.match(error.message, A_FP)
  t.match(error.suggestion, `ssh-keyscan new.example.com >> ${kh.userFile}`)
  t.match(error.suggestion, 'hostKeys: accept-new')
  const onPort = thrown(() => kh.verify(blob(A), {target: 'img', host: 'new.example.com', port: 2222, policy: 'strict'}))
  t.match(onPort.suggestion, 'ssh-keyscan -p 2222 new.example.com')
})

t.test('accept-new appends a first-seen key to the user file, creating it', async (t) => {
  const userFile = join(temp('mirror-kh-'), 'dot-ssh', 'known_hosts')
  const kh = hosts('', userFile)
  t.equal(kh.verify(blob(A), {target: 't', host: '10.1.2.3', port: 2222, policy: 'accept-new'}), 'added')
  t.equal(readFileSync(userFile, 'utf8'), `[10.1.2.3]:2222 ${A}\n`)
  t.equal(kh.verify(blob(A), {target: 't', host: '10.1.2.3', port: 2222, policy: 'strict'}), 'known', 'known from then on')
  t.equal(thrown(() => kh.verify(blob(B), {target: 't', host: '10.1.2.3', port: 2222, policy: 'accept-new'})).code, 'HOST_KEY_CHANGED')
  t.equal(readFileSync(userFile, 'utf8'), `[10.1.2.3]:2222 ${A}\n`, 'a changed key is never recorded')
})

t.test('accept-new keeps an existing file without a final newline intact', async (t) => {
  const userFile = join(temp('mirror-kh-'), 'known_hosts')
  writeFileSync(userFile, `old.example.com ${C}`)
  const kh = KnownHosts.load([userFile], userFile)
  kh.verify(blob(A), {target: 't', host: 'new.example.com', port: 22, policy: 'accept-new'})
  t.equal(readFileSync(userFile, 'utf8'), `old.example.com ${C}\nnew.example.com ${A}\n`)
})

t.test('a key marked @revoked is refused even when also listed as known', async (t) => {
  const kh = hosts(`@revoked * ${A}\nslave.example.com ${A}\n`)
  const error = thrown(() => kh.verify(blob(A), {target: 't', host: 'slave.example.com', port: 22, policy: 'accept-new'}))
  t.equal(error.code, 'HOST_KEY_CHANGED')
  t.match(error.message, '@revoked')
})

t.test('load reads several files and skips missing ones', async (t) => {
  const dir = temp('mirror-kh-')
  writeFileSync(join(dir, 'one'), `a.example.com ${A}\n`)
  writeFileSync(join(dir, 'two'), `b.example.com ${B}\n`)
  const kh = KnownHosts.load([join(dir, 'one'), join(dir, 'missing'), join(dir, 'two')], join(dir, 'one'))
  t.equal(kh.lookup('a.example.com', 22).length, 1)
  t.equal(kh.lookup('b.example.com', 22)[0].file, join(dir, 'two'))
})

t.test('files read: UserKnownHostsFile first, ~/.ssh/known_hosts, ssh.knownHosts, system files', async (t) => {
  const {files, userFile} = knownHostsFiles(['/cfg/kh1', '/cfg/kh2'], '/project/known_hosts', '/home/u')
  t.equal(userFile, '/cfg/kh1', 'new keys go to the first UserKnownHostsFile')
  t.same(files.slice(0, 4), ['/cfg/kh1', '/cfg/kh2', '/home/u/.ssh/known_hosts', '/project/known_hosts'])
  t.ok(files.includes('/etc/ssh/ssh_known_hosts'))
})

t.test('known key types become the preferred host key algorithms', async (t) => {
  const kh = hosts(`slave ${C}\nslave,other ${A}\nother ${B}\n`)
  t.same(kh.keyTypes('slave', 22), ['ecdsa-sha2-nistp256', 'ssh-ed25519'])
  t.same(preferredHostKeyAlgorithms(['ssh-rsa', 'ssh-ed25519']), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519'])
  t.same(preferredHostKeyAlgorithms([]), [])
})
