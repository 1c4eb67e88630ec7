"""Block reductions: how the threads of one block combine their partial results, without atomics.

Thread t of a block of ROW_THREADS threads keeps its own partial sum (or max) in a register while
it visits elements t, t + ROW_THREADS, ...; then the block combines the ROW_THREADS partials in
shared memory as a tree: thread t folds in slot t + ROW_THREADS/2, then t + ROW_THREADS/4, ...,
with a barrier (`cuda.syncthreads()`) between levels, until slot 0 holds the result. The tree's
shape depends only on ROW_THREADS, never on timing, so the result is the same every run.

Every thread of the block must call these (each has barriers), with the same `shared` array of
ROW_THREADS float64s. They end with a barrier after every thread has read the result, so the same
`shared` array can serve the next reduction at once.
"""

from numba import cuda

from .launch import ROW_THREADS

SUM, MAX = 0, 1


@cuda.jit(device=True, inline=True)
def block_reduce(shared, value, op):
    """The sum (op=SUM) or max (op=MAX) of `value` over the block's threads, by the fixed tree."""
    t = cuda.threadIdx.x
    shared[t] = value
    cuda.syncthreads()
    width = ROW_THREADS // 2
    while width > 0:
        if t < width:
            if op == SUM:
                shared[t] += shared[t + width]
            else:
                shared[t] = max(shared[t], shared[t + width])
        cuda.syncthreads()
        width //= 2
    result = shared[0]
    cuda.syncthreads()
    return result


@cuda.jit(device=True, inline=True)
def block_sum(shared, value):
    return block_reduce(shared, value, SUM)


@cuda.jit(device=True, inline=True)
def block_max(shared, value):
    return block_reduce(shared, value, MAX)
