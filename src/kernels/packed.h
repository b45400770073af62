/* kernels/packed.h -- f2 (and f1) on packed weights: the projection
 * out (B, V) = H (B, k) @ W2 (k, V) with W2 stored in panels of columns, in one of four
 * formats. (W1 (c*d, h) is packed the same way, in float32, for f1 = x @ W1.)
 *
 * Why panels: W2 row-major (k, V) makes every output a sum over k rows that lie V
 * apart, so the accumulators of a whole row of outputs travel through memory once
 * per block of rows (linalg.pxi's project_rows). In a panel the k x 64 weights of 64
 * outputs are contiguous: one sequential stream, the outputs summed in registers, W2
 * read exactly once per step whatever the batch (the batch's rows re-read each panel
 * from cache).
 *
 *   float32, float16, bfloat16   panel p holds W2[:, 64p : 64p + 64] (k x 64) in
 *                                groups of 8 rows (the last one k mod 8 rows), each
 *                                group as its four 16-column blocks one after the
 *                                other, each block's rows contiguous: the kernel reads
 *                                every group's bytes in order
 *   int8                         panel p = (k/4, 16, 4): element (g, j, r) is
 *                                W2[4g + r, 16p + j] -- the layout of VNNI's dpbusd,
 *                                four rows of one column in each 32-bit lane
 * (columns past V and rows past k are zeros).
 *
 * float16 and bfloat16 are widened to float32 in registers (F16C, AVX-512, a shift)
 * and then go through the float32 arithmetic, which is project_rows' for one output:
 * blocks of 8 rows summed in float, each block sum added to a double, one rounding at
 * the end -- so a half-precision W2 gives the float32 logits of its widened values,
 * bit for bit, and float32 gives project_rows' numbers.
 *
 * int8 (per-column scales s_j) quantises each row of H to int8 with one scale,
 * a = max|h| / 127 and q = rint(h * 127 / max|h|), sums q_i * W2[i, j] exactly in
 * int32, and returns float(sum_j) * (a * s_j). The integer sum is exact, so the
 * four paths -- VNNI (AVX-512 VNNI), AVX-512 and AVX2 without it (16-bit products,
 * vpmaddwd) and the portable loop -- agree bit for bit.
 */
#ifndef TINYLLM_PACKED_H
#define TINYLLM_PACKED_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TINYLLM_UNUSED __attribute__((unused))   /* the stage modules include this too */
#else
#define TINYLLM_UNUSED
#endif

#define TINYLLM_PANEL 16          /* outputs per int8 panel, and per block of a float one */
#define TINYLLM_WIDE_PANEL 64     /* outputs per float32 / float16 / bfloat16 panel */
#define TINYLLM_ROW_BLOCK 8       /* rows summed in float before the double accumulator */
#define TINYLLM_INT8_GROUP 4      /* rows per 32-bit lane of an int8 panel */

enum { TINYLLM_FORMAT_F32 = 0, TINYLLM_FORMAT_F16 = 1, TINYLLM_FORMAT_BF16 = 2,
       TINYLLM_FORMAT_I8 = 3 };

typedef struct {
    int format;                   /* TINYLLM_FORMAT_* */
    const void* panels;           /* n_panels panels, as above */
    const float* scales;          /* int8: (n_panels * 16,) column scales; else NULL */
    const int32_t* column_sums;   /* int8: (n_panels * 16,) sum_i W2[i, j]; else NULL */
    Py_ssize_t k, n;              /* W2's rows and columns */
    Py_ssize_t n_panels;          /* ceil(n / 64), int8: ceil(n / 16) */
    Py_ssize_t k_groups;          /* int8: ceil(k / 4) */
} tinyllm_packed;

/* Bytes of scratch tinyllm_packed_project needs for B rows. */
static inline Py_ssize_t tinyllm_packed_scratch(const tinyllm_packed* W, Py_ssize_t B) {
    if (W->format == TINYLLM_FORMAT_I8)   /* each row quantised, and its scale */
        return B * (W->k_groups * TINYLLM_INT8_GROUP + (Py_ssize_t)sizeof(float)) + 64;
    if (W->format == TINYLLM_FORMAT_F32)
        return 64;
    return B > 1 ? W->k * TINYLLM_WIDE_PANEL * (Py_ssize_t)sizeof(float) + 64 : 64;
}

/* ---------------------------------------------------------------------------
 * Widening half-precision weights
 * ------------------------------------------------------------------------- */

/* IEEE half -> float, exactly (subnormals, inf and NaN included), without F16C. */
static inline float tinyllm_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu,
             mantissa = h & 0x3ffu, bits;
    float f;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else {   /* zero or subnormal: mantissa * 2^-24, exact in float */
        f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* out[0:count] = in[0:count] as float (count a multiple of 16). */
static inline void tinyllm_widen_f16(const uint16_t* in, float* out, Py_ssize_t count) {
    Py_ssize_t i = 0;
#if defined(__AVX512F__)
    for (; i < count; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(in + i))));
#elif defined(__F16C__)
    for (; i < count; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(in + i))));
#endif
    for (; i < count; i++)
        out[i] = tinyllm_half_to_float(in[i]);
}

/* bfloat16 is the upper half of a float32: widening is a 16-bit shift (vectorised). */
static inline void tinyllm_widen_bf16(const uint16_t* in, float* out, Py_ssize_t count) {
    Py_ssize_t i;
    uint32_t bits;
    for (i = 0; i < count; i++) {
        bits = (uint32_t)in[i] << 16;
        memcpy(out + i, &bits, sizeof bits);
    }
}

/* ---------------------------------------------------------------------------
 * float32 panels
 * ------------------------------------------------------------------------- */

/* w[0:16] = row r of a 16-column block of a float32, float16 or bfloat16 panel (the
 * block's rows are contiguous: see the layout above), as float32. */
static inline void tinyllm_panel_row(int format, const char* block, Py_ssize_t r, float* w) {
    if (format == TINYLLM_FORMAT_F32)
        memcpy(w, (const float*)block + r * TINYLLM_PANEL, TINYLLM_PANEL * sizeof(float));
    else if (format == TINYLLM_FORMAT_F16)
        tinyllm_widen_f16((const uint16_t*)block + r * TINYLLM_PANEL, w, TINYLLM_PANEL);
    else
        tinyllm_widen_bf16((const uint16_t*)block + r * TINYLLM_PANEL, w, TINYLLM_PANEL);
}

/* acc[0:16] += one group's sums for one row of H (``hrow``), from the group's weights
 * ``w[8][16]``, in project_rows' expression and order (the same bits). Needs ``i``
 * (the group's first row) in scope. */
#define TINYLLM_ROW_SUMS(acc, hrow)                                                        \
    do {                                                                                   \
        const float* c_ = (hrow) + i;                                                      \
        int j_;                                                                            \
        float s_;                                                                          \
        for (j_ = 0; j_ < TINYLLM_PANEL; j_++) {                                           \
            s_ = (c_[0] * w[0][j_] + c_[1] * w[1][j_] + c_[2] * w[2][j_] + c_[3] * w[3][j_]) \
                + (c_[4] * w[4][j_] + c_[5] * w[5][j_] + c_[6] * w[6][j_] + c_[7] * w[7][j_]); \
            (acc)[j_] += s_;                                                               \
        }                                                                                  \
    } while (0)

/* w = one group of 8 rows of 16-column block ``s``, widened to float32 as read. Needs
 * ``format``, ``size``, ``panel`` and ``i`` in scope. */
#define TINYLLM_LOAD_GROUP(s)                                                              \
    do {                                                                                   \
        const char* block_ = panel + (i * TINYLLM_WIDE_PANEL + (s) * 8 * TINYLLM_PANEL) * size; \
        int r_;                                                                            \
        for (r_ = 0; r_ < TINYLLM_ROW_BLOCK; r_++)                                         \
            tinyllm_panel_row(format, block_, r_, w[r_]);                                  \
    } while (0)

/* One group of block ``s`` for the row ``h``: load it, add its sums to acc. */
#define TINYLLM_BLOCK_SUMS(acc, s)                                                         \
    do {                                                                                   \
        TINYLLM_LOAD_GROUP(s);                                                             \
        TINYLLM_ROW_SUMS(acc, h);                                                          \
    } while (0)

/* Block ``s``'s rows after the last full group, then out[0:min(width, 16)] (nothing if
 * width <= 0). */
#define TINYLLM_BLOCK_FINISH(acc, s, out, width)                                           \
    do {                                                                                   \
        const char* block_ = panel + (full * TINYLLM_WIDE_PANEL + (s) * (k - full) * TINYLLM_PANEL) * size; \
        int j_;                                                                            \
        for (i = full; i < k; i++) {                                                       \
            tinyllm_panel_row(format, block_, i - full, w[0]);                             \
            for (j_ = 0; j_ < TINYLLM_PANEL; j_++)                                         \
                (acc)[j_] += h[i] * w[0][j_];  /* a float product, added in double */      \
        }                                                                                  \
        for (j_ = 0; j_ < (width) && j_ < TINYLLM_PANEL; j_++)                             \
            (out)[j_] = (float)(acc)[j_];                                                  \
    } while (0)

/* out[0:width] = h (k,) @ panel (k, 64), for the first ``width`` of its columns.
 *
 * Each 16-column block is a chain of dependent adds (~25 cycles per group of 8 rows),
 * so blocks run side by side, each in registers of its own (written out: compilers
 * keep an array indexed by a loop variable in memory): all four with AVX-512's 32
 * registers, reading each group's 2 KB in order; two at a time with AVX2's 16.
 * ``format`` is a constant at each call. */
static inline void tinyllm_panel_float(int format, const void* panel_start, const float* h,
                                       Py_ssize_t k, float* out, Py_ssize_t width) {
    const Py_ssize_t size = format == TINYLLM_FORMAT_F32 ? 4 : 2;
    const char* panel = (const char*)panel_start;
    float w[TINYLLM_ROW_BLOCK][TINYLLM_PANEL];
    Py_ssize_t i, full = k - k % TINYLLM_ROW_BLOCK;
#if defined(__AVX512F__)
    double acc0[TINYLLM_PANEL] = {0}, acc1[TINYLLM_PANEL] = {0};
    double acc2[TINYLLM_PANEL] = {0}, acc3[TINYLLM_PANEL] = {0};
    for (i = 0; i < full; i += TINYLLM_ROW_BLOCK) {
        TINYLLM_BLOCK_SUMS(acc0, 0);
        TINYLLM_BLOCK_SUMS(acc1, 1);
        TINYLLM_BLOCK_SUMS(acc2, 2);
        TINYLLM_BLOCK_SUMS(acc3, 3);
    }
    TINYLLM_BLOCK_FINISH(acc0, 0, out, width);
    TINYLLM_BLOCK_FINISH(acc1, 1, out + 16, width - 16);
    TINYLLM_BLOCK_FINISH(acc2, 2, out + 32, width - 32);
    TINYLLM_BLOCK_FINISH(acc3, 3, out + 48, width - 48);
#else
    int first;      /* blocks first and first + 1: two passes over the panel */
    for (first = 0; first < 4; first += 2) {
        double acc0[TINYLLM_PANEL] = {0}, acc1[TINYLLM_PANEL] = {0};
        for (i = 0; i < full; i += TINYLLM_ROW_BLOCK) {
            TINYLLM_BLOCK_SUMS(acc0, first);
            TINYLLM_BLOCK_SUMS(acc1, first + 1);
        }
        TINYLLM_BLOCK_FINISH(acc0, first, out + 16 * first, width - 16 * first);
        TINYLLM_BLOCK_FINISH(acc1, first + 1, out + 16 * first + 16, width - 16 * first - 16);
    }
#endif
}

/* Block ``s`` (16 columns) of a float32 panel for four rows of H (n apart in ``out``):
 * each group's weights loaded once for the four. A batch is bound by arithmetic, and
 * tinyllm_panel_float loads the weights once per row: this halves the loads. The same
 * operations per output, in the same order: the bits of one row alone.
 *
 * ``next`` (or NULL) is a range of ``next_bytes`` to prefetch meanwhile, spread over
 * the groups: the next panel, which then arrives while this one is computed. */
static inline void tinyllm_block_rows4(const char* panel, int s, const float* H, Py_ssize_t k,
                                       float* out, Py_ssize_t n, Py_ssize_t width,
                                       const char* next, Py_ssize_t next_bytes) {
    const int format = TINYLLM_FORMAT_F32;
    const Py_ssize_t size = 4;
    float w[TINYLLM_ROW_BLOCK][TINYLLM_PANEL];
    double acc0[TINYLLM_PANEL] = {0}, acc1[TINYLLM_PANEL] = {0};
    double acc2[TINYLLM_PANEL] = {0}, acc3[TINYLLM_PANEL] = {0};
    Py_ssize_t i, line, full = k - k % TINYLLM_ROW_BLOCK, step = next_bytes / (k + 1) + 64;
    const float* h;
    for (i = 0; i < full; i += TINYLLM_ROW_BLOCK) {
#if defined(__GNUC__) || defined(__clang__)
        if (next != NULL)   /* this group's share of the next panel, ~8 x next_bytes / k */
            for (line = i * step; line < (i + TINYLLM_ROW_BLOCK) * step && line < next_bytes;
                 line += 64)
                __builtin_prefetch(next + line, 0, 2);
#endif
        TINYLLM_LOAD_GROUP(s);
        TINYLLM_ROW_SUMS(acc0, H);
        TINYLLM_ROW_SUMS(acc1, H + k);
        TINYLLM_ROW_SUMS(acc2, H + 2 * k);
        TINYLLM_ROW_SUMS(acc3, H + 3 * k);
    }
    h = H;
    TINYLLM_BLOCK_FINISH(acc0, s, out, width);
    h = H + k;
    TINYLLM_BLOCK_FINISH(acc1, s, out + n, width);
    h = H + 2 * k;
    TINYLLM_BLOCK_FINISH(acc2, s, out + 2 * n, width);
    h = H + 3 * k;
    TINYLLM_BLOCK_FINISH(acc3, s, out + 3 * n, width);
}

/* out[b * n + 0:width] = H[b] @ panel (float32, k x 64) for the B rows of a batch:
 * four rows at a time (block by block, so each block's weights serve every quad from
 * L1), then the rest one by one; the next panel (``next``, ``next_bytes``) is
 * prefetched meanwhile, a share per call. */
static inline void tinyllm_panel_batch(const float* panel, const float* H, Py_ssize_t B,
                                       Py_ssize_t k, float* out, Py_ssize_t n,
                                       Py_ssize_t width, const char* next,
                                       Py_ssize_t next_bytes) {
    Py_ssize_t b, quads = B - B % 4, call = 0, calls = quads, share;
    int s;
    /* each call of the four blocks x quads prefetches its share of the next panel */
    share = calls ? (next_bytes / calls + 63) / 64 * 64 : 0;
    for (s = 0; s < 4; s++)
        for (b = 0; b < quads; b += 4, call++)
            tinyllm_block_rows4((const char*)panel, s, H + b * k, k, out + b * n + 16 * s, n,
                                width - 16 * s, next ? next + call * share : NULL,
                                share < next_bytes - call * share ? share
                                                                  : next_bytes - call * share);
    for (b = quads; b < B; b++)
        tinyllm_panel_float(TINYLLM_FORMAT_F32, panel, H + b * k, k, out + b * n, width);
}

/* ---------------------------------------------------------------------------
 * int8 panels
 * ------------------------------------------------------------------------- */

/* q[0:4*k_groups] = h quantised to int8 (zeros past k); *scale = max|h| / 127.
 * Returns 0 if h is not finite. */
static inline int tinyllm_quantize_row(const float* h, Py_ssize_t k, Py_ssize_t k_groups,
                                       int8_t* q, float* scale) {
    float amax = 0.0f, inv, v;
    Py_ssize_t i;
    for (i = 0; i < k; i++) {
        v = fabsf(h[i]);
        amax = v > amax ? v : amax;
    }
    if (!(amax <= 3.4028234663852886e38f))   /* inf or NaN */
        return 0;
    inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (i = 0; i < k; i++) {
        v = rintf(h[i] * inv);
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[i] = (int8_t)v;
    }
    for (; i < k_groups * TINYLLM_INT8_GROUP; i++)
        q[i] = 0;
    *scale = amax / 127.0f;
    return 1;
}

/* sums[j] = sum_i q_i * W2[i, j] for the 16 columns of one int8 panel, portably. */
static inline void tinyllm_panel_i8_portable(const int8_t* panel, const int8_t* q,
                                             Py_ssize_t k_groups, int32_t* sums) {
    Py_ssize_t g, j;
    int r;
    const int8_t* line;
    for (j = 0; j < TINYLLM_PANEL; j++)
        sums[j] = 0;
    for (g = 0; g < k_groups; g++) {
        line = panel + g * 64;
        for (j = 0; j < TINYLLM_PANEL; j++)
            for (r = 0; r < TINYLLM_INT8_GROUP; r++)
                sums[j] += (int32_t)q[4 * g + r] * line[4 * j + r];
    }
}

#if defined(__AVX2__)
/* The same with AVX2: bytes widened to 16 bits, pairs of products summed by vpmaddwd
 * (exact: no 16-bit saturation, unlike vpmaddubsw). */
static inline void tinyllm_panel_i8_avx2(const int8_t* panel, const int8_t* q,
                                         Py_ssize_t k_groups, int32_t* sums) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0, a;
    const __m128i* line;
    int32_t lanes[32];
    int32_t quad;
    Py_ssize_t g;
    int j;
    for (g = 0; g < k_groups; g++) {
        memcpy(&quad, q + 4 * g, 4);
        /* q's 4 bytes as 16-bit values, repeated for the 4 columns of a quarter line */
        a = _mm256_cvtepi8_epi16(_mm_set1_epi32(quad));
        line = (const __m128i*)(panel + g * 64);
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(line)), a));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(line + 1)), a));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(line + 2)), a));
        acc3 = _mm256_add_epi32(acc3, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(line + 3)), a));
    }
    _mm256_storeu_si256((__m256i*)lanes, acc0);
    _mm256_storeu_si256((__m256i*)(lanes + 8), acc1);
    _mm256_storeu_si256((__m256i*)(lanes + 16), acc2);
    _mm256_storeu_si256((__m256i*)(lanes + 24), acc3);
    for (j = 0; j < TINYLLM_PANEL; j++)      /* column j: rows 0-1 and rows 2-3 */
        sums[j] = lanes[2 * j] + lanes[2 * j + 1];
}
#endif

#if defined(__AVX512BW__)
/* The same with AVX-512 BW (CPUs with AVX-512 but not VNNI): half a line per 512-bit
 * vpmaddwd, two groups in flight. */
static inline void tinyllm_panel_i8_avx512(const int8_t* panel, const int8_t* q,
                                           Py_ssize_t k_groups, int32_t* sums) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0, a;
    const __m256i* line;
    int32_t lanes[32], quad;
    Py_ssize_t g;
    int j;
    for (g = 0; g + 1 < k_groups; g += 2) {
        memcpy(&quad, q + 4 * g, 4);
        a = _mm512_cvtepi8_epi16(_mm256_set1_epi32(quad));
        line = (const __m256i*)(panel + g * 64);
        acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line)), a));
        acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line + 1)), a));
        memcpy(&quad, q + 4 * g + 4, 4);
        a = _mm512_cvtepi8_epi16(_mm256_set1_epi32(quad));
        acc2 = _mm512_add_epi32(acc2, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line + 2)), a));
        acc3 = _mm512_add_epi32(acc3, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line + 3)), a));
    }
    for (; g < k_groups; g++) {
        memcpy(&quad, q + 4 * g, 4);
        a = _mm512_cvtepi8_epi16(_mm256_set1_epi32(quad));
        line = (const __m256i*)(panel + g * 64);
        acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line)), a));
        acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(line + 1)), a));
    }
    _mm512_storeu_si512((void*)lanes, _mm512_add_epi32(acc0, acc2));        /* columns 0-7 */
    _mm512_storeu_si512((void*)(lanes + 16), _mm512_add_epi32(acc1, acc3)); /* columns 8-15 */
    for (j = 0; j < TINYLLM_PANEL; j++)      /* column j: rows 0-1 and rows 2-3 */
        sums[j] = lanes[2 * j] + lanes[2 * j + 1];
}
#endif

#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#define TINYLLM_HAVE_VNNI_PATH 1
/* The same with AVX-512 VNNI: one vpdpbusd per 64-byte line (4 rows x 16 columns).
 * dpbusd multiplies unsigned by signed bytes, so q is offset to q + 128 and
 * 128 * sum_i W2[i, j] taken back at the end. Compiled for VNNI whatever the build's
 * flags, and called only where the CPU has it (checked at import). */
__attribute__((target("avx512f,avx512vnni")))
static TINYLLM_UNUSED void tinyllm_panel_i8_vnni(const int8_t* panel, const int8_t* q, Py_ssize_t k_groups,
                                  const int32_t* column_sums, int32_t* sums) {
    /* four independent sums: one chain of dpbusd would wait ~5 cycles per line */
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0, acc;
    const __m512i offset = _mm512_set1_epi8((char)0x80);
    int32_t quad;
    Py_ssize_t g, body = k_groups - k_groups % 4;
#define TINYLLM_VNNI_LINE(acc, g)                                                          \
    memcpy(&quad, q + 4 * (g), 4);                                                       \
    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_set1_epi32(quad), offset),   \
                              _mm512_loadu_si512((const void*)(panel + (g) * 64)))
    for (g = 0; g < body; g += 4) {
        TINYLLM_VNNI_LINE(acc0, g);
        TINYLLM_VNNI_LINE(acc1, g + 1);
        TINYLLM_VNNI_LINE(acc2, g + 2);
        TINYLLM_VNNI_LINE(acc3, g + 3);
    }
    for (; g < k_groups; g++) {
        TINYLLM_VNNI_LINE(acc0, g);
    }
#undef TINYLLM_VNNI_LINE
    acc = _mm512_add_epi32(_mm512_add_epi32(acc0, acc1), _mm512_add_epi32(acc2, acc3));
    acc = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_loadu_si512((const void*)column_sums), 7));
    _mm512_storeu_si512((void*)sums, acc);
}

static TINYLLM_UNUSED int tinyllm_cpu_has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}
#else
#define TINYLLM_HAVE_VNNI_PATH 0
#endif

/* Which int8 path runs: the best the CPU has; tests turn VNNI off to compare. */
static TINYLLM_UNUSED int tinyllm_int8_vnni = -1;    /* -1: not decided yet */

static inline int tinyllm_use_vnni(void) {
#if TINYLLM_HAVE_VNNI_PATH
    if (tinyllm_int8_vnni < 0)
        tinyllm_int8_vnni = tinyllm_cpu_has_vnni();
    return tinyllm_int8_vnni;
#else
    return 0;
#endif
}

/* Turn the VNNI path on (if the CPU has it) or off; returns whether it was on. */
static TINYLLM_UNUSED int tinyllm_set_int8_vnni(int on) {
    int before = tinyllm_use_vnni();
#if TINYLLM_HAVE_VNNI_PATH
    tinyllm_int8_vnni = on && tinyllm_cpu_has_vnni();
#endif
    (void)on;
    return before;
}

static TINYLLM_UNUSED const char* tinyllm_int8_path(void) {
    if (tinyllm_use_vnni())
        return "avx512-vnni";
#if defined(__AVX512BW__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#else
    return "portable";
#endif
}

static inline void tinyllm_panel_i8(const tinyllm_packed* W, const int8_t* panel,
                                    const int8_t* q, const int32_t* column_sums,
                                    int32_t* sums) {
#if TINYLLM_HAVE_VNNI_PATH
    if (tinyllm_int8_vnni > 0) {
        tinyllm_panel_i8_vnni(panel, q, W->k_groups, column_sums, sums);
        return;
    }
#endif
#if defined(__AVX512BW__)
    tinyllm_panel_i8_avx512(panel, q, W->k_groups, sums);
#elif defined(__AVX2__)
    tinyllm_panel_i8_avx2(panel, q, W->k_groups, sums);
#else
    tinyllm_panel_i8_portable(panel, q, W->k_groups, sums);
#endif
    (void)column_sums;
}

/* ---------------------------------------------------------------------------
 * The projection
 * ------------------------------------------------------------------------- */

/* out (B, n) = H (B, k) @ W2 for a packed W2; ``scratch`` holds
 * tinyllm_packed_scratch(W, B) bytes. Returns 0 if a row of H is not finite (int8
 * only: the others let the caller's check of the outputs see it). */
static TINYLLM_UNUSED int tinyllm_packed_project(const tinyllm_packed* W, const float* H, Py_ssize_t B,
                                  float* out, void* scratch) {
    const Py_ssize_t k = W->k, n = W->n, panel_size = k * TINYLLM_WIDE_PANEL;
    float* wide = (float*)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float* a_scale = wide;                                   /* int8: (B,) row scales */
    int8_t* q = (int8_t*)(a_scale + B);                      /* int8: (B, 4 k_groups) */
    int32_t sums[TINYLLM_PANEL];
    Py_ssize_t p, b, j, width, j0;
    const float* panel;
    const char *start, *next;
    Py_ssize_t element;
    if (W->format == TINYLLM_FORMAT_I8) {
        tinyllm_use_vnni();
        for (b = 0; b < B; b++)
            if (!tinyllm_quantize_row(H + b * k, k, W->k_groups,
                                      q + b * W->k_groups * TINYLLM_INT8_GROUP, a_scale + b))
                return 0;
        for (p = 0; p < W->n_panels; p++) {
            j0 = p * TINYLLM_PANEL;
            width = n - j0 < TINYLLM_PANEL ? n - j0 : TINYLLM_PANEL;
            for (b = 0; b < B; b++) {
                tinyllm_panel_i8(W, (const int8_t*)W->panels + p * W->k_groups * 64,
                                 q + b * W->k_groups * TINYLLM_INT8_GROUP,
                                 W->column_sums + j0, sums);
                for (j = 0; j < width; j++)
                    out[b * n + j0 + j] = (float)sums[j] * (a_scale[b] * W->scales[j0 + j]);
            }
        }
        return 1;
    }
    /* One row reads each panel once, widening half precision in registers. A batch
     * reads each panel from cache for every row (a half-precision panel widened once,
     * into scratch, for all of them) while the next one is prefetched. */
    element = W->format == TINYLLM_FORMAT_F32 ? 4 : 2;
    for (p = 0; p < W->n_panels; p++) {
        j0 = p * TINYLLM_WIDE_PANEL;
        width = n - j0 < TINYLLM_WIDE_PANEL ? n - j0 : TINYLLM_WIDE_PANEL;
        start = (const char*)W->panels + p * panel_size * element;
        next = p + 1 < W->n_panels ? start + panel_size * element : NULL;
        if (B == 1) {
            if (W->format == TINYLLM_FORMAT_F32)
                tinyllm_panel_float(TINYLLM_FORMAT_F32, start, H, k, out + j0, width);
            else if (W->format == TINYLLM_FORMAT_F16)
                tinyllm_panel_float(TINYLLM_FORMAT_F16, start, H, k, out + j0, width);
            else
                tinyllm_panel_float(TINYLLM_FORMAT_BF16, start, H, k, out + j0, width);
            continue;
        }
        if (W->format == TINYLLM_FORMAT_F32) {
            panel = (const float*)start;
        } else {
            if (W->format == TINYLLM_FORMAT_F16)
                tinyllm_widen_f16((const uint16_t*)start, wide, panel_size);
            else
                tinyllm_widen_bf16((const uint16_t*)start, wide, panel_size);
            panel = wide;
        }
        tinyllm_panel_batch(panel, H, B, k, out + j0, n, width, next, panel_size * element);
    }
    return 1;
}

#endif  /* TINYLLM_PACKED_H */
