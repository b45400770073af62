# kernels/linalg.pxi -- the model's f1 and f2: the dot product and the projection.
#
#     dot:      sum_i x[i] * w[i], in double
#     project:  out (B, V) = H (B, k) @ W (k, V)
#
# W is read row by row (long contiguous streams: this product is bound by memory
# bandwidth). ``PROJECT_ROWS`` rows at a time are multiplied and summed in
# ``floating`` registers, and each block sum is added to a double accumulator per
# output: a float32 result then carries the error of PROJECT_ROWS float32 additions
# plus one final rounding, whatever k is (accumulating in float32 all along loses
# ~k eps). Small projections (the blog model's) keep the accumulators in registers
# (project_small), bit for bit the same.

from cython cimport floating

from _defs cimport project_tile

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define tinyllm_prefetch(p) __builtin_prefetch(p)
    #else
    #define tinyllm_prefetch(p) ((void)0)
    #endif
    """
    void prefetch "tinyllm_prefetch"(const void* p) noexcept nogil

cdef extern from *:
    """
    /* a + x * y in double, with one rounding where the target has FMA and two
       elsewhere: spelled out, not left to the compiler's contraction, which depends
       on the optimisation level (a -O1 debug build would round differently). */
    #if defined(__FMA__) || defined(__FP_FAST_FMA) || defined(__ARM_FEATURE_FMA)
    #define tinyllm_madd(x, y, a) __builtin_fma((x), (y), (a))
    #else
    #define tinyllm_madd(x, y, a) ((a) + (x) * (y))
    #endif
    """
    double madd "tinyllm_madd"(double x, double y, double a) noexcept nogil

cdef enum:
    DOT_LANES = 16       # dot's independent partial sums: a few vectors of FMAs in flight
    PROJECT_ROWS = 8     # rows of W summed in registers before the double accumulator
    PREFETCH_STEP = 16   # columns per prefetch: one 64-byte line of float32
    # Columns ahead to prefetch: the best of 256..2048 measured (the hardware
    # prefetcher alone reaches ~75% of it on 8 streams).
    PREFETCH_AHEAD = 512
    SMALL_WIDTH = 16     # projections with up to this many outputs use project_small...
    SMALL_DEPTH = 8      # ...when they sum fewer rows than this (no block of PROJECT_ROWS)


# ---------------------------------------------------------------------------
# dot
# ---------------------------------------------------------------------------
cdef double dot_kernel(const floating* x, const floating* w, Py_ssize_t n) noexcept nogil:
    """sum_i x[i] * w[i], accumulated in double in DOT_LANES partial sums."""
    cdef double s[DOT_LANES]
    cdef Py_ssize_t i, j, body = n - n % DOT_LANES
    for j in range(DOT_LANES):
        s[j] = 0.0
    # Independent lanes: the compiler turns each group into vector FMAs (no
    # reassociation needed, so no -ffast-math).
    for i in range(0, body, 16):   # 16 == DOT_LANES (range() needs a literal step)
        for j in range(DOT_LANES):
            s[j] += <double>x[i + j] * w[i + j]
    for i in range(body, n):
        s[i - body] += <double>x[i] * w[i]
    j = DOT_LANES
    while j > 1:       # pairwise: lane j folds into lane j - half
        j //= 2
        for i in range(j):
            s[i] += s[i + j]
    return s[0]


# ---------------------------------------------------------------------------
# project
# ---------------------------------------------------------------------------
cdef inline void accumulate_rows(const floating* w, Py_ssize_t stride, const floating* c,
                                 double* acc, Py_ssize_t n) noexcept nogil:
    """acc[j] += sum_{r < PROJECT_ROWS} c[r] * w[r * stride + j] for j < n (vectorised over j)."""
    cdef const floating* w0 = w
    cdef const floating* w1 = w + stride
    cdef const floating* w2 = w + 2 * stride
    cdef const floating* w3 = w + 3 * stride
    cdef const floating* w4 = w + 4 * stride
    cdef const floating* w5 = w + 5 * stride
    cdef const floating* w6 = w + 6 * stride
    cdef const floating* w7 = w + 7 * stride
    cdef floating c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3]
    cdef floating c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7]
    cdef Py_ssize_t j, j0
    cdef floating s
    for j0 in range(0, n, 16):   # 16 == PREFETCH_STEP (range() needs a literal step)
        prefetch(w0 + j0 + PREFETCH_AHEAD)
        prefetch(w1 + j0 + PREFETCH_AHEAD)
        prefetch(w2 + j0 + PREFETCH_AHEAD)
        prefetch(w3 + j0 + PREFETCH_AHEAD)
        prefetch(w4 + j0 + PREFETCH_AHEAD)
        prefetch(w5 + j0 + PREFETCH_AHEAD)
        prefetch(w6 + j0 + PREFETCH_AHEAD)
        prefetch(w7 + j0 + PREFETCH_AHEAD)
        for j in range(j0, min(j0 + PREFETCH_STEP, n)):
            # Two chains of four halve the dependency latency; the order is fixed,
            # so a given (row of H, column of W) always gets the same bits.
            s = (c0 * w0[j] + c1 * w1[j] + c2 * w2[j] + c3 * w3[j]) + (
                c4 * w4[j] + c5 * w5[j] + c6 * w6[j] + c7 * w7[j])
            acc[j] += s


cdef inline void accumulate_row(const floating* w, floating c, double* acc,
                                Py_ssize_t n) noexcept nogil:
    """acc[j] += c * w[j] for j < n: the rows after the last full block of PROJECT_ROWS."""
    cdef Py_ssize_t j
    for j in range(n):
        if floating is double:
            acc[j] = madd(c, w[j], acc[j])
        else:
            acc[j] += c * w[j]       # the product rounds in float: nothing to fuse


cdef inline void project_rows(const floating* H, Py_ssize_t B, const floating* W,
                              Py_ssize_t k, Py_ssize_t V, floating* out,
                              double* acc) noexcept nogil:
    """out (B, V) = H (B, k) @ W (k, V); ``acc`` is scratch of project_scratch(B, V) doubles.

    Each tile of W's columns is read once for the whole batch (the batch rows reuse
    it from cache), and every output gets the same operations in the same order
    whatever B is: a batch row equals its single projection bit for bit.
    """
    cdef Py_ssize_t tile = project_tile(B, V), full = k - k % PROJECT_ROWS, j0 = 0, n, i, b, j
    cdef double* a
    while j0 < V:
        n = tile if j0 + tile <= V else V - j0
        for j in range(B * n):
            acc[j] = 0.0
        for i in range(0, full, 8):   # 8 == PROJECT_ROWS (range() needs a literal step)
            for b in range(B):
                accumulate_rows(W + i * V + j0, V, H + b * k + i, acc + b * n, n)
        for i in range(full, k):
            for b in range(B):
                accumulate_row(W + i * V + j0, H[b * k + i], acc + b * n, n)
        for b in range(B):
            a = acc + b * n
            for j in range(n):
                out[b * V + j0 + j] = <floating>a[j]
        j0 += tile


cdef inline void project_small(const floating* H, const floating* W, Py_ssize_t k,
                               Py_ssize_t V, floating* out) noexcept nogil:
    """out (V,) = H (k,) @ W (k, V) for k < PROJECT_ROWS, bit for bit as project_rows.

    project_rows with B = 1 and k < PROJECT_ROWS adds the rows one by one to a double
    accumulator per output (``acc[j] += c * w[j]``: the product in ``floating``,
    fused with the sum in double where the target has FMA), then rounds once. The
    same here, in the same order; only the accumulator moves: a register here,
    memory there, where each row waits for the store of the last.
    """
    cdef Py_ssize_t i, j
    cdef double a
    for j in range(V):
        a = 0.0
        for i in range(k):
            if floating is double:
                a = madd(H[i], W[i * V + j], a)
            else:
                a += H[i] * W[i * V + j]     # a float product: nothing to fuse
        out[j] = <floating>a


cdef inline void project_one(const floating* h, const floating* W, Py_ssize_t k, Py_ssize_t V,
                             floating* out, double* acc) noexcept nogil:
    """out (V,) = h (k,) @ W (k, V): project_small where it applies, else project_rows."""
    if V <= SMALL_WIDTH and k < SMALL_DEPTH:
        project_small(h, W, k, V, out)
    else:
        project_rows(h, 1, W, k, V, out, acc)


cdef bint project_checked(const floating* H, Py_ssize_t B, const floating* W, Py_ssize_t k,
                          Py_ssize_t V, floating* out, double* acc) noexcept nogil:
    """out (B, V) = H (B, k) @ W (k, V); False if a result is not finite."""
    project_rows(H, B, W, k, V, out, acc)
    return row_all_finite(out, B * V)
