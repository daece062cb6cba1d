// A binary min-heap of tasks by priority, first in first out among equals. The crawler uses it
// to pick which URL a free connection fetches next; it holds no I/O of its own.

interface Entry<T> {
  priority: number
  seq: number
  value: T
}

export class PriorityQueue<T> {
  private readonly heap: Array<Entry<T>> = []
  private seq = 0

  get size(): number {
    return this.heap.length
  }

  push(priority: number, value: T): void {
    this.heap.push({priority, seq: this.seq++, value})
    let i = this.heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(i, parent)) break
      this.swap(i, parent)
      i = parent
    }
  }

  pop(): T | undefined {
    const top = this.heap[0]
    if (!top) return undefined
    const last = this.heap.pop()!
    if (this.heap.length > 0) {
      this.heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (left < this.heap.length && this.less(left, smallest)) smallest = left
        if (right < this.heap.length && this.less(right, smallest)) smallest = right
        if (smallest === i) break
        this.swap(i, smallest)
        i = smallest
      }
    }
    return top.value
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]
    const y = this.heap[b]
    return x.priority < y.priority || (x.priority === y.priority && x.seq < y.seq)
  }

  private swap(a: number, b: number): void {
    const t = this.heap[a]
    this.heap[a] = this.heap[b]
    this.heap[b] = t
  }
}
