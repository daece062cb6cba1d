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
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) throw new Error(`tar name ${JSON.stringify(name)} is not a plain short name`)
  if (size > 0o77777777777) throw new Error('file too large for a ustar header')
  const header = Buffer.alloc(BLOCK)
  header.write(name, 0, 'ascii')
  header.write(octal(mode & 0o7777, 8), 100, 'ascii')
  header.write(octal(0, 8), 108, 'ascii')
  header.write(octal(0, 8), 116, 'ascii')
  header.write(octal(size, 12), 124, 'ascii')
  header.write(octal(Math.max(0, Math.floor(mtimeSeconds)), 12), 136, 'ascii')
  header.write('        ', 148, 'ascii')
  header.write('0', 156, 'ascii')
  header.write('ustar\0', 257, 'ascii')
  header.write('00', 263, 'ascii')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
  return header
}

/** The bytes a file of `size` takes in the archive: its header and its content padded to blocks. */
export function tarMemberBytes(size: number): number {
  return BLOCK + Math.ceil(size / BLOCK) * BLOCK
}

/** Zero bytes that bring a file's content to a whole number of blocks. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest)
}

/** Two zero blocks: the end of the archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK)
}
