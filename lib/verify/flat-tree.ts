/**
 * Flat-tree arithmetic (hypercore's in-order node indices: leaves are even, a parent sits between
 * its two subtrees); plain numbers, safe beyond 2^31. Owns nothing else and imports nothing.
 */

/** How far above the leaves a node is (0 for a leaf). */
export function depth(index: number): number {
  let d = 0
  while (index % 2 === 1) {
    index = (index - 1) / 2
    d++
  }
  return d
}

/** The leftmost leaf (node index) below `index`. */
export function leftSpan(index: number): number {
  return index - (2 ** depth(index) - 1)
}

/** The rightmost leaf (node index) below `index`. */
export function rightSpan(index: number): number {
  return index + (2 ** depth(index) - 1)
}

/** The two children of a parent node (not of a leaf). */
export function children(index: number): [number, number] {
  const half = 2 ** (depth(index) - 1)
  return [index - half, index + half]
}

/** The root indices of a tree of `length` blocks. */
export function fullRoots(length: number): number[] {
  const out: number[] = []
  let rest = length
  let offset = 0
  while (rest > 0) {
    let factor = 1
    while (factor * 2 <= rest) factor *= 2
    out.push(offset + factor - 1)
    offset += 2 * factor
    rest -= factor
  }
  return out
}
