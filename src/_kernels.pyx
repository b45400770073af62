"""tinyllm's kernels, compiled once per instruction set.

setup.py builds this file as ``tinyllm._kernels_baseline`` (any CPU of the target
architecture) and, on x86-64, as ``tinyllm._kernels_avx2`` (AVX2 + FMA + F16C) and
``tinyllm._kernels_avx512`` (AVX-512 F/DQ/VL/BW): the same source, other compiler flags.
Each build exports one thing, ``table``: a capsule holding its ``Kernels`` struct
(``_kernel_table.pxd``), which ``tinyllm._cpu`` hands to the stage modules.

Nothing else is compiled per instruction set: argument checks, dtype dispatch and
errors live in the stage modules, built once. The kernels are ``noexcept nogil``
functions on raw pointers that trust their arguments; they come in the order data
flows through the model (one file each, under ``src/kernels/``).
"""

from cpython.pycapsule cimport PyCapsule_New

from _kernel_table cimport Kernels

include "kernels/fastmath.pxi"   # exp and the row reductions the others use
include "kernels/linalg.pxi"     # dot product, projection (the model's f1 and f2)
include "kernels/softmax.pxi"    # softmax and log-softmax of rows
include "kernels/filters.pxi"    # logit bias, penalties and the filters
include "kernels/sampling.pxi"   # draws
include "kernels/packed.pxi"     # f2 on W2 packed in panels, in four formats
include "kernels/generate.pxi"   # the forward pass and the generation loop
include "kernels/train.pxi"      # cross-entropy, gather/scatter, optimizers

cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define TINYLLM_ISA "avx512"
    #elif defined(__AVX2__)
    #define TINYLLM_ISA "avx2"
    #else
    #define TINYLLM_ISA "baseline"
    #endif
    """
    const char* TINYLLM_ISA

cdef Kernels TABLE

TABLE.isa = TINYLLM_ISA
TABLE.dot_f32, TABLE.dot_f64 = dot_kernel[float], dot_kernel[double]
TABLE.project_f32, TABLE.project_f64 = project_checked[float], project_checked[double]
TABLE.softmax_rows_f32, TABLE.softmax_rows_f64 = softmax_rows[float], softmax_rows[double]
TABLE.exp_array_f32, TABLE.exp_array_f64 = exp_array[float], exp_array[double]
TABLE.check_weights_f32, TABLE.check_weights_f64 = check_weights[float], check_weights[double]
TABLE.check_logits_f32, TABLE.check_logits_f64 = check_logits[float], check_logits[double]
TABLE.sample_rows_f32, TABLE.sample_rows_f64 = sample_rows[float], sample_rows[double]
TABLE.sample_logits_rows_f32 = sample_logits_rows[float]
TABLE.sample_logits_rows_f64 = sample_logits_rows[double]
TABLE.filter_logits_rows_f32 = filter_logits_rows[float]
TABLE.filter_logits_rows_f64 = filter_logits_rows[double]
TABLE.draw_weights_once_f32 = draw_weights_once[float]
TABLE.draw_weights_once_f64 = draw_weights_once[double]
TABLE.draw_logits_once_f32 = draw_logits_once[float]
TABLE.draw_logits_once_f64 = draw_logits_once[double]
TABLE.draw_min_p_once_f32 = draw_min_p_once[float]
TABLE.draw_min_p_once_f64 = draw_min_p_once[double]
TABLE.draw_top_k_once_f32 = draw_top_k_once[float]
TABLE.draw_top_k_once_f64 = draw_top_k_once[double]
TABLE.greedy_once_f32, TABLE.greedy_once_f64 = greedy_once[float], greedy_once[double]
TABLE.adjust_logits_f32 = adjust_logits[float]
TABLE.adjust_logits_f64 = adjust_logits[double]
TABLE.filter_exp_array = filter_exp_array
TABLE.exp_weights_f32, TABLE.exp_weights_f64 = exp_weights[float], exp_weights[double]
TABLE.forward_row_f32, TABLE.forward_row_f64 = forward_row[float], forward_row[double]
TABLE.generate_tokens_f32 = generate_tokens[float]
TABLE.generate_tokens_f64 = generate_tokens[double]
TABLE.generate_batch_f32 = generate_batch[float]
TABLE.generate_batch_f64 = generate_batch[double]
TABLE.packed_project = packed_project
TABLE.int8_path = int8_path
TABLE.set_int8_vnni = set_int8_vnni
TABLE.gather_f32, TABLE.gather_f64 = gather[float], gather[double]
TABLE.tanh_all_f32, TABLE.tanh_all_f64 = tanh_all[float], tanh_all[double]
TABLE.xent_f32, TABLE.xent_f64 = xent[float], xent[double]
TABLE.tanh_backward_f32, TABLE.tanh_backward_f64 = tanh_backward[float], tanh_backward[double]
TABLE.scatter_rows_f32, TABLE.scatter_rows_f64 = scatter_rows[float], scatter_rows[double]
TABLE.rows_absmax_f32, TABLE.rows_absmax_f64 = rows_absmax[float], rows_absmax[double]
TABLE.clear_rows_f32, TABLE.clear_rows_f64 = clear_rows[float], clear_rows[double]
TABLE.absmax_f32, TABLE.absmax_f64 = absmax[float], absmax[double]
TABLE.sgd_f32, TABLE.sgd_f64 = sgd[float], sgd[double]
TABLE.adam_f32, TABLE.adam_f64 = adam[float], adam[double]

#: This build's instruction set: "baseline", "avx2" or "avx512".
ISA = TINYLLM_ISA.decode()

#: The capsule of this build's ``Kernels`` table (name "tinyllm.Kernels").
table = PyCapsule_New(&TABLE, "tinyllm.Kernels", NULL)
