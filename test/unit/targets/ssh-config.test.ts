// Resolving an sftp:// host through an ssh_config the way `ssh` would: aliases, defaults,
// URL overrides, first-value-wins, Include, and the options mirror reads.

import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import t from 'tap'

import {MirrorError} from '../../../src/errors.js'
import {resolveSshHost} from '../../../src/targets/ssh/ssh-config.js'

const made: string[] = []
t.teardown(() => made.forEach((dir) => rmSync(dir, {recursive: true, force: true})))
/** A temp directory removed when the file's tests end. */
function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** A fake home with ~/.ssh/config holding `config` and the named key files present. */
function home(config: string, keys: string[] = []): string {
  const dir = temp('mirror-home-')
  mkdirSync(join(dir, '.ssh'))
  writeFileSync(join(dir, '.ssh', 'config'), config)
  for (const key of keys) writeFileSync(join(dir, '.ssh', key), 'not a real key')
  return dir
}

const env = {}

t.test('a Host alias gives HostName, Port, User, IdentityFile, known_hosts and options', async (t) => {
  const h = home(`
Host cache1
  HostName 192.0.2.10
  Port 2222
  User deploy
  IdentityFile ~/.ssh/deploy_key
  IdentityFile /etc/keys/other
  UserKnownHostsFile ~/.ssh/kh_a ~/.ssh/kh_b
  IdentitiesOnly yes
  ConnectTimeout 7
  HostKeyAlias cache-cluster
`)
  const p = resolveSshHost({host: 'cache1', home: h, localUser: 'me', env})
  t.equal(p.hostName, '192.0.2.10')
  t.equal(p.port, 2222)
  t.equal(p.user, 'deploy')
  t.same(p.identityFiles, [join(h, '.ssh/deploy_key'), '/etc/keys/other'], '~ expanded, order kept')
  t.equal(p.identityFilesExplicit, true)
  t.same(p.userKnownHostsFiles, [join(h, '.ssh/kh_a'), join(h, '.ssh/kh_b')])
  t.equal(p.identitiesOnly, true)
  t.equal(p.connectTimeoutMs, 7000)
  t.equal(p.hostKeyAlias, 'cache-cluster')
})

t.test('the URL user and port win over the ssh config, as with ssh user@host -p', async (t) => {
  const h = home('Host cache1\n  HostName 192.0.2.10\n  Port 2222\n  User deploy\n')
  const p = resolveSshHost({host: 'cache1', user: 'www', port: 2200, home: h, localUser: 'me', env})
  t.equal(p.user, 'www')
  t.equal(p.port, 2200)
  t.equal(p.hostName, '192.0.2.10', 'the alias still resolves')
})

t.test('defaults: local user, port 22, the usual keys that exist, ~/.ssh/known_hosts', async (t) => {
  const h = home('', ['id_rsa', 'id_ed25519'])
  const p = resolveSshHost({host: 'web.example.com', home: h, localUser: 'alice', env})
  t.equal(p.hostName, 'web.example.com')
  t.equal(p.user, 'alice')
  t.equal(p.port, 22)
  t.same(p.identityFiles, [join(h, '.ssh/id_ed25519'), join(h, '.ssh/id_rsa')], 'ed25519 first, missing ecdsa left out')
  t.equal(p.identityFilesExplicit, false)
  t.equal(p.identitiesOnly, false)
  t.equal(p.userKnownHostsFiles[0], join(h, '.ssh/known_hosts'))
  t.equal(p.connectTimeoutMs, undefined)
})

t.test('no ~/.ssh/config at all is fine', async (t) => {
  const h = temp('mirror-home-')
  const p = resolveSshHost({host: 'web', home: h, localUser: 'alice', env})
  t.equal(p.hostName, 'web')
  t.same(p.identityFiles, [])
})

t.test('the first value found wins; general settings go last, as in ssh_config(5)', async (t) => {
  const h = home(`
Host img*
  User images
Host *
  User everyone
  Port 2022
`)
  t.equal(resolveSshHost({host: 'img1', home: h, localUser: 'me', env}).user, 'images')
  t.equal(resolveSshHost({host: 'img1', home: h, localUser: 'me', env}).port, 2022, 'still picks up what only Host * sets')
  t.equal(resolveSshHost({host: 'web1', home: h, localUser: 'me', env}).user, 'everyone')
})

t.test('directive names are case-insensitive and %h expands in HostName', async (t) => {
  const h = home('Host cache*\n  HOSTNAME %h.mirrors.example.com\n  port 2201\n')
  const p = resolveSshHost({host: 'cache3', home: h, localUser: 'me', env})
  t.equal(p.hostName, 'cache3.mirrors.example.com')
  t.equal(p.port, 2201)
})

t.test('Include lines are followed, with globs, relative to ~/.ssh', async (t) => {
  const h = home('Include config.d/*\n\nHost *\n  User fallback\n')
  mkdirSync(join(h, '.ssh', 'config.d'))
  writeFileSync(join(h, '.ssh', 'config.d', 'slaves'), 'Host cache1\n  HostName 198.51.100.7\n  User pub\n')
  const p = resolveSshHost({host: 'cache1', home: h, localUser: 'me', env})
  t.equal(p.hostName, '198.51.100.7')
  t.equal(p.user, 'pub', 'the included value comes first')
})

t.test('ssh.config replaces ~/.ssh/config (like ssh -F) and must exist', async (t) => {
  const h = home('Host cache1\n  HostName from-home\n')
  const other = join(temp('mirror-cfg-'), 'ssh_config')
  writeFileSync(other, 'Host cache1\n  HostName from-flag\n')
  t.equal(resolveSshHost({host: 'cache1', configFile: other, home: h, localUser: 'me', env}).hostName, 'from-flag')
  try {
    resolveSshHost({host: 'cache1', configFile: join(h, 'nope'), home: h, localUser: 'me', env})
    t.fail('a missing ssh.config should be refused')
  } catch (error) {
    t.equal((error as MirrorError).code, 'CONFIG_INVALID')
    t.match((error as MirrorError).message, join(h, 'nope'))
  }
})

t.test('a bad Port in the ssh config is a config error naming the host', async (t) => {
  const h = home('Host cache1\n  Port ssh\n')
  try {
    resolveSshHost({host: 'cache1', home: h, localUser: 'me', env})
    t.fail('expected CONFIG_INVALID')
  } catch (error) {
    t.equal((error as MirrorError).code, 'CONFIG_INVALID')
    t.match((error as MirrorError).message, 'cache1')
  }
})

t.test('the agent: SSH_AUTH_SOCK, overridden by IdentityAgent, disabled by "none"', async (t) => {
  const h = home('Host a\n  IdentityAgent none\nHost b\n  IdentityAgent ~/agent.sock\n')
  const withSock = {SSH_AUTH_SOCK: '/run/agent.sock'}
  t.equal(resolveSshHost({host: 'c', home: h, localUser: 'me', env: withSock}).agentSocket, '/run/agent.sock')
  t.equal(resolveSshHost({host: 'a', home: h, localUser: 'me', env: withSock}).agentSocket, undefined)
  t.equal(resolveSshHost({host: 'b', home: h, localUser: 'me', env: withSock}).agentSocket, join(h, 'agent.sock'))
  t.equal(resolveSshHost({host: 'c', home: h, localUser: 'me', env: {}}).agentSocket, undefined)
})

t.test('ProxyJump and ProxyCommand are reported so the connection can refuse them', async (t) => {
  const h = home('Host inner\n  ProxyJump bastion\nHost piped\n  ProxyCommand nc %h %p\n')
  t.equal(resolveSshHost({host: 'inner', home: h, localUser: 'me', env}).proxy, 'ProxyJump bastion')
  t.match(resolveSshHost({host: 'piped', home: h, localUser: 'me', env}).proxy, /^ProxyCommand nc/)
  t.equal(resolveSshHost({host: 'other', home: h, localUser: 'me', env}).proxy, undefined)
})

t.test('Match exec is never run', async (t) => {
  const marker = join(temp('mirror-exec-'), 'ran')
  const h = home(`Match exec "touch ${marker}"\n  User matched\n`)
  t.equal(resolveSshHost({host: 'x', home: h, localUser: 'me', env}).user, 'me')
  t.notOk(existsSync(marker), 'the command did not run')
})

t.test('Compression yes in ssh_config turns compression on', async (t) => {
  const {mkdtempSync, writeFileSync} = await import('node:fs')
  const {join} = await import('node:path')
  const {tmpdir} = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'mirror-sshcfg-'))
  writeFileSync(join(dir, 'config'), 'Host slow\n  HostName 127.0.0.1\n  Compression yes\nHost fast\n  HostName 127.0.0.1\n')
  const {resolveSshHost} = await import('../../../src/targets/ssh/ssh-config.js')
  t.equal(resolveSshHost({host: 'slow', configFile: join(dir, 'config'), home: dir}).compression, true)
  t.equal(resolveSshHost({host: 'fast', configFile: join(dir, 'config'), home: dir}).compression, false)
})
