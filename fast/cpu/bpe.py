"""Byte-level BPE in Numba: counting chunks, training, encoding and decoding over packed arrays.

Twins of `reference/bpe.py`'s hot loops (`train_merges`, `encode_chunk`, and the chunk counting and
decoding around them); the reference says what they compute, this file how it is made fast.

Layout. A batch of chunks is one array of bytes (or token ids) with `bounds`: chunk j is
`data[bounds[j]:bounds[j + 1]]`. Hash tables are open-addressed arrays with linear probing, kept
at most half full. A pair (left, right) is packed into one int64 key `left << 32 | right`, so ids
must lie in [0, 2**31), as the tokenizer requires of every id.

Numba habits that keep these loops fast (each measured on this code: a factor of 3 to 25):
- Hot loops live in helpers whose arrays are never reassigned. An array that may be replaced
  (grown) inside a loop is refcounted on every iteration (~100 ns each). So the callers grow the
  arrays between blocks of work, and the helpers get fixed arrays.
- Helpers called from hot loops only read arrays (hash probes), and probe with a bounded `for`
  and early returns rather than a `while`, so that LLVM inlines them. A helper that both
  branches and writes arrays keeps its refcount calls even when inlined (~100 ns a call), so
  such steps are written out in the loop.
- Counters start from ZERO, not from a literal 0: Numba first types a literal as Literal[int](0)
  and compiles every helper it reaches once more for that type (compile time, not run time).
"""

import numpy as np
from numba import njit

EMPTY = -1
ZERO = np.int64(0)
NO_RANK = np.int64(2**62)  # the rank of a pair that no merge makes
BLOCK = 65536  # chunks handled per helper call, between two capacity checks
SHIFT = np.uint64(32)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: multiply, keep the high bits
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


# ---------------------------------------------------------------------------------------------
# Hashing and growing
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _slot(h, mask):
    """A table slot for the 64-bit hash `h` (mask = table size - 1)."""
    return np.int64(((np.uint64(h) * GOLDEN) >> SHIFT) & np.uint64(mask))


@njit(cache=True)
def _pair_key(left, right):
    return (np.int64(left) << 32) | np.int64(right)


@njit(cache=True)
def _table_size(n):
    """The smallest power of two that holds n keys at most half full."""
    size = ZERO + 16
    while size < 2 * n + 2:
        size *= 2
    return size


@njit(cache=True)
def _grown(a, n):
    """A copy of `a` with room for n items (at least 16)."""
    out = np.empty(max(n, 16), a.dtype)
    for k in range(len(a)):  # a loop: slice assignment costs seconds of compile time
        out[k] = a[k]
    return out


@njit(cache=True)
def _bytes_hash(data, start, end):
    """FNV-1a over data[start:end]."""
    h = FNV_OFFSET
    for k in range(start, end):
        h = (h ^ np.uint64(data[k])) * FNV_PRIME
    return h


@njit(cache=True)
def _find_chunk(slot_first, slot_hash, data, bounds, h, start, length):
    """The slot of the chunk data[start:start + length] (hash h) in a chunk table whose slots
    name the first chunk seen with those bytes: that slot, or the EMPTY one where it goes."""
    mask = len(slot_first) - 1
    s = _slot(h, mask)
    for _ in range(len(slot_first)):
        f = slot_first[s]
        if f == EMPTY:
            return s
        if slot_hash[s] == h and bounds[f + 1] - bounds[f] == length:
            a = bounds[f]
            same = True
            for k in range(length):
                if data[a + k] != data[start + k]:
                    same = False
                    break
            if same:
                return s
        s = (s + 1) & mask
    return s


@njit(cache=True)
def _rehash_chunks(slot_first, slot_hash, slot_value, size):
    """The chunk table (first chunk, hash, value per slot) moved into `size` slots."""
    first = np.full(size, EMPTY, np.int64)
    hashes = np.empty(size, np.uint64)
    values = np.empty(size, np.int64)
    mask = size - 1
    for s in range(len(slot_first)):
        if slot_first[s] == EMPTY:
            continue
        t = _slot(slot_hash[s], mask)
        while first[t] != EMPTY:
            t = (t + 1) & mask
        first[t], hashes[t], values[t] = slot_first[s], slot_hash[s], slot_value[s]
    return first, hashes, values


# ---------------------------------------------------------------------------------------------
# Counting distinct chunks (training's first step)
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _count_block(data, bounds, c0, c1, slot_first, slot_hash, slot_unique, firsts, counts, n):
    """Count chunks c0..c1-1 into the table (room for all of them assumed); returns the new
    number of distinct chunks."""
    for c in range(c0, c1):
        start, end = bounds[c], bounds[c + 1]
        if end - start < 2:
            continue  # one byte holds no pair
        h = _bytes_hash(data, start, end)
        s = _find_chunk(slot_first, slot_hash, data, bounds, h, start, end - start)
        if slot_first[s] != EMPTY:
            counts[slot_unique[s]] += 1
        else:
            slot_first[s], slot_hash[s], slot_unique[s] = c, h, n
            firsts[n], counts[n] = c, 1
            n += 1
    return n


@njit(cache=True)
def count_chunks(data, bounds):
    """The distinct chunks of a split text with their counts, in order of first appearance.

    Returns (ids, starts, counts): distinct chunk u is ids[starts[u]:starts[u + 1]] (its bytes as
    int64) and occurs counts[u] times. One-byte chunks hold no pair and are left out.
    Chunks "ab", " ab", "ab", "c" -> ids of "ab" and " ab", counts [2, 1].
    Memory follows the distinct chunks: the table refers to their first occurrence in `data`.
    """
    n_chunks = len(bounds) - 1
    size = _table_size(ZERO + BLOCK)
    slot_first = np.full(size, EMPTY, np.int64)
    slot_hash = np.empty(size, np.uint64)
    slot_unique = np.empty(size, np.int64)
    firsts = np.empty(BLOCK, np.int64)  # distinct chunk u first occurs as chunk firsts[u]
    counts = np.empty(BLOCK, np.int64)
    n_unique = ZERO
    for c0 in range(0, n_chunks, BLOCK):
        c1 = min(c0 + BLOCK, n_chunks)
        room = n_unique + c1 - c0  # the most distinct chunks there can be after this block
        if room > len(firsts):
            firsts, counts = _grown(firsts, 2 * room), _grown(counts, 2 * room)
        if _table_size(room) > size:
            size = _table_size(2 * room)
            slot_first, slot_hash, slot_unique = _rehash_chunks(
                slot_first, slot_hash, slot_unique, size
            )
        n_unique = _count_block(
            data, bounds, c0, c1, slot_first, slot_hash, slot_unique, firsts, counts, n_unique
        )
    starts = np.empty(n_unique + 1, np.int64)
    starts[0] = 0
    for u in range(n_unique):
        starts[u + 1] = starts[u] + bounds[firsts[u] + 1] - bounds[firsts[u]]
    ids = np.empty(starts[n_unique], np.int64)
    for u in range(n_unique):
        a = bounds[firsts[u]]
        for k in range(starts[u + 1] - starts[u]):
            ids[starts[u] + k] = data[a + k]
    return ids, starts, counts[:n_unique].copy()


# ---------------------------------------------------------------------------------------------
# Training: incremental pair counts with a lazily corrected priority queue
# ---------------------------------------------------------------------------------------------
#
# Every position of the distinct chunks (packed back to back, in order of first appearance) is a
# node of a doubly linked list: tok[i] is its token, nxt/prv its neighbours inside its chunk (EMPTY
# at the ends), weight[i] its chunk's count. A pair occurs at i when (tok[i], tok[nxt[i]]) is it.
#
# The reference's tie-break, "the earliest first occurrence in the current text", is the smallest
# such i: chunks are packed in the order they first appear, and inside a chunk merged tokens keep
# their order. Two facts make it cheap to maintain exactly:
#   1. A pair gains occurrences only in the round that creates the newer of its two tokens (every
#      pair a merge creates contains the new token); afterwards it only loses them. So a pair's
#      list of occurrences is written once, in increasing position, and an entry that stops being
#      an occurrence never becomes one again (tokens only get newer).
#   2. Hence a pair's count only falls after its creation, and its first occurrence only moves
#      right: skip the dead entries at the head of its list.
# The heap holds (count, first position, pair) rows that are never worse than the truth. A popped
# row is checked against the pair's true count and true first occurrence and pushed back corrected
# if it was stale; the first row that survives the check is the reference's choice: the highest
# count, then the earliest first occurrence.

# Columns of the pair table, the occurrence entries and the heap.
LEFT, RIGHT, COUNT, HEAD, TAIL, LENGTH = 0, 1, 2, 3, 4, 5
POS, NEXT = 0, 1
H_COUNT, H_FIRST, H_PAIR = 0, 1, 2


@njit(cache=True)
def _grown_rows(a, n):
    """A copy of the 2-d array `a` with room for n rows (at least 16)."""
    out = np.empty((max(n, 16), a.shape[1]), a.dtype)
    for r in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[r, c] = a[r, c]
    return out


@njit(cache=True)
def _heap_before(heap, a, b):
    """Row a comes out before row b: a higher count, or equal counts and an earlier first."""
    return heap[a, H_COUNT] > heap[b, H_COUNT] or (
        heap[a, H_COUNT] == heap[b, H_COUNT] and heap[a, H_FIRST] < heap[b, H_FIRST]
    )


@njit(cache=True)
def _heap_swap(heap, a, b):
    for c in range(3):
        heap[a, c], heap[b, c] = heap[b, c], heap[a, c]


@njit(cache=True)
def _heap_push(heap, n, count, first, pair):
    """Push a row onto the heap of n rows; returns the new size."""
    i = n
    heap[i, H_COUNT], heap[i, H_FIRST], heap[i, H_PAIR] = count, first, pair
    for _ in range(64):  # sift up (a bounded loop: see the module docstring)
        parent = (i - 1) // 2
        if i == 0 or not _heap_before(heap, i, parent):
            break
        _heap_swap(heap, i, parent)
        i = parent
    return n + 1


@njit(cache=True)
def _heap_pop(heap, n):
    """Remove the top row of the heap of n rows; returns it as (count, first, pair)."""
    count, first, pair = heap[0, H_COUNT], heap[0, H_FIRST], heap[0, H_PAIR]
    n -= 1
    for c in range(3):
        heap[0, c] = heap[n, c]
    i = ZERO
    for _ in range(64):  # sift down
        best, left, right = i, 2 * i + 1, 2 * i + 2
        if left < n and _heap_before(heap, left, best):
            best = left
        if right < n and _heap_before(heap, right, best):
            best = right
        if best == i:
            break
        _heap_swap(heap, i, best)
        i = best
    return count, first, pair


@njit(cache=True)
def _find_pair(slots, pairs, left, right):
    """The slot of pair (left, right): it holds the pair's row, or EMPTY if there is none yet."""
    mask = len(slots) - 1
    s = _slot(_pair_key(left, right), mask)
    for _ in range(len(slots)):
        p = slots[s]
        if p == EMPTY or (pairs[p, LEFT] == left and pairs[p, RIGHT] == right):
            return s
        s = (s + 1) & mask
    return s


@njit(cache=True)
def _rehash_pairs(pairs, n_pairs, size):
    slots = np.full(size, EMPTY, np.int64)
    for p in range(n_pairs):
        slots[_find_pair(slots, pairs, pairs[p, LEFT], pairs[p, RIGHT])] = p
    return slots


@njit(cache=True)
def _count_pairs(tok, nxt, weight, pairs, entries, slots):
    """Count every adjacent pair once, one entry per occurrence, in increasing position.
    Returns (n_pairs, n_entries)."""
    n_pairs, n_entries = ZERO, ZERO
    for i in range(len(tok)):
        if nxt[i] == EMPTY:
            continue
        left, right = tok[i], tok[nxt[i]]
        # (the same steps as in _merge, written out: see the module docstring on writing helpers)
        s = _find_pair(slots, pairs, left, right)
        p = slots[s]
        if p == EMPTY:
            p = n_pairs
            n_pairs += 1
            slots[s] = p
            pairs[p, LEFT], pairs[p, RIGHT], pairs[p, COUNT] = left, right, 0
            pairs[p, HEAD], pairs[p, LENGTH] = EMPTY, 0
        pairs[p, COUNT] += weight[i]
        entries[n_entries, POS], entries[n_entries, NEXT] = i, EMPTY
        if pairs[p, HEAD] == EMPTY:
            pairs[p, HEAD] = n_entries
        else:
            entries[pairs[p, TAIL], NEXT] = n_entries
        pairs[p, TAIL] = n_entries
        pairs[p, LENGTH] += 1
        n_entries += 1
    return n_pairs, n_entries


@njit(cache=True)
def _occurs_at(tok, nxt, i, left, right):
    """Pair (left, right) occurs at node i now (a merged-away node holds token EMPTY)."""
    return tok[i] == left and nxt[i] != EMPTY and tok[nxt[i]] == right


@njit(cache=True)
def _first_occurrence(p, pairs, entries, tok, nxt):
    """Position of pair p's first occurrence; drops the dead entries at the head of its list."""
    e = pairs[p, HEAD]
    while not _occurs_at(tok, nxt, entries[e, POS], pairs[p, LEFT], pairs[p, RIGHT]):
        e = entries[e, NEXT]
    pairs[p, HEAD] = e
    return entries[e, POS]


@njit(cache=True)
def _pop_best(heap, hn, pairs, entries, tok, nxt):
    """Pop until a row agrees with the truth: (that pair, or EMPTY when none is left, heap size)."""
    while hn > 0:
        count, first, p = _heap_pop(heap, hn)
        hn -= 1
        if pairs[p, COUNT] == 0:
            continue  # merged, or every occurrence gone
        if count != pairs[p, COUNT]:
            hn = _heap_push(heap, hn, pairs[p, COUNT], first, p)
            continue
        true_first = _first_occurrence(p, pairs, entries, tok, nxt)
        if true_first != first:
            hn = _heap_push(heap, hn, count, true_first, p)
            continue
        return p, hn
    return EMPTY, hn


@njit(cache=True)
def _merge(best, new, pairs, entries, slots, tok, nxt, prv, weight, created, n_pairs, n_entries):
    """Merge every occurrence of pair `best` into token `new`, left to right, moving counts from
    the neighbouring pairs to the pairs with `new`. Room for 2 * pairs[best, LENGTH] more pairs
    and entries is assumed. Returns (n_pairs, n_entries, number of pairs created in `created`)."""
    left, right = pairs[best, LEFT], pairs[best, RIGHT]
    n_created = ZERO
    e = pairs[best, HEAD]
    while e != EMPTY:
        i = entries[e, POS]
        e = entries[e, NEXT]
        if not _occurs_at(tok, nxt, i, left, right):
            continue  # an overlapped occurrence ("aaa"), or one that an earlier merge took
        j, w = nxt[i], weight[i]
        before, after = prv[i], nxt[j]
        for side in range(2):
            if side == 0:  # (before, left) becomes (before, new), recorded at `before`
                if before == EMPTY:
                    continue
                old_left, old_right, a, b, at = tok[before], left, tok[before], new, before
            else:  # (right, after) becomes (new, after), recorded at i
                if after == EMPTY:
                    continue
                old_left, old_right, a, b, at = right, tok[after], new, tok[after], i
            pairs[slots[_find_pair(slots, pairs, old_left, old_right)], COUNT] -= w
            # Count (a, b) at `at`, creating the pair if it is new. Written out rather than a
            # helper: Numba refcounts the arrays of a helper that branches and writes them, on
            # every call (~100 ns).
            s = _find_pair(slots, pairs, a, b)
            p = slots[s]
            if p == EMPTY:
                p = n_pairs
                n_pairs += 1
                slots[s] = p
                pairs[p, LEFT], pairs[p, RIGHT], pairs[p, COUNT] = a, b, 0
                pairs[p, HEAD], pairs[p, LENGTH] = EMPTY, 0
                created[n_created] = p
                n_created += 1
            pairs[p, COUNT] += w
            entries[n_entries, POS], entries[n_entries, NEXT] = at, EMPTY
            if pairs[p, HEAD] == EMPTY:
                pairs[p, HEAD] = n_entries
            else:
                entries[pairs[p, TAIL], NEXT] = n_entries
            pairs[p, TAIL] = n_entries
            pairs[p, LENGTH] += 1
            n_entries += 1
        pairs[best, COUNT] -= w
        tok[i], tok[j] = new, EMPTY
        nxt[i] = after
        if after != EMPTY:
            prv[after] = i
    return n_pairs, n_entries, n_created


@njit(cache=True)
def _push_created(created, n_created, heap, hn, pairs, entries, tok, nxt):
    """The pairs a merge created enter the heap with their final count and first occurrence."""
    for c in range(n_created):
        q = created[c]
        if pairs[q, COUNT] > 0:
            first = _first_occurrence(q, pairs, entries, tok, nxt)
            hn = _heap_push(heap, hn, pairs[q, COUNT], first, q)
    return hn


@njit(cache=True)
def train_merges(ids, starts, weights, num_merges, first_id):
    """Learn up to num_merges merges from distinct chunks with their counts: a (k, 2) array.

    ids, starts: the chunks back to back (chunk u is ids[starts[u]:starts[u + 1]]), in order of
    first appearance; weights[u]: how often chunk u occurs. Merge k makes token first_id + k.
    >>> train_merges(np.array([97, 97, 97, 98]), np.array([0, 4]), np.array([1]), 2, 256)
    array([[ 97,  97], [256,  97]])
    """
    n_nodes = len(ids)
    tok = ids.copy()
    nxt = np.empty(n_nodes, np.int64)
    prv = np.empty(n_nodes, np.int64)
    weight = np.empty(n_nodes, np.int64)
    n_adjacent = ZERO
    for u in range(len(starts) - 1):
        for i in range(starts[u], starts[u + 1]):
            prv[i] = i - 1 if i > starts[u] else EMPTY
            nxt[i] = i + 1 if i + 1 < starts[u + 1] else EMPTY
            weight[i] = weights[u]
            if nxt[i] != EMPTY:
                n_adjacent += 1

    cap = max(16, n_adjacent)  # counting creates at most one pair and one entry per position
    pairs = np.empty((cap, 6), np.int64)
    entries = np.empty((cap, 2), np.int64)
    slots = np.full(_table_size(cap), EMPTY, np.int64)
    n_pairs, n_entries = _count_pairs(tok, nxt, weight, pairs, entries, slots)
    heap = np.empty((max(16, 2 * n_pairs), 3), np.int64)
    hn = ZERO
    for p in range(n_pairs):
        hn = _heap_push(heap, hn, pairs[p, COUNT], entries[pairs[p, HEAD], POS], p)

    num_merges = min(num_merges, n_adjacent)  # each merge removes a position, at least
    merges = np.empty((num_merges, 2), np.int64)
    created = np.empty(16, np.int64)
    k = ZERO
    while k < num_merges:
        best, hn = _pop_best(heap, hn, pairs, entries, tok, nxt)
        if best == EMPTY:
            break  # no pair left
        merges[k, 0], merges[k, 1] = pairs[best, LEFT], pairs[best, RIGHT]
        # Grow between merges, never inside one (see the module docstring).
        room = 2 * pairs[best, LENGTH]  # the most pairs and entries this merge can create
        if n_pairs + room > len(pairs):
            pairs = _grown_rows(pairs, 2 * (n_pairs + room))
            slots = _rehash_pairs(pairs, n_pairs, _table_size(len(pairs)))
        if n_entries + room > len(entries):
            entries = _grown_rows(entries, 2 * (n_entries + room))
        if room > len(created):
            created = np.empty(2 * room, np.int64)
        n_pairs, n_entries, n_created = _merge(
            best, first_id + k, pairs, entries, slots, tok, nxt, prv, weight, created,
            n_pairs, n_entries,
        )  # fmt: skip
        if hn + n_created > len(heap):
            heap = _grown_rows(heap, 2 * (hn + n_created))
        hn = _push_created(created, n_created, heap, hn, pairs, entries, tok, nxt)
        k += 1
    return merges[:k].copy()


# ---------------------------------------------------------------------------------------------
# Encoding: rank-based merging over batches of chunks, with a cache of chunks already encoded
# ---------------------------------------------------------------------------------------------

# Columns of the merge table: the packed pair, its rank (its place in the merge list), the token
# it makes.
KEY, RANK, MADE = 0, 1, 2


@njit(cache=True)
def merge_table(lefts, rights, made):
    """The merges as a hash table: one row per slot, (pair key, rank, new token) or EMPTY keys."""
    size = _table_size(len(lefts))
    table = np.full((size, 3), EMPTY, np.int64)
    mask = size - 1
    for r in range(len(lefts)):
        key = _pair_key(lefts[r], rights[r])
        s = _slot(key, mask)
        while table[s, KEY] != EMPTY:
            s = (s + 1) & mask
        table[s, KEY], table[s, RANK], table[s, MADE] = key, r, made[r]
    return table


@njit(cache=True)
def _lookup(table, left, right):
    """(slot, rank) of the merge of (left, right), or (EMPTY, NO_RANK) when no merge makes it."""
    key = _pair_key(left, right)
    mask = len(table) - 1
    s = _slot(key, mask)
    for _ in range(len(table)):
        k = table[s, KEY]
        if k == key:
            return s, table[s, RANK]
        if k == EMPTY:
            break
        s = (s + 1) & mask
    return EMPTY, NO_RANK


@njit(cache=True)
def _encode_short(data, start, end, byte_ids, table, out, at, scratch):
    """BPE of a short chunk into out[at:]; returns the number of tokens.

    Each round scans the ranks of the adjacent pairs for the lowest (the leftmost of equals) and
    merges it: O(n^2), which beats a heap for the few bytes of a typical chunk. Merging one
    occurrence at a time gives the reference's all-occurrences-at-once, because every pair a merge
    creates ranks after it. scratch: (n, 3) rows of (token, rank of the pair it starts, slot).
    """
    n = end - start
    for k in range(n):
        scratch[k, 0] = byte_ids[data[start + k]]
    for k in range(n - 1):
        scratch[k, 2], scratch[k, 1] = _lookup(table, scratch[k, 0], scratch[k + 1, 0])
    while n > 1:
        best = ZERO
        for k in range(1, n - 1):
            if scratch[k, 1] < scratch[best, 1]:
                best = k
        if scratch[best, 1] == NO_RANK:
            break
        scratch[best, 0] = table[scratch[best, 2], MADE]
        for k in range(best + 1, n - 1):  # delete token best + 1 and the pair it started
            scratch[k, 0], scratch[k, 1], scratch[k, 2] = (
                scratch[k + 1, 0], scratch[k + 1, 1], scratch[k + 1, 2]
            )  # fmt: skip
        n -= 1
        if best > 0:
            scratch[best - 1, 2], scratch[best - 1, 1] = _lookup(
                table, scratch[best - 1, 0], scratch[best, 0]
            )
        if best < n - 1:
            scratch[best, 2], scratch[best, 1] = _lookup(
                table, scratch[best, 0], scratch[best + 1, 0]
            )
    for k in range(n):
        out[at + k] = scratch[k, 0]
    return n


@njit(cache=True)
def _min_heap_push(heap, n, key):
    i = n
    heap[i] = key
    for _ in range(64):
        parent = (i - 1) // 2
        if i == 0 or heap[parent] <= heap[i]:
            break
        heap[i], heap[parent] = heap[parent], heap[i]
        i = parent
    return n + 1


@njit(cache=True)
def _min_heap_pop(heap, n):
    top = heap[0]
    n -= 1
    heap[0] = heap[n]
    i = ZERO
    for _ in range(64):
        best, left, right = i, 2 * i + 1, 2 * i + 2
        if left < n and heap[left] < heap[best]:
            best = left
        if right < n and heap[right] < heap[best]:
            best = right
        if best == i:
            break
        heap[i], heap[best] = heap[best], heap[i]
        i = best
    return top


@njit(cache=True)
def _encode_long(data, start, end, byte_ids, table, out, at):
    """BPE of a long chunk into out[at:] in O(n log n); returns the number of tokens.

    A linked list of tokens and a min-heap of (rank << 32 | position) keys: the lowest rank
    first, equal ranks left to right, exactly the order in which the reference merges. A key whose
    pair has changed since it was pushed is stale and skipped. "a" * 100000 stays fast.
    """
    n = end - start
    tok = np.empty(n, np.int64)
    nxt = np.empty(n, np.int64)
    prv = np.empty(n, np.int64)
    for k in range(n):
        tok[k] = byte_ids[data[start + k]]
        nxt[k] = k + 1 if k + 1 < n else EMPTY
        prv[k] = k - 1
    heap = np.empty(3 * n, np.int64)  # n - 1 pairs, then at most two more per merge
    hn = ZERO
    for k in range(n - 1):
        _, r = _lookup(table, tok[k], tok[k + 1])
        if r != NO_RANK:
            hn = _min_heap_push(heap, hn, (r << 32) | k)
    while hn > 0:
        top = _min_heap_pop(heap, hn)
        hn -= 1
        r, i = top >> 32, top & 0xFFFFFFFF
        if tok[i] == EMPTY or nxt[i] == EMPTY:
            continue
        s, current = _lookup(table, tok[i], tok[nxt[i]])
        if current != r:
            continue  # stale: the pair at i has changed since
        j = nxt[i]
        tok[i], tok[j] = table[s, MADE], EMPTY
        nxt[i] = nxt[j]
        if nxt[i] != EMPTY:
            prv[nxt[i]] = i
            _, r = _lookup(table, tok[i], tok[nxt[i]])
            if r != NO_RANK:
                hn = _min_heap_push(heap, hn, (r << 32) | i)
        if prv[i] != EMPTY:
            _, r = _lookup(table, tok[prv[i]], tok[i])
            if r != NO_RANK:
                hn = _min_heap_push(heap, hn, (r << 32) | prv[i])
    count = ZERO
    i = ZERO
    while i != EMPTY:
        out[at + count] = tok[i]
        count += 1
        i = nxt[i]
    return count


@njit(cache=True)
def _encode_block(
    data, bounds, c0, c1, byte_ids, table, short_max, out, at,
    slot_first, slot_hash, slot_entry, cached, n_cached, scratch,
):  # fmt: skip
    """Encode chunks c0..c1-1 into out[at:] (room for c1 - c0 new cache entries assumed).
    Returns (at, n_cached). cached[u] = (where cached chunk u's ids start in out, how many)."""
    for c in range(c0, c1):
        start, end = bounds[c], bounds[c + 1]
        length = end - start
        if length == 1:
            out[at] = byte_ids[data[start]]
            at += 1
            continue
        h = _bytes_hash(data, start, end)
        s = _find_chunk(slot_first, slot_hash, data, bounds, h, start, length)
        if slot_first[s] != EMPTY:  # seen before: copy its ids
            u = slot_entry[s]
            for k in range(cached[u, 1]):
                out[at + k] = out[cached[u, 0] + k]
            at += cached[u, 1]
            continue
        if length <= short_max:
            n = _encode_short(data, start, end, byte_ids, table, out, at, scratch)
        else:
            n = _encode_long(data, start, end, byte_ids, table, out, at)
        slot_first[s], slot_hash[s], slot_entry[s] = c, h, n_cached
        cached[n_cached, 0], cached[n_cached, 1] = at, n
        n_cached += 1
        at += n
    return at, n_cached


@njit(cache=True)
def encode_chunks(data, bounds, groups, byte_ids, table, short_max):
    """Encode every chunk of a batch: (ids, offsets), both int64.

    data, bounds: the UTF-8 chunks back to back; text t holds chunks groups[t] .. groups[t + 1]
    and gets ids[offsets[t]:offsets[t + 1]]. Each distinct chunk is encoded once (up to
    short_max bytes by the O(n^2) scan, longer ones by the heap); later occurrences copy the ids
    from where it was first encoded, found by a hash table keyed by the chunk's bytes.
    """
    n_chunks = len(bounds) - 1
    out = np.empty(len(data), np.int64)  # never more ids than bytes
    offsets = np.empty(len(groups), np.int64)
    size = _table_size(ZERO + BLOCK)
    slot_first = np.full(size, EMPTY, np.int64)
    slot_hash = np.empty(size, np.uint64)
    slot_entry = np.empty(size, np.int64)
    cached = np.empty((BLOCK, 2), np.int64)
    n_cached = ZERO
    scratch = np.empty((max(short_max, 2), 3), np.int64)
    at = ZERO
    g = ZERO
    c0 = ZERO
    while True:
        while g < len(groups) and groups[g] == c0:
            offsets[g] = at
            g += 1
        if c0 >= n_chunks:
            break
        c1 = min(c0 + BLOCK, n_chunks)  # a block ends where a text ends
        if g < len(groups):
            c1 = min(c1, groups[g])
        room = n_cached + c1 - c0
        if room > len(cached):
            cached = _grown_rows(cached, 2 * room)
        if _table_size(room) > size:
            size = _table_size(2 * room)
            slot_first, slot_hash, slot_entry = _rehash_chunks(
                slot_first, slot_hash, slot_entry, size
            )
        at, n_cached = _encode_block(
            data, bounds, c0, c1, byte_ids, table, short_max, out, at,
            slot_first, slot_hash, slot_entry, cached, n_cached, scratch,
        )  # fmt: skip
        c0 = c1
    while g < len(groups):
        offsets[g] = at
        g += 1
    return out[:at], offsets


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def decode_bytes(ids, tok_start, tok_len, pool):
    """The bytes of `ids`: token t is pool[tok_start[t]:tok_start[t] + tok_len[t]], and
    tok_len[t] == -1 when there is no token t.

    Returns (bytes, -1), or (nothing, position of the first id that is no token) for the caller
    to report exactly as the reference does.
    """
    total = ZERO
    for k in range(len(ids)):
        t = ids[k]
        if t < 0 or t >= len(tok_len) or tok_len[t] < 0:
            return np.empty(0, np.uint8), k
        total += tok_len[t]
    out = np.empty(total, np.uint8)
    at = ZERO
    for k in range(len(ids)):
        t = ids[k]
        a = tok_start[t]
        for m in range(tok_len[t]):
            out[at + m] = pool[a + m]
        at += tok_len[t]
    return out, EMPTY
