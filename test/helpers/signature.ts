import type {Signature} from '../../src/sync/delta.js'
import {computeSignature} from '../../src/sync/delta.js'

/** Every block of `signature` holds the checksums of the bytes of `data` where it sits. */
export function describes(signature: Signature, data: Buffer): boolean {
  const at = (i: number) => signature.offsets?.[i] ?? i * signature.blockSize
  return signature.weak.every((weak, i) => {
    const block = computeSignature(data.subarray(at(i), Math.min(at(i) + signature.blockSize, data.length)), signature.blockSize)
    return block.weak[0] === weak && block.strong[0] === signature.strong[i]
  })
}
