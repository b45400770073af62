"""Quantized models in the compiled kernels (tinyllm._generate.PackedMatrix): logits,
traces, generation and the command line on every weight format, against the NumPy
references of tinyllm.formats, on every instruction set.

- float16 and bfloat16: the logits are, bit for bit, those of the float32 model whose
  W2 is the dequantised one (the "twin"); so are the generated tokens.
- int8: the logits are, bit for bit, :func:`tinyllm.formats.int8_project` of the
  kernel's own f1 (which is the float32 twin's f1); generation draws each token as
  sample_logits does from those logits.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyllm import TinyLM, TinyLMConfig, formats, sample_logits
from tinyllm.cli import main

PACKED = list(formats.PACKED_FORMATS)
SIZES = [(5, 2, 3, 1), (40, 3, 2, 8), (300, 4, 3, 16), (1000, 8, 3, 64)]


def twin(q: TinyLM) -> TinyLM:
    """The float32 model whose W2 is ``q``'s, dequantised."""
    return TinyLM(q.config, q.vocab, q.embedding, q.W1, q.W2)


def quantized(fmt: str, sizes=(300, 4, 3, 16), activation=None, seed=0) -> TinyLM:
    V, d, c, h = sizes
    config = TinyLMConfig(V, d, c, h, dtype="float64", activation=activation)
    return TinyLM.random(config, seed=seed).quantize(fmt)


def contexts(model: TinyLM, n: int = 8, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, model.config.vocab_size, (n, model.config.context)).tolist()


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_half_formats_give_the_float32_twins_logits(each_isa, fmt, sizes, activation):
    q = quantized(fmt, sizes, activation)
    plain = twin(q)
    for context in contexts(q):
        got, want = q._forward(context), plain._forward(context)
        for a, b in zip(got, want):
            assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
        assert q.logits(context).tobytes() == plain.logits(context).tobytes()


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_int8_logits_are_the_reference_of_the_kernels_f1(each_isa, sizes, activation):
    q = quantized("int8", sizes, activation)
    plain = twin(q)
    packed = q.packed_W2
    for context in contexts(q):
        _x, f1, logits = q._forward(context)
        assert f1.tobytes() == plain._forward(context)[1].tobytes()
        expected = formats.int8_project(f1, packed.values, packed.scales)
        assert logits.dtype == np.float32 and logits.tobytes() == expected.tobytes()


@pytest.mark.parametrize("fmt", PACKED)
def test_the_reference_logits_are_close_to_the_kernels(fmt):
    q = quantized(fmt)
    batch = np.array(contexts(q))
    reference = formats.reference_logits(q, batch)
    for context, row in zip(batch.tolist(), reference):
        np.testing.assert_allclose(q.logits(context), row, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "options", [dict(), dict(temperature=0), dict(top_p=0.9, temperature=0.8), dict(top_k=5)]
)
def test_half_formats_generate_the_twins_tokens(fmt, options):
    q = quantized(fmt)
    plain = twin(q)
    prompt = [5, 6, 7]
    got = q.generate_positions(prompt, 50, rng=3, **options)
    assert got == plain.generate_positions(prompt, 50, rng=3, **options)
    assert got == list(q.stream_positions(prompt, 50, rng=3, **options))


@pytest.mark.parametrize(
    "options", [dict(), dict(temperature=0), dict(top_p=0.9, temperature=0.8), dict(min_p=0.1)]
)
def test_int8_generation_replays_as_sample_logits_on_each_step(each_isa, options):
    q = quantized("int8", activation="tanh")
    got = q.generate_positions([5, 6, 7], 40, rng=np.random.default_rng(9), **options)
    rng, context = np.random.default_rng(9), [5, 6, 7]
    for p in got:
        assert p == sample_logits(q.logits(context), rng=rng, **options)
        context = context[1:] + [p]
    assert got == list(q.stream_positions([5, 6, 7], 40, rng=np.random.default_rng(9), **options))


@pytest.mark.parametrize("fmt", PACKED)
def test_generate_trace_and_draws_work_on_every_format(fmt):
    q = TinyLM.from_blog().quantize(fmt)
    text = q.generate("el cielo es", 10, rng=0)
    assert len(text.split()) == 10
    trace = q.trace("el cielo es")
    assert trace.logits.dtype == np.float32 and abs(float(trace.probs.sum()) - 1) < 1e-6
    np.testing.assert_allclose(trace.logits, [2.5, 0.7, 2.0, 0.2, 0.5], rtol=1e-2, atol=2e-2)
    assert sum(q.draw_next("el cielo es", 100, rng=0).counts.values()) == 100


@pytest.mark.parametrize("fmt", PACKED)
def test_a_loaded_quantized_model_generates_as_the_saved_one(tmp_path, fmt):
    q = quantized(fmt)
    q.save(tmp_path / "q.npz")
    back = TinyLM.load(tmp_path / "q.npz")
    assert back.generate_positions([1, 2, 3], 30, rng=1) == q.generate_positions(
        [1, 2, 3], 30, rng=1
    )


@pytest.mark.parametrize("fmt", PACKED)
def test_cli_explain_and_generate_with_a_quantized_model(tmp_path, capsys, fmt):
    TinyLM.from_blog().save(tmp_path / "m.npz")
    assert (
        main(["quantize", str(tmp_path / "m.npz"), "--to", fmt, "--out", str(tmp_path / "q.npz")])
        == 0
    )
    capsys.readouterr()
    assert main(["explain", "--model", str(tmp_path / "q.npz"), "el cielo es"]) == 0
    out, err = capsys.readouterr()
    assert "most likely next word: azul" in out and err == ""
    assert (
        main(
            [
                "generate",
                "--model",
                str(tmp_path / "q.npz"),
                "el cielo es",
                "-n",
                "5",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.startswith("el cielo es ") and len(out.split()) == 8 and err == ""
