// Builds small source trees and slave roots in temporary directories for tests.

import {mkdtempSync, rmSync} from 'node:fs'
import * as fs from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

const made: string[] = []
// Removed when the test file's process ends, passed or failed: a suite run used to leave
// hundreds of them behind.
process.once('exit', () => {
  for (const dir of made) rmSync(dir, {recursive: true, force: true})
})

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'mirror-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** Writes files (path -> content) under root, creating directories. */
export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await fs.mkdir(dirname(join(root, path)), {recursive: true})
    await fs.writeFile(join(root, path), content)
  }
}

/** Every regular file under root (relative path -> content), symlinks and dirs excluded. */
export async function readTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await fs.readdir(dir, {withFileTypes: true})) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name
      if (entry.isDirectory()) await walk(join(dir, entry.name), rel)
      else if (entry.isFile()) out[rel] = await fs.readFile(join(dir, entry.name), 'utf8')
    }
  }
  await walk(root, '')
  return out
}

export const sampleSite: Record<string, string> = {
  'index.html': '<html><link rel="stylesheet" href="css/site.css"><img src="img/logo.png"><a href="about.html">About</a></html>',
  'about.html': '<html><h1>About us</h1></html>',
  'css/site.css': 'body { font-family: sans-serif }',
  'img/logo.png': 'PNG-logo-bytes',
  'img/photo.jpg': 'JPEG-photo-bytes',
  'news/2024/first.html': '<html>first post</html>',
}
