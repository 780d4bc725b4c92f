"""Exact cosine similarities and the k-th largest distractor similarity of many probes (the search behind rank-1).

The similarity rule: one canonical float64 cosine, reproducible bit for bit
----------------------------------------------------------------------------
rank-1 compares `cos(a, b) > max_d cos(a, d)` strictly, so a tie is a miss. Computed naively, two BLAS calls may
round the same dot product differently (blocking, FMA, kernel edges), so a mate that duplicates a distractor could
count as a hit by luck, and a float32 search (faiss) would disagree with a float64 one. We fix one value instead:

- `canonical_unit(x)`: scale the row by a power of two so its largest |value| lies in [0.5, 1) (exact; no overflow
  or underflow for any finite row), sum the squares in order j = 0..d-1 with one IEEE rounding per operation, take
  the square root and divide each component by it.
- `canonical_dot(x, y)`: the sum of the products of two canonical unit rows, in order j = 0..d-1, one rounding per
  multiplication and per addition.

Both are plain elementwise numpy operations (no BLAS, no reordering), so the canonical cosine of two rows depends
only on their values: identical rows give identical similarities wherever they sit, and the value is the same on
every machine. It is what rank-1, CMC and verification compare.

Computing every canonical similarity would be slow, so the search is done fast and then certified:

1. Approximate pass: all probes against all (de-duplicated) distractors, tile by tile, with numpy (float64 GEMM)
   or faiss (`faiss.knn`, exact float32 inner products), keeping each probe's k-th largest approximate
   similarity; the mates' cosines come from one small float64 Gram block per identity.
2. Any way of computing the cosine of unit vectors in a precision with unit roundoff u, any summation order, is
   within `error_bound(d, u) = 1.25 (2d + 8) u` of the exact cosine (the classic dot-product bound γ_d plus the
   normalisation and the cast; 25 % spare): about 8e-5 in float32 and 1.4e-13 in float64 at d = 512. A k-th
   largest value moves no more than the values it is taken from, so approximate and canonical values differ by
   at most the sum of their bounds.
3. Every comparison whose approximate margin exceeds that sum is decided by the approximation: the canonical
   comparison must agree. After a float32 pass, the probes of the few comparisons left in the band are searched
   again in float64 (a band ~1e9 times narrower); what is still in the band (exact ties, duplicates) is decided on
   canonical values: the probe's k-th largest canonical similarity over the distractors that can reach it, and
   the mate's canonical cosine.

Hence both backends return exactly the canonical decisions; they differ only in speed. The cost of step 3 is that
of the distractors in the band: nothing for ordinary features, and O(P·D·d) elementwise operations (minutes at
the official size, memory still bounded) for a degenerate submission whose features are all equal to ~1e-7 yet
not identical (identical distractor rows are merged first, so constant features stay cheap).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "faiss")
UNIT_ROUNDOFF = {np.dtype(np.float64): 2.0**-53, np.dtype(np.float32): 2.0**-24}
DEFAULT_BLOCK_SIZE = 512  # probes per block of the numpy GEMM
FAISS_TILE = 8192  # distractors per faiss.knn call
BLOCK_ELEMENTS = 2**22  # the numpy GEMM's buffer: block × tile <= this many float64 (32 MiB)
AUTO_FAISS_MIN_PRODUCTS = 1_000_000  # probes × distractors from which "auto" picks faiss (measured crossover)
EXACT_BLOCK_SIZE = 256  # probes per block of the canonical refinement
_CANONICAL_CHUNK = 16384  # rows per chunk of the canonical loops
_CACHE_TILE = 16384  # float64 elements of a canonical_block tile (128 KiB: stays in L2)
_DENSE_ADVANTAGE = 8  # a dense canonical block costs about 1/8 of a gathered pair per cosine (measured)


def error_bound(dim: int, unit_roundoff: float) -> float:
    """A bound on |computed − exact cosine| for rows normalised and multiplied in precision `unit_roundoff`,
    in any order (Higham's γ_d for the dot product, 2u for the normalisation, u for a cast), with 25 % spare."""
    return 1.25 * (2 * dim + 8) * unit_roundoff


# --------------------------------------------------------------------------------------------------- canonical


def _power_of_two_scaled(x: np.ndarray) -> np.ndarray:
    """float64 (n, d) rows scaled exactly by 2**-e so that each row's largest |value| lies in [0.5, 1)."""
    x = np.asarray(x, dtype=np.float64)
    _, exponent = np.frexp(np.abs(x).max(axis=1, keepdims=True))
    return np.ldexp(x, -exponent)


def canonical_unit(x: np.ndarray) -> np.ndarray:
    """float64 (n, d) → float64 (n, d) canonical unit rows (module docstring). Rows must be finite and non-zero.
    The result is the transpose of a C-ordered (d, n) array: one contiguous run per dimension, which is how the
    canonical sums read it."""
    x = _power_of_two_scaled(x)
    out = np.empty((x.shape[1], x.shape[0]))
    for start in range(0, len(x), _CANONICAL_CHUNK):
        cols = np.ascontiguousarray(x[start : start + _CANONICAL_CHUNK].T)  # (d, chunk): one contiguous row per j
        squares = cols[0] * cols[0]
        for column in cols[1:]:
            squares += column * column
        out[:, start : start + len(squares)] = cols / np.sqrt(squares)
    return out.T


def _by_dimension(unit: np.ndarray) -> np.ndarray:
    """(d, n) C-ordered view or copy of (n, d) unit rows."""
    return unit.T if unit.T.flags.c_contiguous else np.ascontiguousarray(unit.T)


def canonical_dot(x_unit: np.ndarray, y_unit: np.ndarray, x_index=None, y_index=None) -> np.ndarray:
    """float64 (n,): the canonical cosine of rows x_unit[x_index[i]] and y_unit[y_index[i]] (indices default to
    0..n-1), all rows from `canonical_unit`. Gathers by chunks: memory stays bounded for any n."""
    x_index = np.arange(len(x_unit)) if x_index is None else np.asarray(x_index)
    y_index = np.arange(len(y_unit)) if y_index is None else np.asarray(y_index)
    x_dims, y_dims = _by_dimension(x_unit), _by_dimension(y_unit)
    out = np.empty(len(x_index), dtype=np.float64)
    for start in range(0, len(x_index), _CANONICAL_CHUNK):
        xs = np.take(x_dims, x_index[start : start + _CANONICAL_CHUNK], axis=1)  # (d, chunk)
        ys = np.take(y_dims, y_index[start : start + _CANONICAL_CHUNK], axis=1)
        total = xs[0] * ys[0]
        for xj, yj in zip(xs[1:], ys[1:], strict=True):
            total += xj * yj
        out[start : start + len(total)] = total
    return out


def canonical_block(x_unit: np.ndarray, y_unit: np.ndarray) -> np.ndarray:
    """float64 (nx, ny): the canonical cosine of every row of x_unit (nx, d) with every row of y_unit (ny, d),
    both from `canonical_unit` (the same sums as `canonical_dot`, as outer products by cache-sized tiles)."""
    x_dims, y_dims = _by_dimension(x_unit), _by_dimension(y_unit)
    out = np.empty((x_dims.shape[1], y_dims.shape[1]))
    rows = max(1, min(x_dims.shape[1], _CACHE_TILE // 64))
    columns = max(1, _CACHE_TILE // rows)
    for r in range(0, x_dims.shape[1], rows):
        for c in range(0, y_dims.shape[1], columns):
            xs, ys = x_dims[:, r : r + rows], y_dims[:, c : c + columns]
            total = np.multiply.outer(xs[0], ys[0])
            product = np.empty_like(total)
            for xj, yj in zip(xs[1:], ys[1:], strict=True):
                np.multiply(xj[:, None], yj[None, :], out=product)
                total += product
            out[r : r + rows, c : c + columns] = total
    return out


def canonical_cosine(features: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 (P,): canonical cosine of features[a[i]] and features[b[i]]; features (N, d), a and b int (P,)."""
    rows, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    unit = canonical_unit(features[rows])
    return canonical_dot(unit, unit, inverse[: len(a)], inverse[len(a) :])


def unit_rows(x: np.ndarray, dtype=np.float64, *, overwrite: bool = False) -> np.ndarray:
    """(n, d) float64 rows scaled to unit norm the fast way (any order; within `error_bound` of the exact unit
    rows): the input of the approximate pass. Rows whose squares would overflow or underflow are first scaled by
    a power of two. overwrite=True lets a float64 x (a fresh gather) be normalised in place."""
    x = np.asarray(x, dtype=np.float64) if overwrite else np.array(x, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):  # such rows are found and rescaled just below
        norms = _row_norms(x)
    extreme = ~((norms > 2.0**-400) & (norms < 2.0**400))
    if extreme.any():
        x[extreme] = _power_of_two_scaled(x[extreme])
        norms[extreme] = _row_norms(x[extreme])
    x /= norms[:, None]
    return x.astype(dtype, copy=False)


def unit_rows_of(features: np.ndarray, rows: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(len(rows), d) in dtype: `unit_rows` of features[rows], gathered and normalised in float64 by chunks, so
    that a float32 result never needs the float64 copy of all the rows."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), features.shape[1]), dtype=dtype)
    chunk = _rows_per_chunk(features.shape[1]) // 4 or 1  # 1 Mi elements (8 MiB) per float64 chunk
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = unit_rows(features[rows[start : start + chunk]], overwrite=True)
    return out


def _row_norms(x: np.ndarray) -> np.ndarray:
    """float64 (n,): the Euclidean norm of each row of x (n, d), by one einsum (np.linalg.norm squares into an
    (n, d) temporary first: 30 times slower at the official size). Any summation order is within the bound."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


# --------------------------------------------------------------------------------------------------- distractors


@dataclass(frozen=True, eq=False)
class Distractors:
    """The distractor set with identical rows merged (identical rows have identical canonical similarities).

    rows: int64 (U,) one feature row per distinct vector; counts: int64 (U,) how many distractors share it.
    """

    rows: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def distinct_distractors(features: np.ndarray, distractor_rows: np.ndarray) -> Distractors:
    """Merge distractors whose feature rows are equal (-0.0 equals 0.0); features (N, d), distractor_rows int (D,).

    Rows are hashed by chunks (a 64-bit hash of their bytes), and every merge is then checked
    value by value, so memory stays bounded by the chunk; a hash collision (never seen) falls back to sorting.
    """
    rows = np.asarray(distractor_rows, dtype=np.int64)
    if len(rows) == 0:
        return Distractors(rows, np.zeros(0, dtype=np.int64))
    hashes = np.empty(len(rows), dtype=np.int64)
    chunk = _rows_per_chunk(features.shape[1])
    for start in range(0, len(rows), chunk):
        block = np.array(features[rows[start : start + chunk]])
        block[block == 0] = 0  # -0.0 and 0.0 are one value
        hashes[start : start + len(block)] = [_row_hash(row.tobytes()) for row in block]
    _, first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
    representative = rows[first[inverse.ravel()]]
    merged = np.flatnonzero(representative != rows)
    for start in range(0, len(merged), chunk):
        pick = merged[start : start + chunk]
        if not np.array_equal(features[rows[pick]], features[representative[pick]]):
            log.warning("distractor row hashes collided; merging duplicates by sorting instead")
            return _distinct_by_sorting(features, rows)
    order = np.argsort(first, kind="stable")
    return Distractors(rows[first[order]], counts[order].astype(np.int64))


def _row_hash(row_bytes: bytes) -> int:
    """A 64-bit hash of a row's bytes (Python's own: fast, and only compared within one call)."""
    return hash(row_bytes)


def _distinct_by_sorting(features: np.ndarray, rows: np.ndarray) -> Distractors:
    block = np.array(features[rows])
    block[block == 0] = 0
    keys = block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return Distractors(rows[first[order]], counts[order].astype(np.int64))


def _rows_per_chunk(dim: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(dim, 1))


def _weighted_kth(values: np.ndarray, counts: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """float64 (B, len(ks)): per row, the k-th largest of `values` with each value repeated `counts` times
    (-inf when fewer than k). values and counts (B, C)."""
    order = np.argsort(-values, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    cumulative = np.cumsum(np.take_along_axis(counts, order, axis=1), axis=1)
    out = np.full((len(values), len(ks)), -np.inf)
    for column, k in enumerate(ks):
        position = (cumulative < k).sum(axis=1)
        found = position < values.shape[1]
        out[found, column] = values[found, position[found]]
    return out


# --------------------------------------------------------------------------------------------------- approximate


def _tile_size(block_rows: int) -> int:
    """Distractors per GEMM tile for a block of block_rows probes (the buffer stays near BLOCK_ELEMENTS)."""
    return max(256, BLOCK_ELEMENTS // max(block_rows, 1))


def distractor_tiles(features: np.ndarray, distractors: Distractors, tile_size: int, dtype=np.float64):
    """Yield (first, unit rows (T, d) in dtype, counts (T,)) for consecutive tiles of the distinct distractors,
    normalised on the fly: no unit copy of the whole set is ever held."""
    for first in range(0, len(distractors.rows), tile_size):
        rows = distractors.rows[first : first + tile_size]
        yield first, unit_rows(features[rows], dtype, overwrite=True), distractors.counts[first : first + tile_size]


def _merge_top(values, counts, new_values, new_counts, keep: int):
    """The `keep` largest of two (B, ·) candidate sets, with their counts."""
    values = np.concatenate([values, new_values], axis=1)
    counts = np.concatenate([counts, new_counts], axis=1)
    if values.shape[1] > keep:
        top = np.argpartition(values, values.shape[1] - keep, axis=1)[:, -keep:]
        values = np.take_along_axis(values, top, axis=1)
        counts = np.take_along_axis(counts, top, axis=1)
    return values, counts


def resolve_backend(backend: str, num_products: int) -> str:
    """The backend to use: 'numpy' or 'faiss' ('auto' picks faiss for large searches when it is installed)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    has_faiss = importlib.util.find_spec("faiss") is not None
    if backend == "faiss" and not has_faiss:
        raise ValueError("backend 'faiss' needs the faiss-cpu package, which is not installed")
    if backend == "auto":
        return "faiss" if has_faiss and num_products >= AUTO_FAISS_MIN_PRODUCTS else "numpy"
    return backend


def approximate_kth(
    probe_unit: np.ndarray,
    features: np.ndarray,
    distractors: Distractors,
    ks: Sequence[int],
    *,
    backend: str,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, float]:
    """(kth float64 (P, len(ks)), bound): each probe's k-th largest approximate similarity to the distractors
    (each repeated its count; -inf when fewer than k), and the bound on |approximate − exact cosine|.

    probe_unit float32/float64 (P, d) unit rows (float64 for 'numpy'); features (N, d) raw, of which
    distractors.rows are the distractors.
    The distractors are normalised tile by tile. backend 'numpy' multiplies in float64 by blocks of block_size
    probes × tiles of BLOCK_ELEMENTS / block_size distractors; 'faiss' runs `faiss.knn` (float32 inner product)
    of all probes against tiles of FAISS_TILE distractors. Memory beyond the probes is bounded by the tile and the
    block (plus P × max(ks) candidates), never P × D.
    """
    keep = min(max(ks), len(distractors.rows))  # the max(ks) largest distinct values hold the k-th with repeats
    num_probes, dim = probe_unit.shape
    if keep == 0 or num_probes == 0:
        return np.full((num_probes, len(ks)), -np.inf), 0.0
    best_values = np.empty((num_probes, 0))
    best_counts = np.empty((num_probes, 0), dtype=np.int64)
    if backend == "faiss":
        import faiss

        probes32 = np.ascontiguousarray(probe_unit, dtype=np.float32)
        for _, tile, tile_counts in distractor_tiles(features, distractors, FAISS_TILE, np.float32):
            values, found = faiss.knn(probes32, tile, min(keep, len(tile)), metric=faiss.METRIC_INNER_PRODUCT)
            best_values, best_counts = _merge_top(
                best_values, best_counts, values.astype(np.float64), tile_counts[found], keep
            )
        return _weighted_kth(best_values, best_counts, ks), error_bound(dim, UNIT_ROUNDOFF[np.dtype(np.float32)])
    if backend != "numpy":
        raise ValueError(f"unknown backend {backend!r}; choose 'numpy' or 'faiss'")
    block_size = min(block_size, num_probes)
    best_values = np.full((num_probes, keep), -np.inf)  # each probe's `keep` largest so far, -inf while unfilled
    best_counts = np.zeros((num_probes, keep), dtype=np.int64)
    for _, tile, tile_counts in distractor_tiles(features, distractors, _tile_size(block_size)):
        for start in range(0, num_probes, block_size):
            stop = min(start + block_size, num_probes)
            sims = probe_unit[start:stop] @ tile.T  # (B, T) float64
            _merge_block(best_values[start:stop], best_counts[start:stop], sims, tile_counts)
    return _weighted_kth(best_values, best_counts, ks), error_bound(dim, UNIT_ROUNDOFF[np.dtype(np.float64)])


def _merge_block(best_values: np.ndarray, best_counts: np.ndarray, sims: np.ndarray, tile_counts: np.ndarray):
    """Merge one GEMM block of similarities sims (B, T) into its probes' running `keep` largest (B, keep), in place.

    Only the similarities above a probe's current smallest kept value can enter its set (a value equal to it cannot
    change any k-th largest value for k <= keep), so after the first tiles the block costs one comparison per
    element and a merge of the few values that pass: the search runs at nearly the GEMM's own rate. Where many
    values pass (the first tile), a few hundred columns are merged by argpartition first and their floor filters
    the rest."""
    keep = best_values.shape[1]
    passing = sims > best_values.min(axis=1)[:, None]
    num_passing = np.count_nonzero(passing)
    if num_passing == 0:
        return
    if num_passing * 4 > sims.size:  # dense: many values pass (the first tile)
        head = max(4 * keep, 256)  # merge a few columns densely: the floor they set filters the rest
        if sims.shape[1] > 2 * head:
            _merge_block(best_values, best_counts, sims[:, :head], tile_counts[:head])
            _merge_block(best_values, best_counts, sims[:, head:], tile_counts[head:])
            return
        counts = np.broadcast_to(tile_counts, sims.shape)
        if sims.shape[1] > keep:
            top = np.argpartition(sims, sims.shape[1] - keep, axis=1)[:, -keep:]
            sims, counts = np.take_along_axis(sims, top, axis=1), np.take_along_axis(counts, top, axis=1)
        values, merged = _merge_top(best_values, best_counts, sims, counts, keep)
        best_values[:], best_counts[:] = values, merged
        return
    row, column = np.nonzero(passing)
    touched = np.unique(row)
    group = np.concatenate([np.repeat(touched, keep), row])
    values = np.concatenate([best_values[touched].ravel(), sims[row, column]])
    counts = np.concatenate([best_counts[touched].ravel(), tile_counts[column]])
    order = np.lexsort((-values, group))
    group, values, counts = group[order], values[order], counts[order]
    first = np.searchsorted(group, touched)
    position = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
    kept = position < keep  # every touched probe has at least `keep` entries (its current set)
    best_values[touched] = values[kept].reshape(len(touched), keep)
    best_counts[touched] = counts[kept].reshape(len(touched), keep)


# --------------------------------------------------------------------------------------------------- exact


def exact_kth(
    features: np.ndarray,
    probe_rows: np.ndarray,
    distractors: Distractors,
    lower: np.ndarray,
    ks: Sequence[int],
    *,
    block_size: int = EXACT_BLOCK_SIZE,
) -> np.ndarray:
    """float64 (P, len(ks)): each probe's k-th largest canonical similarity to the distractors (-inf if fewer).

    features (N, d) raw; probe_rows int64 (P,); lower float64 (P,) a lower bound of each probe's canonical
    max(ks)-th similarity. Only the distractors whose float64 similarity reaches lower − (its error) are computed
    canonically, by chunks: memory stays bounded, and the time is that of the few distractors near the k-th (all
    of them only when a submission's distractors are all within ~1e-13 of one another yet not identical).
    """
    dim = features.shape[1]
    slack = 2 * error_bound(dim, UNIT_ROUNDOFF[np.dtype(np.float64)])
    probe_unit = canonical_unit(features[probe_rows])
    fast_unit = unit_rows(features[probe_rows], overwrite=True)
    kth = np.full((len(probe_rows), len(ks)), -np.inf)
    for start in range(0, len(probe_rows), block_size):
        stop = min(start + block_size, len(probe_rows))
        entries_probe, entries_distractor = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        threshold = (lower[start:stop] - slack)[:, None]
        for first, tile, _ in distractor_tiles(features, distractors, _tile_size(stop - start)):
            probe, distractor = np.nonzero(fast_unit[start:stop] @ tile.T >= threshold)
            entries_probe.append(probe + start)
            entries_distractor.append(distractor + first)
        probe = np.concatenate(entries_probe)
        distractor = np.concatenate(entries_distractor)
        if len(probe) == 0:
            continue
        used, inverse = np.unique(distractor, return_inverse=True)
        distractor_canonical = canonical_unit(features[distractors.rows[used]])
        if len(probe) * _DENSE_ADVANTAGE >= (stop - start) * len(used):  # most pairs needed: all of them, densely
            sims = np.empty(len(probe))
            columns = max(1, BLOCK_ELEMENTS // (stop - start))
            for first in range(0, len(used), columns):
                take = (inverse >= first) & (inverse < first + columns)
                block = canonical_block(probe_unit[start:stop], distractor_canonical[first : first + columns])
                sims[take] = block[probe[take] - start, inverse[take] - first]
        else:
            sims = canonical_dot(probe_unit, distractor_canonical, probe, inverse)
        kth[start:stop] = _grouped_kth(probe - start, sims, distractors.counts[distractor], stop - start, ks)
    return kth


def _grouped_kth(group: np.ndarray, values: np.ndarray, counts: np.ndarray, num_groups: int, ks) -> np.ndarray:
    """float64 (num_groups, len(ks)): the weighted k-th largest value of each group (-inf if fewer)."""
    order = np.lexsort((-values, group))
    group, values, counts = group[order], values[order], counts[order]
    starts = np.searchsorted(group, np.arange(num_groups))
    cumulative = np.cumsum(counts)
    before = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0)
    ends = np.searchsorted(group, np.arange(num_groups), side="right")
    out = np.full((num_groups, len(ks)), -np.inf)
    for column, k in enumerate(ks):
        # first position in the group whose cumulative count (from the group's start) reaches k
        position = np.searchsorted(cumulative, before + k, side="left")
        found = position < ends
        out[found, column] = values[position[found]]
    return out
