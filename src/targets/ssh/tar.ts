// The few bytes of the tar format the bulk upload needs: ustar headers for regular files with
// short ASCII names chosen by mirror (never a published path: those stay out of the archive and
// are given to each file by an SFTP rename), and the end-of-archive marker.

const BLOCK = 512

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as every tar reads.
  return `${value.toString(8).padStart(width - 1, '0')}\0`
}

/** The 512-byte header of a regular file. `name` is a plain file name: no slash, no "..". */
export function tarHeader(name: string, size: number, mode: number, mtimeSeconds: number): Buffer {
  const header = Buffer.allocUnsafe(BLOCK)
  writeHeader(header, 0, name, size, mode, mtimeSeconds)
  return header
}

/**
 * Writes a whole member (header, content, zero padding) into `into` at `at`, which must have
 * room for tarMemberBytes(data.length); returns the bytes written. In place: a bulk stream
 * writes tens of thousands of members, and a header buffer each was garbage for the collector.
 */
export function writeTarMember(into: Buffer, at: number, name: string, data: Buffer, mode: number, mtimeSeconds: number): number {
  writeHeader(into, at, name, data.length, mode, mtimeSeconds)
  const end = at + BLOCK + data.copy(into, at + BLOCK)
  const padded = at + tarMemberBytes(data.length)
  into.fill(0, end, padded)
  return padded - at
}

function writeHeader(into: Buffer, at: number, name: string, size: number, mode: number, mtimeSeconds: number): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) throw new Error(`tar name ${JSON.stringify(name)} is not a plain short name`)
  if (size > 0o77777777777) throw new Error('file too large for a ustar header')
  into.fill(0, at, at + BLOCK)
  into.write(name, at, 'latin1')
  into.write(octal(mode & 0o7777, 8), at + 100, 'latin1')
  into.write(octal(0, 8), at + 108, 'latin1')
  into.write(octal(0, 8), at + 116, 'latin1')
  into.write(octal(size, 12), at + 124, 'latin1')
  into.write(octal(Math.max(0, Math.floor(mtimeSeconds)), 12), at + 136, 'latin1')
  into.write('        ', at + 148, 'latin1')
  into[at + 156] = 0x30 // '0': a regular file
  into.write('ustar\0' + '00', at + 257, 'latin1')
  let sum = 0
  for (let i = at; i < at + BLOCK; i++) sum += into[i]
  into.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1')
}

/** The bytes a file of `size` takes in the archive: its header and its content padded to blocks. */
export function tarMemberBytes(size: number): number {
  return BLOCK + Math.ceil(size / BLOCK) * BLOCK
}

/** Two zero blocks: the end of the archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK)
}
