"""Weight formats (tinyllm.formats, TinyLM.quantize, save/load version 2, tinyllm
quantize): the conversions against hand-worked cases and properties, the int8
projection's NumPy reference against float64, the model's API, files (round trips,
version 1, hostile version 2 files) and the command line.

The kernels' side (logits and generation of a quantized model against these
references) is in test_quantized_kernels.py.
"""

from __future__ import annotations

import doctest
import json
import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_hostile_cli import run
from test_hostile_files import (
    DESCRIBED,
    SPECIAL,
    _npz,
    _same_file_spellings,
    assert_one_line_error,
    make_special,
    snapshot,
    symlink,
)

from tinyllm import TinyLM, TinyLMConfig, blog, display, formats
from tinyllm.formats import QuantizedMatrix, int8_project, quantize
from tinyllm.io import load_metadata

PACKED = list(formats.PACKED_FORMATS)
DATA = os.path.join(os.path.dirname(__file__), "data")


def small(dtype="float64", activation=None, seed=0) -> TinyLM:
    config = TinyLMConfig(40, 3, 2, 8, dtype=dtype, activation=activation)
    return TinyLM.random(config, seed=seed)


def bits(a: np.ndarray | None) -> tuple | None:
    return None if a is None else (a.dtype.str, a.shape, a.tobytes())


def test_the_docstring_examples():
    failures, tried = doctest.testmod(formats)
    assert tried >= 4 and failures == 0
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(TinyLM.quantize, "TinyLM.quantize", globs={"TinyLM": TinyLM}):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 3)


# ---------------------------------------------------------------------------
# The conversions, worked by hand
# ---------------------------------------------------------------------------
def test_float16_by_hand():
    W = np.array([[1.0, 0.1, -65504.0], [2.5, 1e-8, 3.0]])
    q = quantize(W, "float16")
    assert q.values.dtype == np.float16 and q.scales is None
    assert q.values.tolist() == np.array(W, dtype=np.float16).tolist()
    assert q.dequantize().dtype == np.float32
    assert q.dequantize()[0, 1] == np.float32(np.float16(0.1))  # 0.0999755859375
    with pytest.raises(ValueError, match=r"magnitude 65505 does not fit in float16"):
        quantize([[1.0, -65505.0]], "float16")


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.0, 0x3F80),
        (-2.0, 0xC000),
        (0.0, 0x0000),
        (-0.0, 0x8000),
        (np.uint32(0x3DCCCCCD).view(np.float32), 0x3DCD),  # 0.1: rounds up
        (np.uint32(0x3F808000).view(np.float32), 0x3F80),  # a tie: to the even one
        (np.uint32(0x3F818000).view(np.float32), 0x3F82),  # a tie: to the even one
        (np.uint32(0x3F807FFF).view(np.float32), 0x3F80),  # below half: down
        (np.uint32(0x00000001).view(np.float32), 0x0000),  # the smallest subnormal
        (np.uint32(0x7F7F0000).view(np.float32), 0x7F7F),  # the largest bfloat16
    ],
)
def test_bfloat16_by_hand(value, expected):
    q = quantize(np.array([[value]], dtype=np.float32), "bfloat16")
    assert q.values.dtype == np.uint16 and int(q.values[0, 0]) == expected
    assert q.dequantize()[0, 0].view(np.uint32) == expected << 16


def test_bfloat16_overflow_and_float64_beyond_float32():
    largest = np.uint32(0x7F7FFFFF).view(np.float32)  # rounds up to infinity
    with pytest.raises(ValueError, match="does not fit in bfloat16"):
        quantize([[1.0, float(largest)]], "bfloat16")
    with pytest.raises(ValueError, match=r"magnitude 1e\+39 does not fit in bfloat16"):
        quantize([[1e39]], "bfloat16")
    assert int(quantize([[3.3e38]], "bfloat16").values[0, 0]) == 0x7F78


def test_int8_by_hand():
    W = np.array([[1.0, -0.5, 0.0], [0.25, 2.0, 0.0], [-1.0, 0.0, 0.0]])
    q = quantize(W, "int8")
    s = np.float32(1 / 127), np.float32(2 / 127)
    assert q.scales.dtype == np.float32
    assert q.scales.tolist() == [s[0], s[1], 1.0]  # a column of zeros: scale 1
    # 0.25 / (1/127) = 31.75 -> 32; -0.5 / (2/127) = -31.75 -> -32
    assert q.values.tolist() == [[127, -32, 0], [32, 127, 0], [-127, 0, 0]]
    assert q.values.dtype == np.int8
    np.testing.assert_array_equal(q.dequantize(), q.values.astype(np.float32) * q.scales)


def test_int8_rounds_half_to_even():
    # Scale 1 exactly (largest 127): 2.5 -> 2, 3.5 -> 4, -0.5 -> 0.
    q = quantize([[127.0], [2.5], [3.5], [-0.5]], "int8")
    assert q.scales.tolist() == [1.0] and q.values[:, 0].tolist() == [127, 2, 4, 0]


def test_int8_tiny_columns_are_zeros():
    q = quantize([[1e-300, 1.0], [-1e-300, 0.5]], "int8")  # 1e-300 / 127: no float32 scale
    assert q.values[:, 0].tolist() == [0, 0] and q.scales[0] == 1.0


@pytest.mark.parametrize("fmt", [None, "int4", "Float16", "fp16", 8, "float32"])
def test_unknown_formats(fmt):
    with pytest.raises(ValueError, match="unknown weight format") as caught:
        quantize([[1.0]], fmt)
    assert "float16, bfloat16, int8" in str(caught.value)


@pytest.mark.parametrize("fmt", PACKED)
@pytest.mark.parametrize(
    "W, message",
    [
        ([[1.0, np.nan]], "NaN or infinite"),
        ([[np.inf]], "NaN or infinite"),
        ([1.0, 2.0], "2-D"),
        (np.zeros((0, 3)), "non-empty"),
    ],
)
def test_bad_matrices(fmt, W, message):
    with pytest.raises(ValueError, match=message):
        quantize(W, fmt)


def test_non_numbers_are_a_type_error():
    with pytest.raises(TypeError, match="real numbers"):
        quantize(np.array([["a"]]), "int8")


# ---------------------------------------------------------------------------
# The conversions, as properties
# ---------------------------------------------------------------------------
matrices = hnp.arrays(
    st.sampled_from([np.float32, np.float64]),
    hnp.array_shapes(min_dims=2, max_dims=2, max_side=9),
    elements=st.floats(-1e4, 1e4, width=32),
)


@settings(max_examples=200, deadline=None)
@given(W=matrices)
def test_int8_properties(W):
    q = quantize(W, "int8")
    assert q.values.shape == W.shape and q.scales.shape == (W.shape[1],)
    assert (np.abs(q.values.astype(int)) <= 127).all()
    amax = np.abs(W).max(axis=0)
    scales = (amax / 127).astype(np.float32)
    scales[scales == 0] = 1
    np.testing.assert_array_equal(q.scales, scales)
    # Each weight is within half a step (the float32 rounding of the scale aside),
    # where the scale is a normal float32 (a column below 1.5e-36 loses precision).
    normal = q.scales >= np.finfo(np.float32).tiny
    error = np.abs(q.values * q.scales.astype(np.float64) - W)[:, normal]
    assert (error <= q.scales[normal].astype(np.float64) * (0.5 + 1e-5)).all()
    # The largest weight of each column whose scale is normal is +-127.
    normal_nonzero = (amax / 127).astype(np.float32) >= np.finfo(np.float32).tiny
    assert (np.abs(q.values.astype(int)).max(axis=0)[normal_nonzero] == 127).all()


@settings(max_examples=200, deadline=None)
@given(W=matrices)
def test_float16_and_bfloat16_properties(W):
    half = quantize(W, "float16").dequantize()
    np.testing.assert_array_equal(half, W.astype(np.float16).astype(np.float32))
    brain = quantize(W, "bfloat16").dequantize()
    assert (brain.view(np.uint32) & 0xFFFF == 0).all()
    W32 = W.astype(np.float32).astype(np.float64)
    # The nearest bfloat16: within half a unit in the last of its 8 bits.
    assert (np.abs(brain - W32) <= np.abs(W32) * 2.0**-8 + 2.0**-134).all()  # (subnormals)


# ---------------------------------------------------------------------------
# QuantizedMatrix checks what it is given (load relies on it)
# ---------------------------------------------------------------------------
GOOD_SCALES = np.ones(3, dtype=np.float32)


@pytest.mark.parametrize(
    "fmt, values, scales, message",
    [
        ("int8", np.zeros((2, 3), np.int16), GOOD_SCALES, "int8 values must be int8"),
        ("int8", np.full((2, 3), -128, np.int8), GOOD_SCALES, r"\[-127, 127\], got -128"),
        ("int8", np.zeros((2, 3), np.int8), None, "need scales"),
        ("int8", np.zeros((2, 3), np.int8), np.ones(3), "scales must be float32"),
        ("int8", np.zeros((2, 3), np.int8), np.ones(4, np.float32), r"shape \(4,\)"),
        ("int8", np.zeros((2, 3), np.int8), np.zeros(3, np.float32), "finite and > 0"),
        ("int8", np.zeros((2, 3), np.int8), -GOOD_SCALES, "finite and > 0"),
        ("int8", np.zeros((2, 3), np.int8), GOOD_SCALES * np.nan, "finite and > 0"),
        ("int8", np.zeros((2, 3), np.int8), GOOD_SCALES * np.inf, "finite and > 0"),
        ("int8", np.zeros(3, np.int8), GOOD_SCALES, "2-D"),
        ("float16", np.zeros((2, 3), np.float32), None, "must be float16"),
        ("float16", np.full((2, 3), np.inf, np.float16), None, "NaN or infinite"),
        ("float16", np.zeros((2, 3), np.float16), GOOD_SCALES, "take no scales"),
        ("bfloat16", np.full((2, 3), 0x7F80, np.uint16), None, "NaN or infinite"),
        ("bfloat16", np.full((2, 3), 0xFFC1, np.uint16), None, "NaN or infinite"),
        ("bfloat16", np.zeros((2, 3), np.int16), None, "must be uint16"),
        ("int4", np.zeros((2, 3), np.int8), None, "unknown weight format"),
        ("float32", np.zeros((2, 3), np.float32), None, "unknown weight format"),
    ],
)
def test_quantized_matrix_refuses_what_does_not_fit(fmt, values, scales, message):
    with pytest.raises(ValueError, match=message):
        QuantizedMatrix(fmt, values, scales)


def test_quantized_matrix_keeps_read_only_native_copies():
    values = np.arange(6, dtype=">f2").reshape(2, 3)
    q = QuantizedMatrix("float16", values)
    assert q.values.dtype == np.float16 and q.values.dtype.isnative
    assert not q.values.flags.writeable and q.values.flags.c_contiguous
    assert q.shape == (2, 3) and q.nbytes == 12
    q8 = quantize(np.ones((4, 5)), "int8")
    assert q8.nbytes == 20 + 20 and not q8.scales.flags.writeable
    assert repr(q8) == "QuantizedMatrix(format='int8', shape=(4, 5))"


# ---------------------------------------------------------------------------
# The int8 projection's reference
# ---------------------------------------------------------------------------
def test_int8_project_by_hand():
    f1 = np.array([1.0, -0.5], dtype=np.float32)
    values = np.array([[127, -32], [32, 127]], dtype=np.int8)
    scales = np.array([0.5, 0.25], dtype=np.float32)
    # amax 1, inv 127: q = [127, rint(-63.5) = -64] (half to even)
    q = np.array([127, -64])
    a_scale = np.float32(1) / np.float32(127)
    expected = (q @ values.astype(int)).astype(np.float32) * (a_scale * scales)
    got = int8_project(f1, values, scales)
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
    assert int8_project(np.zeros(2, np.float32), values, scales).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="NaN or infinite"):
        int8_project(np.array([np.nan, 1], np.float32), values, scales)


def test_int8_project_rows_are_single_rows():
    rng = np.random.default_rng(1)
    q = quantize(rng.standard_normal((16, 50)), "int8")
    f1 = rng.standard_normal((7, 16)).astype(np.float32)
    batch = int8_project(f1, q.values, q.scales)
    for row, logits in zip(f1, batch):
        assert int8_project(row, q.values, q.scales).tobytes() == logits.tobytes()


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 300),
    V=st.integers(1, 40),
    spread=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_int8_project_is_within_its_documented_error_of_float64(seed, h, V, spread):
    rng = np.random.default_rng(seed)
    q = quantize(rng.standard_normal((h, V)) * spread, "int8")
    f1 = (rng.standard_normal(h) * rng.choice([1e-2, 1.0, 1e2])).astype(np.float32)
    got = int8_project(f1, q.values, q.scales).astype(np.float64)
    W = q.values.astype(np.float64) * q.scales.astype(np.float64)
    exact = f1.astype(np.float64) @ W
    amax = float(np.abs(f1).max())
    column = np.abs(W).sum(axis=0)  # sum_i |values_ij| * s_j
    bound = amax / 254 * column * (1 + 1e-5) + 1e-6 * amax * column
    assert (np.abs(got - exact) <= bound).all()


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", PACKED)
def test_quantize_a_model(fmt):
    model = small()
    q = model.quantize(fmt)
    assert q.weight_format == fmt and q.config.dtype == "float32"
    assert q.config == TinyLMConfig(40, 3, 2, 8, dtype="float32")
    assert q.vocab == model.vocab
    assert q.embedding.table.dtype == q.W1.dtype == np.float32
    np.testing.assert_array_equal(q.W1, model.W1.astype(np.float32))
    expected = quantize(model.W2, fmt)
    assert bits(q.packed_W2.values) == bits(expected.values)
    assert bits(q.packed_W2.scales) == bits(expected.scales)
    W2 = q.W2  # dequantised on each access, read-only
    assert W2.dtype == np.float32 and not W2.flags.writeable
    np.testing.assert_array_equal(W2, expected.dequantize())
    assert q.W2 is not W2 and q._W2 is None  # no float32 copy kept
    assert f"weight_format='{fmt}'" in repr(q)
    assert model.weight_format == "float64" and model.packed_W2 is None  # unchanged


def test_quantize_between_formats():
    model = small("float32")
    assert model.weight_format == "float32" and model.packed_W2 is None
    # float32 models' kernels read W2 packed in panels (float64 ones, the array)
    assert model._kernel_W2.format == "float32" and model._kernel_W2 is model._kernel_W2
    wide_model = small("float64")
    assert wide_model._kernel_W2 is wide_model.W2
    q = model.quantize("int8")
    back = q.quantize("float32")
    assert back.weight_format == "float32" and back.packed_W2 is None
    assert back.W2.tobytes() == q.W2.tobytes()
    wide = q.quantize("float64")
    assert wide.config.dtype == "float64" and wide.W2.tobytes() == q.W2.astype(np.float64).tobytes()
    again = q.quantize("int8")  # its own format: the same values, not quantised twice
    assert bits(again.packed_W2.values) == bits(q.packed_W2.values)
    assert bits(again.packed_W2.scales) == bits(q.packed_W2.scales)
    assert model.quantize("float32").W2.tobytes() == model.W2.tobytes()
    assert "weight_format" not in repr(model.quantize("float64"))
    with pytest.raises(ValueError, match="unknown weight format 'fp8'"):
        model.quantize("fp8")


def test_a_packed_W2_needs_float32_and_the_right_shape():
    model = small("float64")
    packed = quantize(model.W2, "int8")
    with pytest.raises(ValueError, match=r"config\.dtype must be float32"):
        TinyLM(model.config, model.vocab, model.embedding, model.W1, packed)
    config = TinyLMConfig(40, 3, 2, 8, dtype="float32")
    with pytest.raises(ValueError, match=r"W2 has shape \(8, 39\)"):
        TinyLM(config, model.vocab, model.embedding, model.W1, quantize(model.W2[:, 1:], "int8"))


def test_float16_overflow_from_the_model():
    model = small()
    big = TinyLM(model.config, model.vocab, model.embedding, model.W1, model.W2 * 1e6)
    with pytest.raises(ValueError, match="does not fit in float16"):
        big.quantize("float16")
    assert big.quantize("bfloat16").weight_format == "bfloat16"


def test_a_quantized_model_is_not_trained():
    from tinyllm import train

    q = TinyLM.from_blog().quantize("int8")
    with pytest.raises(ValueError, match=r"train in float32 or float64, then quantize"):
        train.fit(q, "el cielo es azul . el cielo es frío .")


@pytest.mark.parametrize("fmt", PACKED)
def test_the_display_shows_the_weight_format(fmt):
    q = small().quantize(fmt)
    html = display.model_html(q)
    assert f"float32, W2 in {fmt}, 488 parameters," in html  # 40*3 + 6*8 + 8*40
    # Bytes as stored: E and W1 in float32, W2 packed.
    assert q.nbytes == 40 * 3 * 4 + 6 * 8 * 4 + q.packed_W2.nbytes
    assert display.byte_size(q.nbytes) in html
    assert "float64, 488 parameters, 3.8 KiB" in display.model_html(small())


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [*PACKED, "float32", "float64"])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_save_load_round_trip_per_format(tmp_path, fmt, activation):
    q = small(activation=activation).quantize(fmt)
    q.save(tmp_path / "q.npz")
    back = TinyLM.load(tmp_path / "q.npz")
    assert back.weight_format == fmt and back.config == q.config and back.vocab == q.vocab
    assert bits(back.embedding.table) == bits(q.embedding.table)
    assert bits(back.W1) == bits(q.W1)
    if fmt in PACKED:
        assert bits(back.packed_W2.values) == bits(q.packed_W2.values)
        assert bits(back.packed_W2.scales) == bits(q.packed_W2.scales)
    assert bits(back.W2) == bits(q.W2)
    meta = load_metadata(tmp_path / "q.npz")
    assert meta["version"] == 2 and meta["weight_format"] == fmt
    with np.load(tmp_path / "q.npz") as npz:
        assert sorted(npz.files) == sorted(
            ["meta", "embeddings", "W1", "W2", *(["W2_scales"] if fmt == "int8" else [])]
        )


def test_a_version_1_file_still_loads():
    # tests/data/blog_v1.npz: the blog's model saved by tinyllm before weight formats.
    path = os.path.join(DATA, "blog_v1.npz")
    assert load_metadata(path)["version"] == 1 and "weight_format" not in load_metadata(path)
    model = TinyLM.load(path)
    blog_model = TinyLM.from_blog()
    assert model.weight_format == "float64" and model.vocab == blog_model.vocab
    assert bits(model.W2) == bits(blog_model.W2) and bits(model.W1) == bits(blog_model.W1)


def test_a_version_1_file_made_here_loads(tmp_path):
    model = small("float32", seed=3)
    meta = _meta_dict(model)
    meta["version"] = 1
    del meta["weight_format"]
    _npz(
        tmp_path / "v1.npz",
        meta=np.array(json.dumps(meta)),
        embeddings=model.embedding.table,
        W1=model.W1,
        W2=model.W2,
    )
    back = TinyLM.load(tmp_path / "v1.npz")
    assert back.weight_format == "float32" and bits(back.W2) == bits(model.W2)


def _meta_dict(model: TinyLM) -> dict:
    from tinyllm.io import _meta

    return json.loads(_meta(model, None))


def _entries(model: TinyLM, **changes) -> dict:
    """The entries of ``model``'s file, with ``changes`` (None removes an entry;
    ``meta`` updates the JSON)."""
    meta = _meta_dict(model)
    meta.update(changes.pop("meta", {}))
    entries = {
        "meta": np.array(json.dumps(meta)),
        "embeddings": model.embedding.table,
        "W1": model.W1,
    }
    packed = model.packed_W2
    if packed is None:
        entries["W2"] = model.W2
    else:
        entries["W2"] = packed.values
        if packed.scales is not None:
            entries["W2_scales"] = packed.scales
    for key, value in changes.items():
        if value is None:
            entries.pop(key)
        else:
            entries[key] = value
    return entries


V, H = 40, 8
HOSTILE = {
    "int8 values as float32": (
        "int8",
        dict(W2=np.zeros((H, V), np.float32)),
        "W2 is float32, W2 in int8 is stored as int8",
    ),
    "int8 values as uint8": ("int8", dict(W2=np.zeros((H, V), np.uint8)), "W2 is uint8"),
    "int8 values of -128": (
        "int8",
        dict(W2=np.full((H, V), -128, np.int8)),
        r"\[-127, 127\], got -128",
    ),
    "int8 values of another shape": (
        "int8",
        dict(W2=np.zeros((H, V + 1), np.int8)),
        r"W2 has shape \(8, 41\), expected \(8, 40\)",
    ),
    "no scales": ("int8", dict(W2_scales=None), "no W2_scales entry"),
    "float64 scales": (
        "int8",
        dict(W2_scales=np.ones(V)),
        "W2_scales is float64, expected float32",
    ),
    "scales of another shape": (
        "int8",
        dict(W2_scales=np.ones(V - 1, np.float32)),
        r"W2_scales has shape \(39,\)",
    ),
    "zero scales": ("int8", dict(W2_scales=np.zeros(V, np.float32)), "finite and > 0"),
    "negative scales": ("int8", dict(W2_scales=-np.ones(V, np.float32)), "finite and > 0"),
    "NaN scales": ("int8", dict(W2_scales=np.full(V, np.nan, np.float32)), "finite and > 0"),
    "infinite scales": ("int8", dict(W2_scales=np.full(V, np.inf, np.float32)), "finite and > 0"),
    "float16 values as float32": (
        "float16",
        dict(W2=np.zeros((H, V), np.float32)),
        "W2 is float32, W2 in float16 is stored as float16",
    ),
    "infinite float16": (
        "float16",
        dict(W2=np.full((H, V), np.inf, np.float16)),
        "float16 values contain NaN or infinite",
    ),
    "bfloat16 as int16": (
        "bfloat16",
        dict(W2=np.zeros((H, V), np.int16)),
        "W2 is int16, W2 in bfloat16 is stored as uint16",
    ),
    "NaN bfloat16": (
        "bfloat16",
        dict(W2=np.full((H, V), 0x7FC0, np.uint16)),
        "bfloat16 values contain NaN",
    ),
    "unknown format": ("int8", dict(meta={"weight_format": "int4"}), "its weight format is 'int4'"),
    "no format": ("int8", dict(meta={"weight_format": None}), "its weight format is None"),
    "packed with float64": (
        "int8",
        dict(meta={"config": {**_meta_dict(small())["config"]}}),
        "W2 in int8 goes with dtype float32",
    ),
    "format that is not the dtype": (
        "float32",
        dict(meta={"weight_format": "float64"}),
        "the weight format float64 differs from the dtype float32",
    ),
    "float32 W1 in a float16 file": (
        "float16",
        dict(W1=np.zeros((6, 8), np.float64)),
        "W1 is float64, the configuration says float32",
    ),
    "version 3": (
        "int8",
        dict(meta={"version": 3}),
        "format version 3; this tinyllm reads versions 1 to 2",
    ),
    "version true": ("int8", dict(meta={"version": True}), "format version True"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_version_2_files(tmp_path, capsys, case):
    fmt, changes, message = HOSTILE[case]
    model = small().quantize(fmt)
    path = _npz(tmp_path / "bad.npz", **_entries(model, **changes))
    with pytest.raises(ValueError, match=message) as caught:
        TinyLM.load(path)
    assert str(path) in str(caught.value)
    status, _, err = run(capsys, "explain", "--model", path, "t0 t1")
    assert_one_line_error(status, err, str(path))


def test_a_huge_scales_header_is_refused_before_reading(tmp_path):
    # A W2_scales entry that claims 10**10 float32 (40 GB): refused from its header.
    import io
    import zipfile

    model = small().quantize("int8")
    path = _npz(tmp_path / "bomb.npz", **_entries(model, W2_scales=None))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**10,)}
    )
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("W2_scales.npy", header.getvalue() + bytes(64))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"does not match its header|claims"):
        TinyLM.load(path)
    assert time.perf_counter() - started < 2


def test_a_spanish_error_for_a_hostile_file(tmp_path, capsys):
    model = small().quantize("int8")
    path = _npz(tmp_path / "bad.npz", **_entries(model, W2_scales=np.zeros(V, np.float32)))
    status, _, err = run(capsys, "--lang", "es", "explain", "--model", path, "t0 t1")
    assert_one_line_error(status, err, str(path), "las escalas int8 deben ser finitas y > 0")


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------
@pytest.fixture
def trained_file(tmp_path):
    path = tmp_path / "model.npz"
    model = blog.part3_model("float64")
    from tinyllm.io import save_model

    save_model(model, path, training={"corpus": "hand-made", "steps": 3})
    return path


@pytest.mark.parametrize("fmt", PACKED)
def test_cli_quantize(tmp_path, capsys, trained_file, fmt):
    out = tmp_path / f"q-{fmt}.npz"
    status, stdout, err = run(capsys, "quantize", trained_file, "--to", fmt, "--out", out)
    assert status == 0 and err == ""
    q = TinyLM.load(out)
    assert q.weight_format == fmt
    expected = TinyLM.load(trained_file).quantize(fmt)
    assert bits(q.packed_W2.values) == bits(expected.packed_W2.values)
    w2_after = "25 bytes" if fmt == "int8" else "10 bytes"  # int8: 5 values, 5 scales
    assert stdout.splitlines() == [
        f"wrote {out}: W2 in {fmt} (40 bytes -> {w2_after}), all weights 168 bytes -> "
        f"{q.nbytes} bytes"
    ]
    # The training facts stay with the model.
    assert load_metadata(out)["training"] == {"corpus": "hand-made", "steps": 3}


def test_cli_quantize_in_spanish(tmp_path, capsys, trained_file):
    out = tmp_path / "q.npz"
    status, stdout, _ = run(
        capsys, "quantize", trained_file, "--to", "int8", "--out", out, "--lang", "es"
    )
    assert status == 0
    assert stdout.startswith(
        f"se escribió {out}: W2 en int8 (40 bytes -> 25 bytes), todos los pesos"
    )
    status, _, err = run(
        capsys, "--lang", "es", "quantize", trained_file, "--to", "int4", "--out", out
    )
    assert_one_line_error(status, err, "opción no válida: 'int4'")


def test_cli_quantize_errors(tmp_path, capsys, trained_file):
    out = tmp_path / "q.npz"
    for argv, fragment in [
        (("--to", "int4", "--out", out), "invalid choice: 'int4'"),
        (("--out", out), "the following arguments are required: --to"),
        (("--to", "int8"), "the following arguments are required: --out"),
    ]:
        status, _, err = run(capsys, "quantize", trained_file, *argv)
        assert_one_line_error(status, err, fragment)
    status, _, err = run(capsys, "quantize", tmp_path / "missing.npz", "--to", "int8", "--out", out)
    assert_one_line_error(status, err, "missing.npz")
    assert not out.exists()
    model = TinyLM.load(trained_file)
    huge = TinyLM(model.config, model.vocab, model.embedding, model.W1, model.W2 * 1e5)
    huge.save(tmp_path / "huge.npz")
    status, _, err = run(capsys, "quantize", tmp_path / "huge.npz", "--to", "float16", "--out", out)
    assert_one_line_error(status, err, "magnitude 250000 does not fit in float16")
    status, _, err = run(
        capsys, "--lang", "es", "quantize", tmp_path / "huge.npz", "--to", "float16", "--out", out
    )
    assert_one_line_error(status, err, "un peso de magnitud 250000 no cabe en float16")
    assert not out.exists()


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("through_link", [False, True])
def test_cli_quantize_refuses_a_special_out(tmp_path, capsys, trained_file, kind, through_link):
    node = tmp_path / "node"
    make_special(kind, node)
    target = node
    if through_link:
        target = tmp_path / "link"
        symlink(target, "node")
    before = snapshot(tmp_path)
    status, out, err = run(capsys, "quantize", trained_file, "--to", "int8", "--out", target)
    assert_one_line_error(status, err, str(target), DESCRIBED[kind])
    assert out == "" and snapshot(tmp_path) == before


def test_cli_quantize_follows_a_symlink_out(tmp_path, capsys, trained_file):
    (tmp_path / "models").mkdir()
    real = tmp_path / "models" / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    symlink(link, os.path.join("models", "real.npz"))
    status, _, _ = run(capsys, "quantize", trained_file, "--to", "bfloat16", "--out", link)
    assert status == 0
    assert link.is_symlink() and TinyLM.load(real).weight_format == "bfloat16"
    assert sorted(os.listdir(tmp_path / "models")) == ["real.npz"]


@pytest.mark.parametrize("spelling", ["same", "dotted", "hard link", "symlink"])
def test_cli_quantize_refuses_out_equal_to_model(tmp_path, capsys, spelling):
    TinyLM.from_blog().save(tmp_path / "m.npz")
    out = _same_file_spellings(tmp_path, "m.npz")[spelling]
    before = snapshot(tmp_path)
    status, _, err = run(capsys, "quantize", tmp_path / "m.npz", "--to", "int8", "--out", out)
    assert_one_line_error(status, err, "--out and MODEL are the same file")
    assert snapshot(tmp_path) == before


def test_cli_quantize_of_a_special_model_fails_at_once(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    make_special("fifo", fifo)
    started = time.perf_counter()
    status, _, err = run(capsys, "quantize", fifo, "--to", "int8", "--out", tmp_path / "q.npz")
    assert time.perf_counter() - started < 5
    assert_one_line_error(status, err, "a FIFO")
    assert not (tmp_path / "q.npz").exists()
