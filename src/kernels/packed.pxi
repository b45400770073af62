# kernels/packed.pxi -- f2 (and f1) on weights packed in panels: float32, float16,
# bfloat16, int8.
#
# The kernels are C (kernels/packed.h: the panel layout, the widening of half
# precision in registers, the int8 paths with and without VNNI); this file declares
# them for the table. They are compiled in each instruction set's build like the rest.

from _defs cimport tinyllm_packed

cdef extern from "kernels/packed.h":
    bint packed_project "tinyllm_packed_project"(const tinyllm_packed* W, const float* H,
                                                 Py_ssize_t B, float* out,
                                                 void* scratch) noexcept nogil
    const char* int8_path "tinyllm_int8_path"() noexcept nogil
    int set_int8_vnni "tinyllm_set_int8_vnni"(int on) noexcept nogil
