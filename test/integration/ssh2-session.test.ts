// What ssh2-loader.ts changes in ssh2's sessions, against a real OpenSSH sshd: a key file logs
// in with its signature at once, an SFTP session takes its first requests along with ssh2's
// request for the server's limits, and the host keys sshd announces after the login are not
// asked to be proved.

import {spawnSync} from 'node:child_process'
import {appendFileSync, mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import t, {type Test} from 'tap'
import type {Client, SFTPWrapper, Stats} from 'ssh2'

import ssh2, {ignoreHostKeyAnnouncements} from '../../src/targets/ssh/ssh2-loader.js'
import {generateKey, sshdFor, type Sshd} from '../helpers/sshd.js'

delete process.env.SSH_AUTH_SOCK

/** A logged-in ssh2 client, with what its debug output said. */
async function login(t: Test, sshd: Sshd, adjust?: (client: Client) => void, keys: string[] = [sshd.identityFile]): Promise<{client: Client; said: string[]}> {
  const said: string[] = []
  const client = new ssh2.Client()
  t.teardown(() => client.end())
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject)
    const authHandler = keys.map((file) => ({type: 'publickey' as const, username: sshd.user, key: readFileSync(file)}))
    client.connect({host: '127.0.0.1', port: sshd.port, username: sshd.user, authHandler, debug: (line) => said.push(line)})
    adjust?.(client)
  })
  return {client, said}
}

t.test('a key file logs in with its signature at once, not after asking whether the server takes it', async (t) => {
  const sshd = await sshdFor(t)
  const {client, said} = await login(t, sshd)
  t.ok((await statRoot(await openSftp(client))).isDirectory(), 'logged in, the session answers')
  t.equal(said.filter((line) => line.includes('USERAUTH_REQUEST (publickey)')).length, 1, 'one signed request')
  t.notOk(said.some((line) => line.includes('publickey -- check')), 'no question first')
})

t.test('a key the server does not take is refused as before, and the next one (RSA, signed with SHA-256) logs in', async (t) => {
  const sshd = await sshdFor(t)
  const dir = mkdtempSync(join(tmpdir(), 'mirror-keys-'))
  t.teardown(() => spawnSync('rm', ['-rf', dir]))
  const stranger = generateKey(dir, 'stranger').privateKey
  const rsa = join(dir, 'rsa')
  const made = spawnSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsa], {encoding: 'utf8'})
  t.equal(made.status, 0, 'ssh-keygen made an RSA key')
  appendFileSync(join(dirname(sshd.identityFile), 'authorized_keys'), readFileSync(`${rsa}.pub`, 'utf8'))
  const {client, said} = await login(t, sshd, undefined, [stranger, rsa])
  t.ok((await statRoot(await openSftp(client))).isDirectory(), 'logged in with the second key')
  t.ok(said.some((line) => line.includes('USERAUTH_FAILURE')), 'the first key was refused')
  t.notOk(said.some((line) => line.includes('publickey -- check')), 'neither was asked about first')
})

const openSftp = (client: Client) => new Promise<SFTPWrapper>((resolve, reject) => client.sftp((error, session) => (error ? reject(error) : resolve(session))))
const statRoot = (sftp: SFTPWrapper) => new Promise<Stats>((resolve, reject) => sftp.stat('/', (error, s) => (error ? reject(error) : resolve(s))))

t.test('an SFTP session takes its first requests along with the request for the server\'s limits, not a round trip after it', async (t) => {
  const {client} = await login(t, await sshdFor(t))
  const sftp = await openSftp(client)
  const limits = (sftp as unknown as {_requests: Record<string, {extended?: string}>})._requests
  t.ok(
    Object.values(limits).some((request) => request.extended === 'limits@openssh.com'),
    'the session is handed over while the limits request is still unanswered',
  )
  // Asked at once, answered in order behind the limits.
  t.ok((await statRoot(sftp)).isDirectory(), 'a request made at once is answered')
  t.equal(
    Object.values(limits).some((request) => request.extended === 'limits@openssh.com'),
    false,
    'and by then the limits are in',
  )
})

t.test('the host keys sshd announces after the login are not asked to be proved; the session works as before', async (t) => {
  const sshd = await sshdFor(t)
  const {client, said} = await login(t, sshd, ignoreHostKeyAnnouncements)
  // The announcement comes right after the login; a session's round trips leave it time to.
  t.ok((await statRoot(await openSftp(client))).isDirectory(), 'the session answers')
  t.ok(said.some((line) => line.includes('GLOBAL_REQUEST (hostkeys-00@openssh.com)')), 'sshd announced its host keys')
  t.notOk(said.some((line) => line.includes('hostkeys-prove-00@openssh.com')), 'no proof was asked for')
  // Without it, ssh2 asks: what the test would see if the announcement were still answered.
  const plain = await login(t, sshd)
  await statRoot(await openSftp(plain.client))
  t.ok(plain.said.some((line) => line.includes('hostkeys-prove-00@openssh.com')), 'a client left as it is asks for the proofs')
})
