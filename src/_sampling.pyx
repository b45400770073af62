"""Drawing the next token: from weights, or from logits through temperature, top-k,
top-p (nucleus) and min-p filters.

    sample:         P(i) = w_i / sum_j w_j
    sample_logits:  P(i) = e_i / sum_{j kept} e_j,   e_i = exp((x_i - max_j x_j) / T)

The filters run in Hugging Face transformers' order, each on the renormalised
result of the previous one. Tokens are ranked by logit, ties to the lower index.

    temperature 0  the argmax alone (greedy; ties to the lowest index)
    top-k          the k best-ranked tokens
    top-p          the best-ranked tokens, in order, until their mass reaches >= p
    min-p          the tokens with P(i) >= min_p * max_j P(j)

No stage sorts the vocabulary: top-k keeps a heap of k candidates (O(V log k));
top-p finds, with threshold passes, a prefix of the ranking that holds mass p,
heapifies it and pops only the nucleus (O(V + c + m log c) for c candidates and
a nucleus of m tokens; c = V at worst); min-p is a threshold pass. The nucleus is
popped in rank order, so its cumulative sum is exactly the one of the documented
walk (and of tinyllm.reference). Sampling builds a cumulative
table once per row, in double also for float32, and binary-searches it once per
draw: ``size`` draws cost O(V + size log V), not O(size V).

Random numbers come from a NumPy Generator: the kernels call its bit generator's
``next_double`` through the ``bitgen_t`` of its capsule, inside
``with bit_generator.lock, nogil:`` (NumPy's documented pattern for Cython,
``numpy/random/_examples/cython/extending.pyx``). One uniform double per draw, so
a seed gives the same tokens in every run and process, and one Generator can be
shared by threads.

Layout: ``noexcept nogil`` kernels in data-flow order (input checks, ranking and
heaps, the filters, the cumulative table and the draws, whole batches), then the
Python-facing entry points that validate, coerce and call them.
"""

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport INFINITY, exp, isfinite, isinf, isnan
from libc.stdint cimport int64_t
from numpy.random cimport bitgen_t

from _common cimport (
    FOUND_NAN,
    FOUND_POSINF,
    NO_FINITE,
    OK,
    as_float_array,
    as_typed_rows,
    checked_out,
    may_share_memory,
    new_array,
    shape_of,
)

import numbers
import sys
from operator import index as operator_index

import numpy as np

cnp.import_array()

# Statuses of this module's kernels, beyond the shared ones in _common.Status.
cdef enum:
    FOUND_NEGATIVE = 10   # a weight < 0 (-inf included)
    ZERO_SUM = 11         # a row of weights that are all zero
    SUM_OVERFLOW = 12     # a row of finite weights whose sum overflows
    RESULT_OVERFLOW = 13  # filter_logits: logits / temperature overflows the dtype

# Removed tokens are marked with this weight (kept ones have weights >= 0).
cdef double REMOVED = -1.0


# ===========================================================================
# Kernels: input checks (a pass over everything before any draw, so a bad row
# never leaves the Generator half-advanced)
# ===========================================================================

cdef int check_weights(const floating[:, ::1] w, Py_ssize_t* bad_row) noexcept nogil:
    """Every row finite, >= 0, with a positive sum that fits in a double."""
    cdef Py_ssize_t r, i
    cdef double v, total
    for r in range(w.shape[0]):
        bad_row[0] = r
        total = 0.0
        for i in range(w.shape[1]):
            v = w[r, i]
            if isnan(v):
                return FOUND_NAN
            if v == INFINITY:
                return FOUND_POSINF
            if v < 0.0:
                return FOUND_NEGATIVE
            total += v
        if total == 0.0:
            return ZERO_SUM
        if total == INFINITY:
            return SUM_OVERFLOW
    return OK


cdef int check_logits(const floating[:, ::1] x, Py_ssize_t* bad_row) noexcept nogil:
    """Every row free of NaN and +inf, with at least one entry > -inf."""
    cdef Py_ssize_t r, i
    cdef double v
    cdef bint any_finite
    for r in range(x.shape[0]):
        bad_row[0] = r
        any_finite = False
        for i in range(x.shape[1]):
            v = x[r, i]
            if isnan(v):
                return FOUND_NAN
            if v == INFINITY:
                return FOUND_POSINF
            if v != -INFINITY:
                any_finite = True
        if not any_finite:
            return NO_FINITE
    return OK


# ===========================================================================
# Kernels: ranking and binary heaps of token indices
# ===========================================================================

cdef inline bint ranks_before(const floating* x, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Token a ranks before token b: a higher logit, or the same and a lower index."""
    return x[a] > x[b] or (x[a] == x[b] and a < b)


cdef inline bint heap_above(const floating* x, Py_ssize_t a, Py_ssize_t b,
                            bint best_first) noexcept nogil:
    """In a best-first heap the better token sits above; in a worst-first, the worse."""
    return ranks_before(x, a, b) if best_first else ranks_before(x, b, a)


cdef void sift_down(const floating* x, Py_ssize_t* heap, Py_ssize_t n, Py_ssize_t pos,
                    bint best_first) noexcept nogil:
    """Move heap[pos] down until both children are below it."""
    cdef Py_ssize_t item = heap[pos], child
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and heap_above(x, heap[child + 1], heap[child], best_first):
            child += 1
        if not heap_above(x, heap[child], item, best_first):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


cdef void heapify(const floating* x, Py_ssize_t* heap, Py_ssize_t n,
                  bint best_first) noexcept nogil:
    """Floyd's bottom-up heap construction: O(n)."""
    cdef Py_ssize_t pos
    for pos in range(n // 2 - 1, -1, -1):
        sift_down(x, heap, n, pos, best_first)


# ===========================================================================
# Kernels: the filters. ``e`` holds one weight per token: exp((x_i - m) / T) for a
# kept token (>= 0; 0 where it underflows), REMOVED for a dropped or masked one.
# ===========================================================================

cdef void remove_after(const floating* x, double* e, Py_ssize_t n,
                       Py_ssize_t last) noexcept nogil:
    """Threshold pass: drop every kept token that ranks after token ``last``."""
    cdef Py_ssize_t i
    for i in range(n):
        if e[i] >= 0.0 and ranks_before(x, last, i):
            e[i] = REMOVED


cdef void keep_top_k(const floating* x, double* e, Py_ssize_t n, Py_ssize_t k,
                     Py_ssize_t* heap) noexcept nogil:
    """Keep the k best-ranked tokens (k < number kept): a worst-first heap of k
    candidates whose root, at the end, is the k-th best. O(n log k)."""
    cdef Py_ssize_t i, count = 0
    for i in range(n):
        if e[i] < 0.0:
            continue
        if count < k:
            heap[count] = i
            count += 1
            if count == k:
                heapify(x, heap, k, False)
        elif ranks_before(x, i, heap[0]):
            heap[0] = i
            sift_down(x, heap, k, 0, False)
    remove_after(x, e, n, heap[0])


cdef double kept_mass(const double* e, Py_ssize_t n) noexcept nogil:
    """sum of the kept weights, in index order (the reference sums the same way)."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    for i in range(n):
        if e[i] > 0.0:
            total += e[i]
    return total


cdef bint walk_nucleus(const floating* x, const double* e, Py_ssize_t* heap,
                       Py_ssize_t count, double total, double p,
                       Py_ssize_t* last) noexcept nogil:
    """Pop heap[0:count] best-first, adding e_i / total, until the sum is >= p.

    ``last`` is the last token taken; returns False if the candidates ran out first.
    """
    cdef double mass = 0.0
    heapify(x, heap, count, True)
    while True:
        last[0] = heap[0]
        mass += e[last[0]] / total
        if mass >= p:
            return True
        count -= 1
        if count == 0:
            return False
        heap[0] = heap[count]
        sift_down(x, heap, count, 0, True)


cdef void keep_top_p(const floating* x, double* e, Py_ssize_t n, double p,
                     Py_ssize_t* heap) noexcept nogil:
    """Keep the best-ranked tokens, in rank order, until their probability reaches
    >= p. The nucleus is walked in rank order on a heap of candidates: the tokens
    with e_i >= cut, which are a prefix of the ranking (e grows with the logit).
    A cheap pass tries cuts 2^-4, 2^-12, 2^-32 (e_max = 1) until the candidates
    hold mass p; cut 0 takes every kept token. So a small nucleus costs a few
    passes over the vocabulary plus a heap of a few tokens."""
    cdef Py_ssize_t i, count, last = 0
    cdef double total = kept_mass(e, n), mass, cut
    cdef int attempt
    for attempt in range(4):
        cut = 0.0625 if attempt == 0 else 2.0 ** -12 if attempt == 1 else 2.0 ** -32 if attempt == 2 else 0.0
        count = 0
        mass = 0.0
        for i in range(n):
            if e[i] >= cut:
                heap[count] = i
                count += 1
                mass += e[i]
        # The walk decides; the mass test only skips hopeless heaps. If rounding
        # makes a walk run out, the next cut repeats it on more candidates.
        if cut == 0.0 or mass >= p * total:
            if walk_nucleus(x, e, heap, count, total, p, &last) or cut == 0.0:
                break   # at cut 0, running out means rounding kept the mass below p: keep all
    remove_after(x, e, n, last)


cdef void keep_min_p(double* e, Py_ssize_t n, double min_p) noexcept nogil:
    """Keep the tokens with P(i) >= min_p * max_j P(j): two threshold passes."""
    cdef Py_ssize_t i
    cdef double total = kept_mass(e, n), top = 0.0, q, threshold
    for i in range(n):
        if e[i] >= 0.0:
            q = e[i] / total
            if q > top:
                top = q
    threshold = min_p * top
    for i in range(n):
        if e[i] >= 0.0 and e[i] / total < threshold:
            e[i] = REMOVED


cdef Py_ssize_t filter_row(const floating* x, Py_ssize_t n, double temperature,
                           Py_ssize_t top_k, double top_p, double min_p,
                           double* e, Py_ssize_t* heap) noexcept nogil:
    """e[0:n] = the weights of row x[0:n] after the filters; returns the argmax.

    The row must be checked (no NaN or +inf, one entry > -inf). ``top_k`` 0,
    ``top_p`` 1 and ``min_p`` 0 switch a filter off; temperature 0 keeps the argmax.
    """
    cdef Py_ssize_t i, best = 0, n_finite = 0
    cdef double m = -INFINITY
    for i in range(n):
        if x[i] > m:
            m = x[i]
            best = i
        if x[i] != -INFINITY:
            n_finite += 1
            e[i] = 0.0
        else:
            e[i] = REMOVED
    if temperature == 0.0:
        for i in range(n):
            e[i] = REMOVED
        e[best] = 1.0
        return best
    # top-k ranks by logit: it runs before the exponentials, so only k are computed.
    if 0 < top_k < n_finite:
        keep_top_k(x, e, n, top_k, heap)
    for i in range(n):
        if e[i] >= 0.0:
            e[i] = exp((x[i] - m) / temperature)     # (x - m) <= 0: no overflow
    if top_p < 1.0:
        keep_top_p(x, e, n, top_p, heap)
    if min_p > 0.0:
        keep_min_p(e, n, min_p)
    return best


# ===========================================================================
# Kernels: the cumulative table and the draws
# ===========================================================================

cdef Py_ssize_t cumulate(double* e, Py_ssize_t n) noexcept nogil:
    """In place: e[i] = sum of the positive weights e[0..i]. Returns the last token
    with a positive weight (the total is then e[n - 1])."""
    cdef Py_ssize_t i, last = 0
    cdef double running = 0.0
    for i in range(n):
        if e[i] > 0.0:
            running += e[i]
            last = i
        e[i] = running
    return last


cdef inline Py_ssize_t search_cumulative(const double* cum, Py_ssize_t n,
                                         double r) noexcept nogil:
    """The smallest i with cum[i] > r (cum non-decreasing), or n: binary search.

    A token of weight 0 is never returned: its cum equals its predecessor's.
    """
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if cum[mid] > r:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef void draw(const double* cum, Py_ssize_t n, Py_ssize_t last, bitgen_t* rng,
               int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """out[0:n_draws] = tokens drawn from the cumulative table: one double each."""
    cdef Py_ssize_t d, i
    cdef double total = cum[n - 1]
    for d in range(n_draws):
        i = search_cumulative(cum, n, rng.next_double(rng.state) * total)
        # u < 1, but u * total can round up to total: the last positive token then.
        out[d] = i if i <= last else last


# ===========================================================================
# Kernels: whole batches (rows of a C-contiguous matrix, one scratch row)
# ===========================================================================

cdef void sample_rows(const floating[:, ::1] w, double* cum, bitgen_t* rng,
                      int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws tokens per checked row of weights, into out (B, n_draws)."""
    cdef Py_ssize_t r, i, n = w.shape[1], last
    for r in range(w.shape[0]):
        for i in range(n):
            cum[i] = w[r, i]
        last = cumulate(cum, n)
        draw(cum, n, last, rng, out + r * n_draws, n_draws)


cdef void sample_logits_rows(const floating[:, ::1] x, double temperature,
                             Py_ssize_t top_k, double top_p, double min_p,
                             double* e, Py_ssize_t* heap, bitgen_t* rng,
                             int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws filtered tokens per checked row of logits, into out (B, n_draws).
    Temperature 0 draws nothing (``rng`` may be NULL): every token is the argmax."""
    cdef Py_ssize_t r, d, n = x.shape[1], best, last
    for r in range(x.shape[0]):
        best = filter_row(&x[r, 0], n, temperature, top_k, top_p, min_p, e, heap)
        if temperature == 0.0:
            for d in range(n_draws):
                out[r * n_draws + d] = best
            continue
        last = cumulate(e, n)
        draw(e, n, last, rng, out + r * n_draws, n_draws)


cdef int filter_logits_rows(const floating[:, ::1] x, double temperature,
                            Py_ssize_t top_k, double top_p, double min_p,
                            double* e, Py_ssize_t* heap, floating[:, ::1] out,
                            Py_ssize_t* bad_row) noexcept nogil:
    """out = x / T where the filters keep a token, -inf elsewhere (T = 0: x itself at
    the argmax). Each row is read whole before it is written: out may be x."""
    cdef Py_ssize_t r, i, n = x.shape[1]
    cdef floating v
    for r in range(x.shape[0]):
        filter_row(&x[r, 0], n, temperature, top_k, top_p, min_p, e, heap)
        for i in range(n):
            if e[i] < 0.0:
                out[r, i] = -INFINITY
                continue
            v = <floating>(x[r, i] if temperature == 0.0 else x[r, i] / temperature)
            if isinf(v):
                bad_row[0] = r
                return RESULT_OVERFLOW
            out[r, i] = v
    return OK


# ===========================================================================
# Entry points: argument checks
# ===========================================================================

cpdef object as_generator(object rng, str func="as_generator"):
    """The ``rng`` argument as a Generator: None -> fresh entropy, an int >= 0 ->
    ``numpy.random.default_rng(seed)``, a Generator as it is; else TypeError.

    Callers that draw several times from one ``rng`` (the model's generation loop)
    turn it into a Generator once with this; ``func`` names them in error messages.
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{func}: an rng seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{func}: rng must be None, an int seed or a numpy.random.Generator, "
        f"got {type(rng).__name__}"
    )


cdef double as_real(object value, str name, str func) except? -1.0:
    """A real number as a double (strings are not numbers here)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}") from None


cdef double checked_temperature(object temperature, str func) except -1.0:
    cdef double t = as_real(temperature, "temperature", func)
    if not (t >= 0.0 and isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and >= 0, got {temperature!r}")
    return t


cdef Py_ssize_t checked_top_k(object top_k, str func) except -1:
    """The k of top-k, or 0 for None."""
    if top_k is None:
        return 0
    if isinstance(top_k, (bool, np.bool_)):
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}")
    try:
        k = operator_index(top_k)
    except TypeError:
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}") from None
    if k < 1:
        raise ValueError(f"{func}: top_k must be >= 1, got {k}")
    return min(k, sys.maxsize)


cdef double checked_top_p(object top_p, str func) except -1.0:
    """The p of top-p, or 1 (keep all) for None."""
    if top_p is None:
        return 1.0
    cdef double p = as_real(top_p, "top_p", func)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"{func}: top_p must be in (0, 1], got {top_p!r}")
    return p


cdef double checked_min_p(object min_p, str func) except -1.0:
    """The min_p of min-p, or 0 (keep all) for None."""
    if min_p is None:
        return 0.0
    cdef double p = as_real(min_p, "min_p", func)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{func}: min_p must be in [0, 1], got {min_p!r}")
    return p


cdef object checked_size(object size, str func):
    """None, or the shape of the draws as a tuple of ints >= 0."""
    if size is None:
        return None
    if isinstance(size, (tuple, list)):
        items = size
    else:
        items = (size,)
    shape = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{func}: size must be an int or a tuple of ints, got {size!r}")
        try:
            dim = operator_index(item)
        except TypeError:
            raise TypeError(
                f"{func}: size must be an int or a tuple of ints, got {size!r}"
            ) from None
        if dim < 0:
            raise ValueError(f"{func}: size must not be negative, got {size!r}")
        shape.append(dim)
    return tuple(shape)


cdef cnp.ndarray checked_rows(object values, str name, str func):
    """``values`` as a float32/float64 array of shape (V,) or (B, V), V and B >= 1."""
    cdef cnp.ndarray arr = as_float_array(values, f"{func}: {name}")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{func}: {name} must have shape (V,) or (B, V), got shape {shape_of(arr)}"
        )
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty (shape {shape_of(arr)})")
    return arr


cdef str first_bad(cnp.ndarray arr, object mask, str name):
    """'name[i] is v' for the first True entry of ``mask``."""
    first = tuple(np.argwhere(mask)[0].tolist())
    return f"{name}[{', '.join(map(str, first))}] is {arr[first]}"


cdef str where_row(cnp.ndarray arr, Py_ssize_t row):
    return "" if arr.ndim == 1 else f" (row {row})"


cdef str weights_message(int status, cnp.ndarray w, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF or status == FOUND_NEGATIVE:
        bad = np.isnan(w) | (w == np.inf) | (w < 0)
        return f"sample: {first_bad(w, bad, 'weights')}; weights must be finite and >= 0"
    if status == ZERO_SUM:
        return f"sample: the weights are all zero{where_row(w, row)}; their sum must be > 0"
    return (f"sample: the sum of the weights overflows{where_row(w, row)}; "
            f"scale them down")


cdef str logits_message(str func, int status, cnp.ndarray x, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF:
        bad = first_bad(x, np.isnan(x) | (x == np.inf), "logits")
        return f"{func}: {bad}; logits must be finite, or -inf to mask a token"
    if status == NO_FINITE:
        return (f"{func}: every logit is -inf{where_row(x, row)}; "
                f"at least one token must be allowed")
    return (f"{func}: logits / temperature overflows {x.dtype}{where_row(x, row)}; "
            f"use a larger temperature")


cdef object shaped_draws(cnp.ndarray tokens, bint batched, object size):
    """Draws (B, prod(size)) as the result: an int, or an int64 array."""
    if size is None:
        return tokens.reshape(-1) if batched else int(tokens[0, 0])
    return tokens.reshape(((<object>tokens).shape[0],) + size if batched else size)


cdef Py_ssize_t draws_per_row(object size):
    cdef Py_ssize_t n = 1
    if size is not None:
        for dim in size:
            n *= <Py_ssize_t>dim
    return n


# ===========================================================================
# Entry points
# ===========================================================================

def sample(weights, size=None, rng=None):
    """Draw token indices with probability proportional to ``weights``.

    Like ``random.choices(range(V), weights)`` or ``torch.multinomial``: the weights
    need not sum to 1. The cumulative table of a row is built once (in double,
    also for float32) and binary-searched once per draw, so ``size`` draws cost
    O(V + size log V).

    Parameters
    ----------
    weights : array_like, shape (V,) or (B, V)
        Non-negative, finite weights with a positive sum per row. float32 and
        float64 are read as they are, other real dtypes as float64.
    size : int or tuple of ints, optional
        Draws per distribution. None: one draw, returned as an int for 1-D
        ``weights``, or one per row for 2-D.
    rng : None, int or numpy.random.Generator, optional
        The random stream. An int seeds ``numpy.random.default_rng(seed)``: the
        same seed gives the same tokens in every run and process. None takes fresh
        entropy. A Generator is advanced by one double per draw (and may be shared
        by threads).

    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``weights`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D weights), ``(B,)`` or ``(B,) + size`` (2-D weights).

    Raises
    ------
    ValueError
        Empty weights or not 1-D/2-D, a NaN, infinite or negative weight, a row
        of zeros or whose sum overflows, a negative ``size``, a negative seed.
    TypeError
        A complex, object or non-real dtype; a ``size`` or ``rng`` of another type.

    Examples
    --------
    >>> from tinyllm._sampling import sample
    >>> probs = [0.4981509447, 0.0823437973, 0.3021438211, 0.0499440377, 0.0674173992]
    >>> token = sample(probs, rng=0)
    >>> sample(probs, size=(2, 3), rng=0).shape
    (2, 3)
    """
    cdef cnp.ndarray wa = checked_rows(weights, "weights", "sample")
    shape = checked_size(size, "sample")
    gen = as_generator(rng, "sample")
    cdef int typenum = cnp.PyArray_TYPE(wa)
    cdef Py_ssize_t V = wa.shape[wa.ndim - 1]
    rows = as_typed_rows(wa, typenum).reshape(-1, V)
    cdef Py_ssize_t B = rows.shape[0], n_draws = draws_per_row(shape)

    cdef const float[:, ::1] w32
    cdef const double[:, ::1] w64
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        w32 = rows
        with nogil:
            status = check_weights(w32, &bad_row)
    else:
        w64 = rows
        with nogil:
            status = check_weights(w64, &bad_row)
    if status != OK:
        raise ValueError(weights_message(status, wa, bad_row))

    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef double[::1] cum = np.empty(V, dtype=np.float64)
    bit_generator = gen.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    if n_draws:
        if typenum == cnp.NPY_FLOAT:
            with bit_generator.lock, nogil:
                sample_rows(w32, &cum[0], bitgen, out, n_draws)
        else:
            with bit_generator.lock, nogil:
                sample_rows(w64, &cum[0], bitgen, out, n_draws)
    return shaped_draws(tokens, wa.ndim == 2, shape)


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None,
                  size=None, rng=None):
    """Draw tokens from ``softmax(logits / temperature)`` after top-k, top-p, min-p.

    The filters run in Hugging Face transformers' order (temperature, top-k,
    top-p, min-p), each on the renormalised result of the previous one; tokens
    are ranked by logit, ties to the lower index. No probability array is built
    in Python and the vocabulary is never fully sorted. :func:`filter_logits`
    returns the support that these draws come from.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token. ``-inf`` masks a token; NaN and +inf are errors.
        float32 and float64 are read as they are, other real dtypes as float64.
    temperature : float, default 1.0
        Divides the logits: < 1 sharpens, > 1 flattens. 0 is greedy: the argmax,
        ties to the lowest index (the Generator is then not advanced).
    top_k : int, optional
        Keep the k highest logits (exactly k; ties to the lower index).
    top_p : float in (0, 1], optional
        Keep the smallest set of best-ranked tokens whose probability reaches
        >= top_p (at least one token; 1 keeps all).
    min_p : float in [0, 1], optional
        Keep the tokens with probability >= min_p times the largest one.
    size : int or tuple of ints, optional
        Draws per row, as in :func:`sample`.
    rng : None, int or numpy.random.Generator, optional
        The random stream, as in :func:`sample` (one double per draw).

    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``logits`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D logits), ``(B,)`` or ``(B,) + size`` (2-D logits).

    Raises
    ------
    ValueError
        Empty logits or not 1-D/2-D, NaN or +inf logits, a row that is all -inf,
        a temperature < 0, NaN or inf, ``top_k`` < 1, ``top_p`` outside (0, 1],
        ``min_p`` outside [0, 1], a negative ``size``, a negative seed.
    TypeError
        A complex, object or non-real dtype; a non-integer ``top_k``; a ``size``
        or ``rng`` of another type.

    Examples
    --------
    >>> from tinyllm._sampling import sample_logits
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], temperature=0)
    0
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], top_k=2, size=4, rng=0).shape
    (4,)
    """
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "sample_logits")
    cdef double t = checked_temperature(temperature, "sample_logits")
    cdef Py_ssize_t k = checked_top_k(top_k, "sample_logits")
    cdef double p = checked_top_p(top_p, "sample_logits")
    cdef double mp = checked_min_p(min_p, "sample_logits")
    shape = checked_size(size, "sample_logits")
    gen = as_generator(rng, "sample_logits")
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = as_typed_rows(xa, typenum).reshape(-1, V)
    cdef Py_ssize_t B = rows.shape[0], n_draws = draws_per_row(shape)

    cdef const float[:, ::1] x32
    cdef const double[:, ::1] x64
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        x32 = rows
        with nogil:
            status = check_logits(x32, &bad_row)
    else:
        x64 = rows
        with nogil:
            status = check_logits(x64, &bad_row)
    if status != OK:
        raise ValueError(logits_message("sample_logits", status, xa, bad_row))

    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef double[::1] e = np.empty(V, dtype=np.float64)
    cdef Py_ssize_t[::1] heap = np.empty(V, dtype=np.intp)
    cdef bitgen_t* bitgen = NULL
    if n_draws == 0:
        pass
    elif t == 0.0:
        # Greedy: nothing random, no lock.
        if typenum == cnp.NPY_FLOAT:
            with nogil:
                sample_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], NULL, out, n_draws)
        else:
            with nogil:
                sample_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], NULL, out, n_draws)
    else:
        bit_generator = gen.bit_generator
        bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
        if typenum == cnp.NPY_FLOAT:
            with bit_generator.lock, nogil:
                sample_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], bitgen, out, n_draws)
        else:
            with bit_generator.lock, nogil:
                sample_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], bitgen, out, n_draws)
    return shaped_draws(tokens, xa.ndim == 2, shape)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, out=None):
    """The logits that :func:`sample_logits` draws from: ``logits / temperature``
    where the filters keep a token, ``-inf`` where they remove it.

    ``softmax`` of the result is the distribution of the draws; its finite entries
    are the support. Useful to show what each filter does, and to test support
    sets exactly.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token (dtype rules and ``-inf`` masks as in
        :func:`sample_logits`).
    temperature, top_k, top_p, min_p
        As in :func:`sample_logits`. With temperature 0 only the argmax is kept,
        with its logit unscaled.
    out : ndarray, optional
        Writable array of the logits' shape and result dtype to write into (may be
        the logits array itself).

    Returns
    -------
    ndarray, shape (V,) or (B, V)
        float32 for float32 logits, else float64; ``out`` if given.

    Raises
    ------
    ValueError
        As :func:`sample_logits`; also when ``logits / temperature`` overflows the
        dtype, or an unsuitable ``out``.
    TypeError
        As :func:`sample_logits`.

    Examples
    --------
    >>> from tinyllm._sampling import filter_logits
    >>> filter_logits([2.0, 1.0, 0.5, -1.0], top_k=2)
    array([  2.,   1., -inf, -inf])
    """
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "filter_logits")
    cdef double t = checked_temperature(temperature, "filter_logits")
    cdef Py_ssize_t k = checked_top_k(top_k, "filter_logits")
    cdef double p = checked_top_p(top_p, "filter_logits")
    cdef double mp = checked_min_p(min_p, "filter_logits")
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef tuple shape = shape_of(xa)
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = as_typed_rows(xa, typenum).reshape(-1, V)

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, "filter_logits")
    )
    # Write in place when ``result`` is C-contiguous and either is the input's own
    # memory or shares none of it; otherwise through a scratch copy.
    cdef cnp.ndarray target = result
    if not (cnp.PyArray_IS_C_CONTIGUOUS(result) and cnp.PyArray_ISALIGNED(result)) or (
        out is not None and may_share_memory(result, rows)
        and cnp.PyArray_DATA(result) != cnp.PyArray_DATA(rows)
    ):
        target = new_array(shape, typenum)
    target_rows = target.reshape(-1, V)

    cdef const float[:, ::1] x32
    cdef float[:, ::1] o32
    cdef const double[:, ::1] x64
    cdef double[:, ::1] o64
    cdef double[::1] e = np.empty(V, dtype=np.float64)
    cdef Py_ssize_t[::1] heap = np.empty(V, dtype=np.intp)
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        x32, o32 = rows, target_rows
        with nogil:
            status = check_logits(x32, &bad_row)
            if status == OK:
                status = filter_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], o32, &bad_row)
    else:
        x64, o64 = rows, target_rows
        with nogil:
            status = check_logits(x64, &bad_row)
            if status == OK:
                status = filter_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], o64, &bad_row)
    if status != OK:
        raise ValueError(logits_message("filter_logits", status, xa, bad_row))
    if target is not result:
        result[...] = target
    return result
