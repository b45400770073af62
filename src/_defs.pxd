# cython: language_level=3
"""What the kernels and the entry points both speak: status codes, shared constants,
and the structs that travel from an entry point to a kernel.

Declarations and a few inline size helpers: cimporting it costs nothing at run time.
"""

from libc.stdint cimport int32_t, int64_t
from numpy.random cimport bitgen_t


# Weights packed in panels for f2 and f1, in one of four formats (kernels/packed.h).
cdef extern from "kernels/packed.h":
    enum:
        TINYLLM_PANEL
        TINYLLM_WIDE_PANEL
        TINYLLM_INT8_GROUP
        TINYLLM_FORMAT_F32
        TINYLLM_FORMAT_F16
        TINYLLM_FORMAT_BF16
        TINYLLM_FORMAT_I8
    ctypedef struct tinyllm_packed:
        int format
        const void* panels
        const float* scales
        const int32_t* column_sums
        Py_ssize_t k, n, n_panels, k_groups
    Py_ssize_t packed_scratch "tinyllm_packed_scratch"(const tinyllm_packed* W,
                                                       Py_ssize_t B) noexcept nogil


# ---------------------------------------------------------------------------
# Status codes. A ``noexcept nogil`` kernel cannot raise: it returns what it found,
# and the entry point turns that into a ValueError naming the bad value.
# ---------------------------------------------------------------------------
cdef enum Status:
    OK = 0
    FOUND_NAN = 1          # a NaN in the input
    FOUND_POSINF = 2       # a +inf in the input (for logits -inf is a mask, +inf is not)
    NO_FINITE = 3          # a row of logits that are all -inf
    NOT_FINITE = 4         # a non-finite result (NaN/inf in the inputs, or overflow)
    FOUND_NEGATIVE = 5     # a weight < 0 (-inf included)
    ZERO_SUM = 6           # a row of weights that are all zero
    SUM_OVERFLOW = 7       # a row of finite weights whose sum overflows
    RESULT_OVERFLOW = 8    # filter_logits: logits / temperature overflows the dtype


# ---------------------------------------------------------------------------
# Constants that entry points and kernels share
# ---------------------------------------------------------------------------
cdef enum:
    # Below this many numbers of work an entry point keeps the GIL: releasing it and
    # taking it back (~100 ns) costs more than the work.
    GIL_FREE_MIN = 4096
    # The one-draw samplers sum the weights per block of this many tokens, then walk
    # the block sums and a single block (see kernels/sampling.pxi).
    DRAW_BLOCK = 256
    # The projection works on tiles of this many columns of W: its double accumulators
    # (B * tile of them) stay in L2.
    PROJECT_TILE = 16384


cdef inline Py_ssize_t n_draw_blocks(Py_ssize_t n) noexcept nogil:
    """How many DRAW_BLOCK blocks cover n tokens (the scratch the one-draw samplers need)."""
    return (n + DRAW_BLOCK - 1) // DRAW_BLOCK


cdef inline Py_ssize_t project_tile(Py_ssize_t B, Py_ssize_t V) noexcept nogil:
    """Columns per pass of the projection: all of them for one row, fewer for a batch."""
    cdef Py_ssize_t tile = PROJECT_TILE // B if B > 1 else PROJECT_TILE
    if tile < 256:
        tile = 256
    return tile if tile < V else V


cdef inline Py_ssize_t project_scratch(Py_ssize_t B, Py_ssize_t V) noexcept nogil:
    """The double accumulators a projection of B rows onto V outputs needs."""
    return B * project_tile(B, V)


# ---------------------------------------------------------------------------
# Structs passed to the kernels
# ---------------------------------------------------------------------------
cdef struct SamplerOptions:
    # The filters of sample_logits, checked once by the entry point (_checks.pxd).
    double temperature     # > 0 divides the logits; 0 is greedy (the argmax)
    Py_ssize_t top_k       # keep the k best-ranked tokens; 0: off
    double top_p           # keep the nucleus of mass top_p; 1: off
    double min_p           # keep tokens with p >= min_p * p_max; 0: off
    double typical_p       # keep the locally typical set of mass typical_p; 1: off
    double top_n_sigma     # keep logits within n sigma of the max; < 0: off
    Py_ssize_t min_keep    # every filter keeps at least this many tokens (>= 1)


cdef struct Penalties:
    # What changes the logits before the temperature (kernels/filters.pxi).
    const int64_t* bias_positions  # (n_bias,) tokens with a logit bias
    const double* bias_values      # (n_bias,) their biases (finite or -inf)
    Py_ssize_t n_bias
    double repetition      # CTRL's repetition penalty; 1: off
    double presence        # subtracted once from a token seen in the window; 0: off
    double frequency       # subtracted per occurrence in the window; 0: off
    bint active            # any of the three is on


cdef struct SamplerScratch:
    # Buffers of one row of V logits, owned by the caller (the kernels never allocate).
    int64_t* w             # (V,) the filtered integer weights, then their running sums
    int64_t* saved         # (V,) min_tokens_to_keep > 1 with a threshold filter; else NULL
    int64_t* weight_sums   # (n_draw_blocks(V),) block sums of w
    double* sums           # (n_draw_blocks(V),) block sums of the unfiltered weights


cdef inline bint has_filters(const SamplerOptions* opt) noexcept nogil:
    """A filter is on (else a draw needs only the temperature's weights)."""
    return (opt.top_k > 0 or opt.top_p < 1.0 or opt.min_p > 0.0 or opt.typical_p < 1.0
            or opt.top_n_sigma >= 0.0)


cdef struct Weights:
    # A model's arrays (all float32 or all float64, C-contiguous, native byte order).
    const void* E          # (V, d) embeddings
    const void* W1         # (c*d, h) weights of f1, or NULL when packed:
    const tinyllm_packed* W1_packed   # W1 in panels (float32 models only), or NULL
    const void* W2         # (h, V) weights of f2, or NULL when packed:
    const tinyllm_packed* W2_packed   # W2 in panels (float32 models only), or NULL
    Py_ssize_t V, d, c, h
    bint tanh              # f1 = tanh(x @ W1) instead of x @ W1


cdef struct GenerationState:
    # Everything the generation loop reads and writes, in one place (kernels/generate.pxi).
    Weights weights
    SamplerOptions options
    bitgen_t* rng          # the Generator's bit generator (its lock held by the caller)
    int64_t* context       # (c,) the positions read next, updated in place
    void* x                # (c*d,) the gathered embeddings
    void* f1               # (h,) the hidden layer
    double* acc            # the projection's accumulators (project_scratch(1, max(h, V)))
    void* packed_scratch   # packed_scratch bytes for W1 and W2, when either is packed
    SamplerScratch scratch
    Penalties penalties
    int64_t* window        # the last tokens the penalties read, oldest first
    Py_ssize_t n_window
    Py_ssize_t window_limit     # at most this many (penalty_last_n); the caller makes room
    int64_t* sorted_window  # (as many as the window holds) scratch of adjust_logits
    bint have_logits       # the logits buffer holds those of ``context`` (computed ahead)


cdef inline Py_ssize_t weights_scratch(const Weights* m, Py_ssize_t B) noexcept nogil:
    """Bytes of scratch the packed projections of f1 and f2 need for B rows: one
    buffer serves both, as they run one after the other (0 when neither is packed)."""
    cdef Py_ssize_t need = 0, f2
    if m.W1_packed != NULL:
        need = packed_scratch(m.W1_packed, B)
    if m.W2_packed != NULL:
        f2 = packed_scratch(m.W2_packed, B)
        need = f2 if f2 > need else need
    return need
