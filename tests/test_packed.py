"""W2 packed in panels (tinyllm._generate.PackedMatrix, src/kernels/packed.h): every
format against its exact reference, on every instruction set and int8 path, and the
batched generation loop against one sequence at a time."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm import _cpu
from tinyllm._generate import (
    BatchGeneration,
    Generation,
    PackedMatrix,
    forward,
    int8_path,
    set_int8_vnni,
)

ISAS = _cpu.available()


@pytest.fixture(params=ISAS)
def isa(request):
    previous = _cpu.use(request.param)
    yield request.param
    _cpu.use(previous)


def random_arrays(V, d, c, h, seed=0):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((V, d)).astype(np.float32)
    W1 = (rng.standard_normal((c * d, h)) / np.sqrt(c * d)).astype(np.float32)
    W2 = (rng.standard_normal((h, V)) / np.sqrt(h)).astype(np.float32)
    return E, W1, W2


def to_bfloat16(W):
    """The upper halves of float32 (truncated: any bfloat16 values will do here)."""
    return (np.ascontiguousarray(W, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def widen_bfloat16(values):
    return (values.astype(np.uint32) << 16).view(np.float32)


def int8_columns(W):
    scales = (np.abs(W).max(axis=0) / 127).astype(np.float32)
    scales[scales == 0] = 1
    return np.clip(np.rint(W / scales), -127, 127).astype(np.int8), scales


def int8_reference(f1, values, scales):
    """kernels/packed.h's int8 projection, in NumPy (every step in float32, the sum exact)."""
    f1 = f1.astype(np.float32)
    amax = np.abs(f1).max()
    inv = np.float32(127) / amax if amax > 0 else np.float32(0)
    q = np.clip(np.rint(f1 * inv), -127, 127).astype(np.int64)
    sums = q @ values.astype(np.int64)
    a_scale = np.float32(amax / np.float32(127))
    return sums.astype(np.float32) * (a_scale * scales.astype(np.float32))


SHAPES = [(5, 2, 3, 1), (17, 2, 3, 5), (100, 3, 4, 8), (1000, 3, 3, 13), (4099, 16, 4, 67)]


@pytest.mark.parametrize("shape", SHAPES)
def test_float_formats_equal_the_float32_projection_of_their_values(isa, shape):
    E, W1, W2 = random_arrays(*shape)
    context = list(range(shape[2]))
    logits = forward(E, W1, W2, context)[2]
    # float32 panels: the bits of the row-major projection (same tokens as before)
    assert np.array_equal(forward(E, W1, PackedMatrix(W2), context)[2], logits)
    half = W2.astype(np.float16)
    assert np.array_equal(
        forward(E, W1, PackedMatrix(half), context)[2],
        forward(E, W1, half.astype(np.float32), context)[2],
    )
    bf = to_bfloat16(W2)
    assert np.array_equal(
        forward(E, W1, PackedMatrix(bf), context)[2],
        forward(E, W1, widen_bfloat16(bf), context)[2],
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_int8_equals_its_reference_on_every_path(isa, shape):
    E, W1, W2 = random_arrays(*shape, seed=1)
    values, scales = int8_columns(W2)
    packed = PackedMatrix(values, scales)
    context = list(range(shape[2]))
    _, f1, _ = forward(E, W1, W2, context)
    expected = int8_reference(f1, values, scales)
    before = set_int8_vnni(True)
    try:
        for vnni in (True, False):
            set_int8_vnni(vnni)
            assert np.array_equal(forward(E, W1, packed, context)[2], expected), int8_path()
    finally:
        set_int8_vnni(before)


def test_int8_paths_are_named():
    previous = _cpu.active()
    try:
        paths = set()
        for isa in ISAS:
            _cpu.use(isa)
            paths.add(int8_path())
            set_int8_vnni(False)
            assert int8_path() in ("avx512", "avx2", "portable")
            set_int8_vnni(True)
    finally:
        _cpu.use(previous)
    assert paths <= {"avx512-vnni", "avx512", "avx2", "portable"}
    assert "portable" in paths


@settings(max_examples=40, deadline=None)
@given(
    V=st.integers(1, 70),
    h=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
)
def test_every_format_on_random_shapes(V, h, seed, scale):
    E, W1, W2 = random_arrays(V, 2, 2, h, seed)
    W2 = W2 * np.float32(scale)
    context = [0, V - 1]
    for isa in ISAS:
        previous = _cpu.use(isa)
        try:
            _, f1, logits = forward(E, W1, W2, context)
            assert np.array_equal(forward(E, W1, PackedMatrix(W2), context)[2], logits)
            values, scales = int8_columns(W2)
            got = forward(E, W1, PackedMatrix(values, scales), context)[2]
            assert np.array_equal(got, int8_reference(f1, values, scales))
        finally:
            _cpu.use(previous)


def test_int8_of_a_zero_hidden_layer_gives_zero_logits():
    E, W1, W2 = random_arrays(20, 2, 2, 8)
    values, scales = int8_columns(W2)
    logits = forward(E, np.zeros_like(W1), PackedMatrix(values, scales), [0, 1])[2]
    assert np.array_equal(logits, np.zeros(20, np.float32))


def test_packed_attributes_and_bytes():
    _, _, W2 = random_arrays(33, 2, 2, 9)
    for values, scales, name, itemsize in [
        (W2, None, "float32", 4),
        (W2.astype(np.float16), None, "float16", 2),
        (to_bfloat16(W2), None, "bfloat16", 2),
        (*int8_columns(W2), "int8", 1),
    ]:
        packed = PackedMatrix(values, scales)
        assert packed.format == name
        assert packed.shape == (9, 33)
        rows = 12 if name == "int8" else 9  # int8 rows come in groups of 4
        assert packed.nbytes >= rows * 48 * itemsize
        assert name in repr(packed)


def test_packed_accepts_byte_swapped_strided_and_read_only_values():
    E, W1, W2 = random_arrays(50, 2, 2, 10)
    expected = forward(E, W1, PackedMatrix(W2), [1, 2])[2]
    swapped = W2.astype(W2.dtype.newbyteorder(">"))
    strided = np.repeat(W2, 2, axis=1)[:, ::2]
    read_only = W2.copy()
    read_only.flags.writeable = False
    for values in (swapped, strided, read_only, np.asfortranarray(W2)):
        assert np.array_equal(forward(E, W1, PackedMatrix(values), [1, 2])[2], expected)


@pytest.mark.parametrize(
    "values, scales, error, match",
    [
        (np.zeros((2, 3), np.float64), None, TypeError, "float32, float16"),
        (np.zeros((2, 3, 1), np.float32), None, TypeError, "2-D"),
        (np.zeros((0, 3), np.float32), None, TypeError, "non-empty"),
        (np.array([[np.nan, 1.0]], np.float32), None, ValueError, "finite"),
        (np.array([[np.inf, 1.0]], np.float16), None, ValueError, "finite"),
        (np.array([[0x7F80, 0]], np.uint16), None, ValueError, "finite bfloat16"),
        (np.zeros((2, 3), np.float32), np.ones(3, np.float32), ValueError, "scales are for int8"),
        (np.array([[-128, 0]], np.int8), np.ones(2, np.float32), ValueError, r"\[-127, 127\]"),
        (np.zeros((2, 3), np.int8), None, ValueError, "column scales"),
        (np.zeros((2, 3), np.int8), np.ones(2, np.float32), ValueError, "3 floats"),
        (np.zeros((2, 3), np.int8), np.array([1, 0, 1], np.float32), ValueError, "> 0"),
        (np.zeros((2, 3), np.int8), np.array([1, np.inf, 1], np.float32), ValueError, "finite"),
    ],
)
def test_bad_packed_values_are_refused(values, scales, error, match):
    with pytest.raises(error, match=match):
        PackedMatrix(values, scales)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_packed_W1_gives_the_bits_of_the_array(isa, shape):
    E, W1, W2 = random_arrays(*shape, seed=2)
    context = list(range(shape[2]))
    _, f1, logits = forward(E, W1, W2, context)
    for w2 in (W2, PackedMatrix(W2)):
        got = forward(E, PackedMatrix(W1), w2, context)
        assert np.array_equal(got[1], f1) and np.array_equal(got[2], logits)
    half = W1.astype(np.float16)  # any format works for W1 too: its widened values' f1
    assert np.array_equal(
        forward(E, PackedMatrix(half), W2, context)[1],
        forward(E, half.astype(np.float32), W2, context)[1],
    )
    tanh = forward(E, W1, W2, context, tanh=True)
    assert np.array_equal(forward(E, PackedMatrix(W1), W2, context, tanh=True)[2], tanh[2])


def test_a_batch_with_packed_W1_and_W2_equals_each_sequence_alone(isa):
    E, W1, W2 = random_arrays(300, 4, 3, 24, seed=4)
    P1, P2 = PackedMatrix(W1), PackedMatrix(W2)
    contexts = [[i, i + 1, i + 2] for i in range(6)]
    alone = [Generation(E, W1, W2, ctx, rng=i).take(25) for i, ctx in enumerate(contexts)]
    batch = BatchGeneration([Generation(E, P1, P2, ctx, rng=i) for i, ctx in enumerate(contexts)])
    assert np.array_equal(batch.take(25), np.array(alone))


def test_a_packed_W2_needs_float32_arrays_of_its_shape():
    E, W1, W2 = random_arrays(20, 2, 2, 8)
    with pytest.raises(TypeError, match="float32 with a packed W1 or W2"):
        forward(E.astype(np.float64), W1.astype(np.float64), PackedMatrix(W2), [0, 1])
    with pytest.raises(ValueError, match="do not fit"):
        forward(E, W1, PackedMatrix(W2[:, :10]), [0, 1])


# ---------------------------------------------------------------------------
# Generation: packed W2, and batches
# ---------------------------------------------------------------------------
SAMPLING = [
    {},
    {"temperature": 0.0},
    {"temperature": 0.7, "top_k": 5, "top_p": 0.9},
    {"min_p": 0.05, "repetition_penalty": 1.3, "penalty_last_n": 8},
    {"typical_p": 0.8, "presence_penalty": 0.5, "frequency_penalty": 0.2},
]


@pytest.mark.parametrize("options", SAMPLING)
def test_generation_on_packed_float32_gives_the_same_tokens(isa, options):
    E, W1, W2 = random_arrays(300, 4, 3, 24)
    plain = Generation(E, W1, W2, [1, 2, 3], rng=5, **options).take(40)
    packed = Generation(E, W1, PackedMatrix(W2), [1, 2, 3], rng=5, **options).take(40)
    assert np.array_equal(plain, packed)


def formats_of(W2):
    return [
        W2,
        PackedMatrix(W2),
        PackedMatrix(W2.astype(np.float16)),
        PackedMatrix(to_bfloat16(W2)),
        PackedMatrix(*int8_columns(W2)),
    ]


@pytest.mark.parametrize("options", SAMPLING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_gives_each_sequence_its_own_tokens(isa, options, dtype):
    E, W1, W2 = random_arrays(200, 4, 3, 20, seed=3)
    weights = formats_of(W2) if dtype == np.float32 else [W2.astype(dtype)]
    E, W1 = E.astype(dtype), W1.astype(dtype)
    contexts = [[1, 2, 3], [4, 5, 6], [1, 2, 3], [199, 0, 7], [9, 9, 9]]
    for w in weights:
        alone = [
            Generation(E, W1, w, ctx, rng=i, history=ctx, **options).take(30)
            for i, ctx in enumerate(contexts)
        ]
        batch = BatchGeneration(
            [
                Generation(E, W1, w, ctx, rng=i, history=ctx, **options)
                for i, ctx in enumerate(contexts)
            ]
        )
        got = np.concatenate([batch.take(7), batch.take(0), batch.take(23)], axis=1)
        assert np.array_equal(got, np.array(alone)), type(w)


def test_a_batch_of_the_blog_sized_model(isa):
    E, W1, W2 = (a.astype(np.float64) for a in random_arrays(5, 2, 3, 1))
    alone = [Generation(E, W1, W2, [0, 1, 2], rng=i).take(50) for i in range(3)]
    batch = BatchGeneration([Generation(E, W1, W2, [0, 1, 2], rng=i) for i in range(3)])
    assert np.array_equal(batch.take(50), np.array(alone))


def test_retired_sequences_are_skipped_and_the_rest_unchanged():
    E, W1, W2 = random_arrays(100, 4, 3, 16)
    packed = PackedMatrix(W2)
    alone = [Generation(E, W1, packed, [i, 1, 2], rng=i).take(20) for i in range(4)]
    batch = BatchGeneration([Generation(E, W1, packed, [i, 1, 2], rng=i) for i in range(4)])
    batch.retire(2)  # before any step: the pending first logits follow the states
    first = batch.take(10)
    assert batch.active == [0, 1, 3]
    batch.retire(0)
    second = batch.take(10)
    assert np.array_equal(first, np.array(alone)[[0, 1, 3], :10])
    assert np.array_equal(second, np.array(alone)[[1, 3], 10:])
    with pytest.raises(ValueError, match="not in the batch"):
        batch.retire(0)
    batch.retire(1)
    batch.retire(3)
    assert batch.take(5).shape == (0, 5)


def test_a_batch_needs_one_model_and_a_generator_per_sequence():
    E, W1, W2 = random_arrays(50, 2, 2, 8)
    other = PackedMatrix(W2)
    gen = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least one"):
        BatchGeneration([])
    with pytest.raises(TypeError, match="Generation"):
        BatchGeneration([object()])
    with pytest.raises(ValueError, match="one model"):
        BatchGeneration([Generation(E, W1, W2, [0, 1]), Generation(E, W1, other, [0, 1])])
    with pytest.raises(ValueError, match="Generator of its own"):
        BatchGeneration(
            [Generation(E, W1, W2, [0, 1], rng=gen), Generation(E, W1, W2, [0, 1], rng=gen)]
        )
    with pytest.raises(ValueError, match="n must be >= 0"):
        BatchGeneration([Generation(E, W1, W2, [0, 1])]).take(-1)


def test_a_failing_step_names_its_sequence():
    E, W1, W2 = random_arrays(50, 2, 2, 8)
    # Sequence 1's bias makes token 49 near the float32 maximum; a negative frequency
    # penalty then adds as much again once 49 is in the window: +inf at step 2.
    gens = [
        Generation(E, W1, W2, [0, 1], rng=0),
        Generation(E, W1, W2, [0, 1], rng=1, logit_bias={49: 3e38}, frequency_penalty=-3e38),
    ]
    batch = BatchGeneration(gens)
    with pytest.raises(ValueError, match=r"token 1 is \+inf.*\(sequence 1 of the batch\)"):
        batch.take(5)
