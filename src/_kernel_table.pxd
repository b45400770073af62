# cython: language_level=3
"""The table of kernels: one function pointer per kernel and dtype.

``src/_kernels.pyx`` (with the kernels of ``src/kernels/*.pxi``) is compiled once per
instruction set -- ``tinyllm._kernels_baseline``, ``_kernels_avx2``, ``_kernels_avx512``
-- and each build fills one ``Kernels`` struct with its own functions. ``tinyllm._cpu``
picks the best table the CPU runs at import (``TINYLLM_SIMD`` asks for one); the stage
modules (``_linalg``, ``_softmax``, ``_sampling``, ``_generate``, ``_train``), compiled
once, call every kernel through it.

Below the struct, one inline function per kernel takes the table and a fused
``floating`` pointer and calls the float32 or float64 entry: the dtype is chosen at
compile time inside a fused body, so an entry point branches on it once per call.
Every kernel is ``noexcept nogil`` and trusts its arguments; the signatures are those
of the kernels in ``src/kernels/`` (see there what each one computes).
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from numpy cimport intp_t
from numpy.random cimport bitgen_t

from _defs cimport (
    GenerationState,
    Penalties,
    SamplerOptions,
    SamplerScratch,
    Weights,
    tinyllm_packed,
)


cdef struct Kernels:
    const char* isa     # "baseline", "avx2" or "avx512": the instruction set of this build

    # linalg.pxi: the dot product and the projection
    double (*dot_f32)(const float*, const float*, Py_ssize_t) noexcept nogil
    double (*dot_f64)(const double*, const double*, Py_ssize_t) noexcept nogil
    bint (*project_f32)(const float*, Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t,
                        float*, double*) noexcept nogil
    bint (*project_f64)(const double*, Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t,
                        double*, double*) noexcept nogil

    # softmax.pxi
    int (*softmax_rows_f32)(const float*, float*, Py_ssize_t, Py_ssize_t, double, bint,
                            Py_ssize_t*) noexcept nogil
    int (*softmax_rows_f64)(const double*, double*, Py_ssize_t, Py_ssize_t, double, bint,
                            Py_ssize_t*) noexcept nogil
    void (*exp_array_f32)(const float*, float*, Py_ssize_t, bint) noexcept nogil
    void (*exp_array_f64)(const double*, double*, Py_ssize_t, bint) noexcept nogil

    # sampling.pxi
    int (*check_weights_f32)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t*) noexcept nogil
    int (*check_weights_f64)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t*) noexcept nogil
    int (*check_logits_f32)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t*) noexcept nogil
    int (*check_logits_f64)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t*) noexcept nogil
    void (*sample_rows_f32)(const float*, Py_ssize_t, Py_ssize_t, double*, bitgen_t*,
                            int64_t*, Py_ssize_t) noexcept nogil
    void (*sample_rows_f64)(const double*, Py_ssize_t, Py_ssize_t, double*, bitgen_t*,
                            int64_t*, Py_ssize_t) noexcept nogil
    void (*sample_logits_rows_f32)(const float*, Py_ssize_t, Py_ssize_t, const SamplerOptions*,
                                   const SamplerScratch*, bitgen_t*, int64_t*,
                                   Py_ssize_t) noexcept nogil
    void (*sample_logits_rows_f64)(const double*, Py_ssize_t, Py_ssize_t, const SamplerOptions*,
                                   const SamplerScratch*, bitgen_t*, int64_t*,
                                   Py_ssize_t) noexcept nogil
    int (*filter_logits_rows_f32)(const float*, Py_ssize_t, Py_ssize_t, const SamplerOptions*,
                                  const SamplerScratch*, float*, Py_ssize_t*) noexcept nogil
    int (*filter_logits_rows_f64)(const double*, Py_ssize_t, Py_ssize_t, const SamplerOptions*,
                                  const SamplerScratch*, double*, Py_ssize_t*) noexcept nogil
    Py_ssize_t (*draw_weights_once_f32)(const float*, Py_ssize_t, double*,
                                        bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_weights_once_f64)(const double*, Py_ssize_t, double*,
                                        bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_logits_once_f32)(const float*, Py_ssize_t, double, double*,
                                       bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_logits_once_f64)(const double*, Py_ssize_t, double, double*,
                                       bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_min_p_once_f32)(const float*, Py_ssize_t, double, double, int32_t*,
                                      int64_t*, bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_min_p_once_f64)(const double*, Py_ssize_t, double, double, int32_t*,
                                      int64_t*, bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_top_k_once_f32)(const float*, Py_ssize_t, double, Py_ssize_t, int32_t*,
                                      int64_t*, bitgen_t*) noexcept nogil
    Py_ssize_t (*draw_top_k_once_f64)(const double*, Py_ssize_t, double, Py_ssize_t, int32_t*,
                                      int64_t*, bitgen_t*) noexcept nogil
    Py_ssize_t (*greedy_once_f32)(const float*, Py_ssize_t) noexcept nogil
    Py_ssize_t (*greedy_once_f64)(const double*, Py_ssize_t) noexcept nogil
    # filters.pxi: logit bias and penalties, the filters' exp (a test hook)
    int (*adjust_logits_f32)(float*, Py_ssize_t, const Penalties*, const int64_t*, Py_ssize_t,
                             int64_t*) noexcept nogil
    int (*adjust_logits_f64)(double*, Py_ssize_t, const Penalties*, const int64_t*, Py_ssize_t,
                             int64_t*) noexcept nogil
    void (*filter_exp_array)(const double*, double*, Py_ssize_t) noexcept nogil
    bint (*exp_weights_f32)(const float*, Py_ssize_t, double, float*, double*) noexcept nogil
    bint (*exp_weights_f64)(const double*, Py_ssize_t, double, double*, double*) noexcept nogil

    # packed.h: f2 on a packed W2 (float32, float16, bfloat16, int8)
    bint (*packed_project)(const tinyllm_packed*, const float*, Py_ssize_t, float*,
                           void*) noexcept nogil
    const char* (*int8_path)() noexcept nogil
    int (*set_int8_vnni)(int) noexcept nogil

    # generate.pxi: the forward pass and the generation loop
    int (*forward_row_f32)(const Weights*, const int64_t*, float*, float*, float*,
                           double*, void*) noexcept nogil
    int (*forward_row_f64)(const Weights*, const int64_t*, double*, double*, double*,
                           double*, void*) noexcept nogil
    int (*generate_tokens_f32)(GenerationState*, float*, int64_t*, Py_ssize_t,
                               Py_ssize_t*) noexcept nogil
    int (*generate_tokens_f64)(GenerationState*, double*, int64_t*, Py_ssize_t,
                               Py_ssize_t*) noexcept nogil
    int (*generate_batch_f32)(GenerationState**, Py_ssize_t, float*, float*, float*, double*,
                              void*, bint*, int64_t*, Py_ssize_t, Py_ssize_t, Py_ssize_t*,
                              Py_ssize_t*) noexcept nogil
    int (*generate_batch_f64)(GenerationState**, Py_ssize_t, double*, double*, double*, double*,
                              void*, bint*, int64_t*, Py_ssize_t, Py_ssize_t, Py_ssize_t*,
                              Py_ssize_t*) noexcept nogil

    # train.pxi
    void (*gather_f32)(const float*, Py_ssize_t, const intp_t*, Py_ssize_t, Py_ssize_t,
                       float*) noexcept nogil
    void (*gather_f64)(const double*, Py_ssize_t, const intp_t*, Py_ssize_t, Py_ssize_t,
                       double*) noexcept nogil
    void (*tanh_all_f32)(float*, Py_ssize_t) noexcept nogil
    void (*tanh_all_f64)(double*, Py_ssize_t) noexcept nogil
    double (*xent_f32)(float*, Py_ssize_t, Py_ssize_t, const intp_t*, double, bint,
                       double*) noexcept nogil
    double (*xent_f64)(double*, Py_ssize_t, Py_ssize_t, const intp_t*, double, bint,
                       double*) noexcept nogil
    void (*tanh_backward_f32)(float*, const float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void (*tanh_backward_f64)(double*, const double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void (*scatter_rows_f32)(const float*, const intp_t*, Py_ssize_t, Py_ssize_t, float*,
                             Py_ssize_t) noexcept nogil
    void (*scatter_rows_f64)(const double*, const intp_t*, Py_ssize_t, Py_ssize_t, double*,
                             Py_ssize_t) noexcept nogil
    double (*rows_absmax_f32)(const float*, Py_ssize_t, const intp_t*, Py_ssize_t) noexcept nogil
    double (*rows_absmax_f64)(const double*, Py_ssize_t, const intp_t*, Py_ssize_t) noexcept nogil
    void (*clear_rows_f32)(float*, Py_ssize_t, const intp_t*, Py_ssize_t) noexcept nogil
    void (*clear_rows_f64)(double*, Py_ssize_t, const intp_t*, Py_ssize_t) noexcept nogil
    double (*absmax_f32)(const float*, Py_ssize_t) noexcept nogil
    double (*absmax_f64)(const double*, Py_ssize_t) noexcept nogil
    void (*sgd_f32)(float*, const float*, float*, Py_ssize_t, float, float, float, bint,
                    double*) noexcept nogil
    void (*sgd_f64)(double*, const double*, double*, Py_ssize_t, double, double, double, bint,
                    double*) noexcept nogil
    void (*adam_f32)(float*, const float*, float*, float*, Py_ssize_t, float, float, float,
                     float, float, float, float, bint, double*) noexcept nogil
    void (*adam_f64)(double*, const double*, double*, double*, Py_ssize_t, double, double,
                     double, double, double, double, double, bint, double*) noexcept nogil


cdef inline const Kernels** active_table() except NULL:
    """Where tinyllm._cpu keeps the table in use: a stage module reads it once per call
    (``active_table()[0]``), so that tests can switch instruction sets (_cpu.use)."""
    from tinyllm import _cpu
    return <const Kernels**>PyCapsule_GetPointer(_cpu.active_table, "tinyllm._cpu.active_table")


# ---------------------------------------------------------------------------
# The calls: one fused function per kernel picks the entry of the pointer's dtype
# ---------------------------------------------------------------------------

cdef inline double dot(const Kernels* k, const floating* x, const floating* w,
                       Py_ssize_t n) noexcept nogil:
    if floating is float:
        return k.dot_f32(x, w, n)
    else:
        return k.dot_f64(x, w, n)


cdef inline bint project(const Kernels* k, const floating* H, Py_ssize_t B, const floating* W,
                         Py_ssize_t n_in, Py_ssize_t n_out, floating* out,
                         double* acc) noexcept nogil:
    if floating is float:
        return k.project_f32(H, B, W, n_in, n_out, out, acc)
    else:
        return k.project_f64(H, B, W, n_in, n_out, out, acc)


cdef inline int softmax_rows(const Kernels* k, const floating* x, floating* out, Py_ssize_t rows,
                             Py_ssize_t n, double t, bint take_log,
                             Py_ssize_t* bad_row) noexcept nogil:
    if floating is float:
        return k.softmax_rows_f32(x, out, rows, n, t, take_log, bad_row)
    else:
        return k.softmax_rows_f64(x, out, rows, n, t, take_log, bad_row)


cdef inline void exp_array(const Kernels* k, const floating* x, floating* out, Py_ssize_t n,
                           bint nonpos) noexcept nogil:
    if floating is float:
        k.exp_array_f32(x, out, n, nonpos)
    else:
        k.exp_array_f64(x, out, n, nonpos)


cdef inline int check_weights(const Kernels* k, const floating* w, Py_ssize_t rows, Py_ssize_t n,
                              Py_ssize_t* bad_row) noexcept nogil:
    if floating is float:
        return k.check_weights_f32(w, rows, n, bad_row)
    else:
        return k.check_weights_f64(w, rows, n, bad_row)


cdef inline int check_logits(const Kernels* k, const floating* x, Py_ssize_t rows, Py_ssize_t n,
                             Py_ssize_t* bad_row) noexcept nogil:
    if floating is float:
        return k.check_logits_f32(x, rows, n, bad_row)
    else:
        return k.check_logits_f64(x, rows, n, bad_row)


cdef inline void sample_rows(const Kernels* k, const floating* w, Py_ssize_t rows, Py_ssize_t n,
                             double* cum, bitgen_t* rng, int64_t* out,
                             Py_ssize_t n_draws) noexcept nogil:
    if floating is float:
        k.sample_rows_f32(w, rows, n, cum, rng, out, n_draws)
    else:
        k.sample_rows_f64(w, rows, n, cum, rng, out, n_draws)


cdef inline void sample_logits_rows(const Kernels* k, const floating* x, Py_ssize_t rows,
                                    Py_ssize_t n, const SamplerOptions* opt,
                                    const SamplerScratch* scratch, bitgen_t* rng, int64_t* out,
                                    Py_ssize_t n_draws) noexcept nogil:
    if floating is float:
        k.sample_logits_rows_f32(x, rows, n, opt, scratch, rng, out, n_draws)
    else:
        k.sample_logits_rows_f64(x, rows, n, opt, scratch, rng, out, n_draws)


cdef inline int filter_logits_rows(const Kernels* k, const floating* x, Py_ssize_t rows,
                                   Py_ssize_t n, const SamplerOptions* opt,
                                   const SamplerScratch* scratch, floating* out,
                                   Py_ssize_t* bad_row) noexcept nogil:
    if floating is float:
        return k.filter_logits_rows_f32(x, rows, n, opt, scratch, out, bad_row)
    else:
        return k.filter_logits_rows_f64(x, rows, n, opt, scratch, out, bad_row)


cdef inline Py_ssize_t draw_weights_once(const Kernels* k, const floating* w, Py_ssize_t n,
                                         double* sums, bitgen_t* rng) noexcept nogil:
    if floating is float:
        return k.draw_weights_once_f32(w, n, sums, rng)
    else:
        return k.draw_weights_once_f64(w, n, sums, rng)


cdef inline Py_ssize_t draw_logits_once(const Kernels* k, const floating* x, Py_ssize_t n,
                                        double t, double* sums, bitgen_t* rng) noexcept nogil:
    if floating is float:
        return k.draw_logits_once_f32(x, n, t, sums, rng)
    else:
        return k.draw_logits_once_f64(x, n, t, sums, rng)


cdef inline Py_ssize_t draw_min_p_once(const Kernels* k, const floating* x, Py_ssize_t n,
                                       double t, double min_p, int32_t* kept, int64_t* w,
                                       bitgen_t* rng) noexcept nogil:
    if floating is float:
        return k.draw_min_p_once_f32(x, n, t, min_p, kept, w, rng)
    else:
        return k.draw_min_p_once_f64(x, n, t, min_p, kept, w, rng)


cdef inline Py_ssize_t draw_top_k_once(const Kernels* k, const floating* x, Py_ssize_t n,
                                       double t, Py_ssize_t top_k, int32_t* kept, int64_t* w,
                                       bitgen_t* rng) noexcept nogil:
    if floating is float:
        return k.draw_top_k_once_f32(x, n, t, top_k, kept, w, rng)
    else:
        return k.draw_top_k_once_f64(x, n, t, top_k, kept, w, rng)


cdef inline Py_ssize_t greedy_once(const Kernels* k, const floating* x,
                                   Py_ssize_t n) noexcept nogil:
    if floating is float:
        return k.greedy_once_f32(x, n)
    else:
        return k.greedy_once_f64(x, n)


cdef inline int adjust_logits(const Kernels* k, floating* y, Py_ssize_t n, const Penalties* pen,
                              const int64_t* window, Py_ssize_t n_window,
                              int64_t* sorted_window) noexcept nogil:
    if floating is float:
        return k.adjust_logits_f32(y, n, pen, window, n_window, sorted_window)
    else:
        return k.adjust_logits_f64(y, n, pen, window, n_window, sorted_window)


cdef inline bint exp_weights(const Kernels* k, const floating* x, Py_ssize_t n, double t,
                             floating* w, double* sums) noexcept nogil:
    if floating is float:
        return k.exp_weights_f32(x, n, t, w, sums)
    else:
        return k.exp_weights_f64(x, n, t, w, sums)


cdef inline int forward_row(const Kernels* k, const Weights* m, const int64_t* positions,
                            floating* x, floating* f1, floating* logits,
                            double* acc, void* packed_scratch) noexcept nogil:
    if floating is float:
        return k.forward_row_f32(m, positions, x, f1, logits, acc, packed_scratch)
    else:
        return k.forward_row_f64(m, positions, x, f1, logits, acc, packed_scratch)


cdef inline int generate_tokens(const Kernels* k, GenerationState* g, floating* logits,
                                int64_t* out, Py_ssize_t n, Py_ssize_t* done) noexcept nogil:
    if floating is float:
        return k.generate_tokens_f32(g, logits, out, n, done)
    else:
        return k.generate_tokens_f64(g, logits, out, n, done)

cdef inline int generate_batch(const Kernels* k, GenerationState** gs, Py_ssize_t B,
                               floating* X, floating* F1, floating* logits, double* acc,
                               void* packed_scratch, bint* have_logits, int64_t* out,
                               Py_ssize_t out_stride, Py_ssize_t n, Py_ssize_t* done,
                               Py_ssize_t* bad_row) noexcept nogil:
    if floating is float:
        return k.generate_batch_f32(gs, B, X, F1, logits, acc, packed_scratch, have_logits,
                                    out, out_stride, n, done, bad_row)
    else:
        return k.generate_batch_f64(gs, B, X, F1, logits, acc, packed_scratch, have_logits,
                                    out, out_stride, n, done, bad_row)


cdef inline void gather(const Kernels* k, const floating* E, Py_ssize_t d, const intp_t* windows,
                        Py_ssize_t B, Py_ssize_t c, floating* X) noexcept nogil:
    if floating is float:
        k.gather_f32(E, d, windows, B, c, X)
    else:
        k.gather_f64(E, d, windows, B, c, X)


cdef inline void tanh_all(const Kernels* k, floating* H, Py_ssize_t n) noexcept nogil:
    if floating is float:
        k.tanh_all_f32(H, n)
    else:
        k.tanh_all_f64(H, n)


cdef inline double xent(const Kernels* k, floating* Z, Py_ssize_t B, Py_ssize_t V,
                        const intp_t* targets, double scale, bint grad,
                        double* losses) noexcept nogil:
    if floating is float:
        return k.xent_f32(Z, B, V, targets, scale, grad, losses)
    else:
        return k.xent_f64(Z, B, V, targets, scale, grad, losses)


cdef inline void tanh_backward(const Kernels* k, floating* dHt, const floating* H, Py_ssize_t h,
                               Py_ssize_t B) noexcept nogil:
    if floating is float:
        k.tanh_backward_f32(dHt, H, h, B)
    else:
        k.tanh_backward_f64(dHt, H, h, B)


cdef inline void scatter_rows(const Kernels* k, const floating* dX, const intp_t* windows,
                              Py_ssize_t B, Py_ssize_t c, floating* dE,
                              Py_ssize_t d) noexcept nogil:
    if floating is float:
        k.scatter_rows_f32(dX, windows, B, c, dE, d)
    else:
        k.scatter_rows_f64(dX, windows, B, c, dE, d)


cdef inline double rows_absmax(const Kernels* k, const floating* dE, Py_ssize_t d,
                               const intp_t* rows, Py_ssize_t n_rows) noexcept nogil:
    if floating is float:
        return k.rows_absmax_f32(dE, d, rows, n_rows)
    else:
        return k.rows_absmax_f64(dE, d, rows, n_rows)


cdef inline void clear_rows(const Kernels* k, floating* dE, Py_ssize_t d, const intp_t* rows,
                            Py_ssize_t n_rows) noexcept nogil:
    if floating is float:
        k.clear_rows_f32(dE, d, rows, n_rows)
    else:
        k.clear_rows_f64(dE, d, rows, n_rows)


cdef inline double absmax(const Kernels* k, const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return k.absmax_f32(x, n)
    else:
        return k.absmax_f64(x, n)


cdef inline void sgd(const Kernels* k, floating* p, const floating* g, floating* vel, Py_ssize_t n,
                     floating lr, floating mu, floating keep, bint apply,
                     double* maxes) noexcept nogil:
    if floating is float:
        k.sgd_f32(p, g, vel, n, lr, mu, keep, apply, maxes)
    else:
        k.sgd_f64(p, g, vel, n, lr, mu, keep, apply, maxes)


cdef inline void adam(const Kernels* k, floating* p, const floating* g, floating* m1,
                      floating* m2, Py_ssize_t n, floating lr, floating b1, floating b2,
                      floating eps, floating c1, floating c2, floating keep, bint apply,
                      double* maxes) noexcept nogil:
    if floating is float:
        k.adam_f32(p, g, m1, m2, n, lr, b1, b2, eps, c1, c2, keep, apply, maxes)
    else:
        k.adam_f64(p, g, m1, m2, n, lr, b1, b2, eps, c1, c2, keep, apply, maxes)
