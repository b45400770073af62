# cython: language_level=3
"""The projection kernel, shared by tinyllm._linalg (``project``) and
tinyllm._sampling (the generation loop).

Only ``inline`` functions live here, so cimporting this file creates no runtime
import: each ``.pyx`` that uses it compiles its own copy.

    out (B, V) = H (B, k) @ W (k, V)

W is read row by row (long contiguous streams: this product is bound by memory
bandwidth). ``ROWS`` rows at a time are multiplied and summed in ``floating``
registers, and each block sum is added to a double accumulator per output: a
float32 result then carries the error of ``ROWS`` float32 additions plus one final
rounding, whatever k is (accumulating in float32 all along loses ~k eps).
"""

from cython cimport floating

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
    ROWS = 8             # rows of W summed in registers before the double accumulator
    TILE = 16384         # columns per pass: the accumulators (B * tile doubles) stay in L2
    CHUNK = 16           # columns per prefetch: one 64-byte line of float32
    AHEAD = 512          # columns ahead to prefetch: the best of 256..2048 measured (the
                         # hardware prefetcher alone reaches ~75% of it on 8 streams)


cdef inline void accumulate_rows(const floating* w, Py_ssize_t stride, const floating* c,
                                 double* acc, Py_ssize_t n) noexcept nogil:
    """acc[j] += sum_{r < ROWS} c[r] * w[r * stride + j] for j < n (vectorised over j)."""
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
    for j0 in range(0, n, 16):   # 16 == CHUNK (range() needs a literal step)
        prefetch(w0 + j0 + AHEAD)
        prefetch(w1 + j0 + AHEAD)
        prefetch(w2 + j0 + AHEAD)
        prefetch(w3 + j0 + AHEAD)
        prefetch(w4 + j0 + AHEAD)
        prefetch(w5 + j0 + AHEAD)
        prefetch(w6 + j0 + AHEAD)
        prefetch(w7 + j0 + AHEAD)
        for j in range(j0, min(j0 + CHUNK, n)):
            # Two chains of four halve the dependency latency; the order is fixed,
            # so a given (row of H, column of W) always gets the same bits.
            s = (c0 * w0[j] + c1 * w1[j] + c2 * w2[j] + c3 * w3[j]) + (
                c4 * w4[j] + c5 * w5[j] + c6 * w6[j] + c7 * w7[j])
            acc[j] += s


cdef inline void accumulate_row(const floating* w, floating c, double* acc,
                                Py_ssize_t n) noexcept nogil:
    """acc[j] += c * w[j] for j < n: the rows after the last full block of ROWS."""
    cdef Py_ssize_t j
    for j in range(n):
        if floating is double:
            acc[j] = madd(c, w[j], acc[j])
        else:
            acc[j] += c * w[j]       # the product rounds in float: nothing to fuse


cdef inline Py_ssize_t project_tile(Py_ssize_t B, Py_ssize_t V) noexcept nogil:
    """Columns per pass: all of them for one row, fewer for a batch (B * tile doubles)."""
    cdef Py_ssize_t tile = TILE // B if B > 1 else TILE
    if tile < 256:
        tile = 256
    return tile if tile < V else V


cdef inline void project_rows(const floating* H, Py_ssize_t B, const floating* W,
                              Py_ssize_t k, Py_ssize_t V, floating* out,
                              double* acc) noexcept nogil:
    """out (B, V) = H (B, k) @ W (k, V); ``acc`` is scratch of B * project_tile(B, V) doubles.

    Each tile of W's columns is read once for the whole batch (the batch rows reuse
    it from cache), and every output gets the same operations in the same order
    whatever B is: a batch row equals its single projection bit for bit.
    """
    cdef Py_ssize_t tile = project_tile(B, V), full = k - k % ROWS, j0 = 0, n, i, b, j
    cdef double* a
    while j0 < V:
        n = tile if j0 + tile <= V else V - j0
        for j in range(B * n):
            acc[j] = 0.0
        for i in range(0, full, 8):   # 8 == ROWS (range() needs a literal step)
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
