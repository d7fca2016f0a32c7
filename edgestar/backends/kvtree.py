"""Bookkeeping for a tree-shaped KV cache: which llama.cpp sequence holds which token prefix.

Owns `KVTree`, a radix tree over token ids that mirrors the KV cells of ONE llama.cpp context
with a unified KV cache (`kv_unified=True`: `n_cells` cells shared by up to `n_seqs` sequences;
a cell may belong to several sequences, which is how a prefix is shared at no cost). It knows
nothing of llama.cpp itself: it drives the context through a `Memory` (seq_cp / seq_rm) and is
told, after each successful decode, which tokens went into which sequences (`append`).

Model:
- A `_Seg` is a run of tokens at consecutive positions whose cells are held by the same set of
  sequences (`seqs`). Every sequence is a path root -> ... -> its tail segment, ending exactly at
  a segment end (segments are split when a fork lands inside one). A child's `seqs` is a subset
  of its parent's. `cells` (the sum of live run lengths) is the number of KV cells in use, as
  long as every cell llama.cpp holds was reported through `append`.
- A sequence is LIVE (being decoded; never evicted) or IDLE (cached: its KV can seed later
  requests). Idle sequences are evicted least-recently-used first when cells or sequence ids
  run out; evicting one frees only the cells no other sequence holds (`exclusive`). An idle
  sequence whose cells are all shared ("redundant") costs nothing to evict and goes first when
  only a sequence id is needed.
- `lookup(tokens)` finds the longest cached prefix of `tokens` (any sequence, live or idle) and a
  sequence holding it; `fork` gives a new sequence that prefix with one `seq_cp` (no copy with a
  unified cache); `take` reuses an idle sequence in place when it ends exactly there.

Duplicate runs (the same tokens decoded twice after the same parent, e.g. a fully cached prompt
whose last token is decoded again for its logits) are allowed: they are separate segments with
separate cells, and lookups pick whichever matches longer.

Pure Python, no llama.cpp import; not thread-safe (the backends lock around it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["KVTree", "Match", "Memory"]


class Memory(Protocol):
    """What KVTree needs from a llama.cpp context's memory."""

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None: ...

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None: ...


class _Seg:
    __slots__ = ("children", "parent", "seqs", "start", "tokens")

    def __init__(self, tokens: list[int], start: int, parent: _Seg | None, seqs: set[int]) -> None:
        self.tokens = tokens
        self.start = start
        self.parent = parent
        self.seqs = seqs
        self.children: dict[int, list[_Seg]] = {}

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    def attach(self, child: _Seg) -> None:
        self.children.setdefault(child.tokens[0], []).append(child)

    def detach(self, child: _Seg) -> None:
        lst = self.children[child.tokens[0]]
        lst.remove(child)
        if not lst:
            del self.children[child.tokens[0]]


@dataclass
class _SeqInfo:
    tail: _Seg
    live: bool
    used: int
    """LRU clock value of the last use."""


@dataclass(frozen=True)
class Match:
    """Result of `KVTree.lookup`: `n` leading tokens are cached in sequence `seq` (None when
    n == 0); `seq_len` is that sequence's length; `exact_end` says the sequence ends at n."""

    n: int
    seq: int | None
    seq_len: int

    @property
    def exact_end(self) -> bool:
        return self.seq is not None and self.seq_len == self.n


@dataclass
class KVTreeStats:
    evicted_seqs: int = 0
    evicted_cells: int = 0
    forks: int = 0
    takes: int = 0
    lookups: int = 0
    matched_tokens: int = 0


def _common(a: Sequence[int], b: Sequence[int], b0: int) -> int:
    """Length of the common prefix of a and b[b0:]."""
    n = min(len(a), len(b) - b0)
    if n <= 0:
        return 0
    if list(a[:n]) == list(b[b0 : b0 + n]):
        return n
    i = 0
    while i < n and a[i] == b[b0 + i]:
        i += 1
    return i


class KVTree:
    """Radix tree of cached token prefixes over the sequences of one llama.cpp context."""

    def __init__(self, mem: Memory, n_cells: int, n_seqs: int) -> None:
        self.mem = mem
        self.n_cells = n_cells
        self.n_seqs = n_seqs
        self.root = _Seg([], 0, None, set())
        self.info: dict[int, _SeqInfo] = {}
        self._free = list(range(n_seqs - 1, -1, -1))  # pop() gives the lowest id
        self.cells = 0
        self._clock = 0
        self.stats = KVTreeStats()

    # ------------------------------------------------------------------ queries
    @property
    def cells_free(self) -> int:
        return self.n_cells - self.cells

    @property
    def seqs_free(self) -> int:
        return len(self._free)

    def seq_len(self, seq: int) -> int:
        return self.info[seq].tail.end

    def tokens(self, seq: int) -> list[int]:
        """The token ids whose KV sequence `seq` holds, positions 0..len-1."""
        runs: list[list[int]] = []
        s: _Seg | None = self.info[seq].tail
        while s is not None:
            runs.append(s.tokens)
            s = s.parent
        out: list[int] = []
        for r in reversed(runs):
            out += r
        return out

    def is_live(self, seq: int) -> bool:
        return self.info[seq].live

    def idle_seqs(self) -> list[int]:
        return [s for s, i in self.info.items() if not i.live]

    def exclusive(self, seq: int) -> int:
        """Cells that only `seq` holds (freed if it is dropped)."""
        n, s = 0, self.info[seq].tail
        while s is not None and s.seqs == {seq}:
            n += len(s.tokens)
            s = s.parent
        return n

    def lookup(self, tokens: Sequence[int]) -> Match:
        """The longest prefix of `tokens` held by some sequence, and one such sequence."""
        self.stats.lookups += 1
        seg, depth = self.root, 0
        best_seg, best_n = None, 0
        while depth < len(tokens):
            kids = seg.children.get(tokens[depth])
            if not kids:
                break
            pick, pick_n = kids[0], -1
            for c in kids:
                k = _common(c.tokens, tokens, depth)
                if k > pick_n:
                    pick, pick_n = c, k
            best_seg, best_n = pick, depth + pick_n
            if pick_n < len(pick.tokens):
                break
            seg, depth = pick, pick.end
        if best_seg is None:
            return Match(0, None, 0)
        seq = self._holder(best_seg, best_n)
        self.stats.matched_tokens += best_n
        return Match(best_n, seq, self.seq_len(seq))

    def _holder(self, seg: _Seg, n: int) -> int:
        """A sequence through `seg` (at depth n), preferring an idle one that ends exactly at
        n, then any idle one, then any."""
        best, rank = next(iter(seg.seqs)), 3
        for s in seg.seqs:
            i = self.info[s]
            r = (0 if i.tail.end == n else 1) if not i.live else 2
            if r < rank:
                best, rank = s, r
                if r == 0:
                    break
        return best

    # ------------------------------------------------------------------ sequence life cycle
    def alloc(self, protect: Iterable[int] = ()) -> int | None:
        """A free sequence id (evicting an idle sequence if none is free), or None."""
        if not self._free and not self._evict_one(set(protect), for_cells=False):
            return None
        return self._free.pop()

    def new_empty(self, seq: int) -> None:
        """Register `seq` (from `alloc`) as a live, empty sequence."""
        self._clock += 1
        self.root.seqs.add(seq)
        self.info[seq] = _SeqInfo(self.root, True, self._clock)

    def fork(self, src: int, dst: int, n: int) -> None:
        """Make `dst` (from `alloc`) hold the first n tokens of `src`; dst is live."""
        if n <= 0:
            self.new_empty(dst)
            return
        seg = self._point(src, n)
        self.mem.seq_cp(src, dst, 0, n)
        s: _Seg | None = seg
        while s is not None:
            s.seqs.add(dst)
            s = s.parent
        self._clock += 1
        self.info[dst] = _SeqInfo(seg, True, self._clock)
        self.info[src].used = self._clock
        self.stats.forks += 1

    def take(self, seq: int) -> None:
        """Reuse the idle sequence `seq` as it is: it becomes live."""
        i = self.info[seq]
        assert not i.live
        self._clock += 1
        i.live, i.used = True, self._clock
        self.stats.takes += 1

    def release(self, seq: int) -> None:
        """A live sequence becomes idle (cached, evictable)."""
        self._clock += 1
        i = self.info[seq]
        i.live, i.used = False, self._clock

    def drop(self, seq: int) -> int:
        """Remove `seq` and free its id; returns the cells freed."""
        i = self.info.pop(seq)
        self.mem.seq_rm(seq, -1, -1)
        freed = 0
        s: _Seg | None = i.tail
        while s is not None:
            s.seqs.discard(seq)
            parent = s.parent
            if not s.seqs and parent is not None:
                parent.detach(s)
                freed += len(s.tokens)
            s = parent
        self.cells -= freed
        self._free.append(seq)
        return freed

    def truncate(self, seq: int, n: int) -> int:
        """Keep only the first n tokens of `seq`; returns the cells freed. With n == 0, or when
        another sequence holds those n tokens anyway, the sequence is dropped instead."""
        i = self.info[seq]
        if n >= i.tail.end:
            return 0
        if n <= 0:
            return self.drop(seq)
        point = self._point(seq, n)
        if len(point.seqs) > 1:
            return self.drop(seq)
        self.mem.seq_rm(seq, n, -1)
        freed = 0
        s: _Seg | None = i.tail
        while s is not None and s is not point:
            s.seqs.discard(seq)
            parent = s.parent
            if not s.seqs and parent is not None:
                parent.detach(s)
                freed += len(s.tokens)
            s = parent
        i.tail = point
        self.cells -= freed
        return freed

    def append(self, seqs: Sequence[int], tokens: Sequence[int]) -> None:
        """Record that `tokens` were decoded (new cells, shared by all of `seqs`) right after
        the current end of `seqs`, which must all end at the same segment."""
        if not tokens:
            return
        tail = self.info[seqs[0]].tail
        group = set(seqs)
        if tail is not self.root and tail.seqs == group and not tail.children:
            tail.tokens.extend(tokens)
        else:
            child = _Seg(list(tokens), tail.end, tail, group)
            tail.attach(child)
            for s in seqs:
                self.info[s].tail = child
        self.cells += len(tokens)

    def make_room(self, cells: int, protect: Iterable[int] = ()) -> bool:
        """Evict idle sequences (least recently used first) until `cells` cells are free."""
        prot = set(protect)
        while self.cells_free < cells:
            if not self._evict_one(prot, for_cells=True):
                return False
        return True

    def clear(self) -> None:
        """Forget everything (the caller clears llama.cpp's memory)."""
        self.root = _Seg([], 0, None, set())
        self.info.clear()
        self._free = list(range(self.n_seqs - 1, -1, -1))
        self.cells = 0

    # ------------------------------------------------------------------ internals
    def _point(self, seq: int, n: int) -> _Seg:
        """The segment on seq's path that ends at depth n (splitting one if needed)."""
        s = self.info[seq].tail
        if n > s.end:
            raise ValueError(f"sequence {seq} holds {s.end} tokens, not {n}")
        while s.start >= n and s.parent is not None:
            s = s.parent
        if s.end == n:
            return s
        return self._split(s, n - s.start)

    def _split(self, seg: _Seg, i: int) -> _Seg:
        """Split seg after i tokens; return the upper part (which ends at seg.start + i)."""
        parent = seg.parent
        assert parent is not None and 0 < i < len(seg.tokens)
        upper = _Seg(seg.tokens[:i], seg.start, parent, set(seg.seqs))
        parent.detach(seg)
        parent.attach(upper)
        seg.tokens = seg.tokens[i:]
        seg.start += i
        seg.parent = upper
        upper.attach(seg)
        return upper

    def _evict_one(self, protect: set[int], for_cells: bool) -> bool:
        # for_cells: prefer sequences that free cells (least recently used first); when none
        # does, drop a sharing one anyway (LRU): idle sequences that cover each other's cells
        # (two siblings that decoded the same text) would otherwise never be evicted, and the
        # next round finds the survivor's cells exclusive.
        victim, key = None, None
        for s, i in self.info.items():
            if i.live or s in protect:
                continue
            excl = self.exclusive(s)
            k = (excl == 0, i.used) if for_cells else (excl > 0, i.used)
            if key is None or k < key:
                victim, key = s, k
        if victim is None:
            return False
        freed = self.drop(victim)
        self.stats.evicted_seqs += 1
        self.stats.evicted_cells += freed
        return True
