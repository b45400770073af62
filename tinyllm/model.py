"""TinyLM: the blog's next-token model.

words --vocab--> positions --embedding--> (c, d) --flatten--> x (c*d,)
f1: x @ W1 -> (h,)       one dot product per hidden unit (tanh(x @ W1) with activation="tanh")
f2: f1 @ W2 -> (V,)      one score (logit) per vocabulary token
softmax(logits / T) -> next-token probabilities
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np

from tinyllm._arrays import as_weight_matrix, check_memory, checked_int
from tinyllm._compiled import (
    BatchGeneration,
    Generation,
    PackedMatrix,
    as_generator,
    forward,
    sample_logits,
    softmax,
)
from tinyllm.config import TinyLMConfig
from tinyllm.embedding import Embedding
from tinyllm.formats import QuantizedMatrix, check_format, quantize
from tinyllm.vocab import Vocab

__all__ = ["Draws", "SamplingOptions", "TinyLM", "Trace"]


@dataclass(frozen=True)
class Trace:
    """Every intermediate of one forward pass, for teaching and debugging."""

    words: list[str]  # the last c words of the prompt, as typed
    positions: list[int]  # their rows in the embedding table
    ids: list[int]  # their ids in the vocabulary (the blog's 578, 350, 698)
    embeddings: np.ndarray  # (c, d) one row per word
    x: np.ndarray  # (c*d,) the embeddings flattened row by row
    f1: np.ndarray  # (h,) x @ W1
    logits: np.ndarray  # (V,) f1 @ W2
    probs: np.ndarray  # (V,) softmax(logits / temperature)
    tokens: list[str]  # the vocabulary, in logit order
    temperature: float
    activation: str | None = None  # the model's hidden layer: None (x @ W1) or "tanh"
    unknown: tuple[bool, ...] = ()  # per word: not in the vocabulary (read as <unk>)

    def __repr__(self) -> str:
        """The pipeline stage by stage, in 80 columns (see :func:`tinyllm.display.trace_text`)."""
        from tinyllm import display

        return display.trace_text(self, width=display.TERMINAL_WIDTH)

    def _repr_html_(self) -> str:
        """The pipeline as the blog post's diagram, for notebooks."""
        from tinyllm import display

        return display.trace_html(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays become lists of Python floats)."""
        return {
            "words": list(self.words),
            "positions": list(self.positions),
            "ids": list(self.ids),
            "embeddings": self.embeddings.tolist(),
            "x": self.x.tolist(),
            "f1": self.f1.tolist(),
            "logits": self.logits.tolist(),
            "probs": self.probs.tolist(),
            "tokens": list(self.tokens),
            "temperature": self.temperature,
        }


class SamplingOptions(NamedTuple):
    """How each next token is drawn: the decoding chain of :func:`tinyllm.sample_logits`,
    in the order it applies (bias and penalties, temperature, then the filters). A
    generation method gathers its arguments into one of these and hands it to the
    compiled loop, which checks it once, before the first token. (A NamedTuple:
    immutable, and cheap to make on every call.)"""

    temperature: float = 1.0  # 0 is greedy
    top_k: int | None = None  # None: off
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    top_n_sigma: float | None = None
    min_tokens_to_keep: int = 1
    logit_bias: dict | None = None  # {word or position: bias}
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int | None = 64  # None: the whole history


#: What the generation methods' ``**sampling`` keywords may be (SamplingOptions' fields
#: after the ones they take by position).
_MORE_SAMPLING = SamplingOptions._fields[4:]


@dataclass(frozen=True)
class Draws:
    """n draws of the next token for one prompt (the blog notebooks' experiment)."""

    prompt: str
    tokens: list[str]  # the drawn tokens, in order
    probs: np.ndarray  # (V,) the model's probability of each vocabulary token
    vocab: tuple[str, ...]  # the vocabulary, in the order of probs

    @property
    def counts(self) -> dict[str, int]:
        """How often each vocabulary token was drawn (every token listed, 0 included)."""
        seen = Counter(self.tokens)
        return {token: seen[token] for token in self.vocab}

    @property
    def frequencies(self) -> dict[str, float]:
        """Observed frequency of each vocabulary token (all 0.0 when there are no draws)."""
        n = max(len(self.tokens), 1)
        return {token: count / n for token, count in self.counts.items()}

    def __repr__(self) -> str:
        """Each token's observed frequency beside the model's probability, in 80 columns."""
        from tinyllm import display

        return display.draws_text(self, width=display.TERMINAL_WIDTH)

    def _repr_html_(self) -> str:
        """The same chart with bars, for notebooks."""
        from tinyllm import display

        return display.draws_html(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "draws": list(self.tokens),
            "counts": self.counts,
            "probs": dict(zip(self.vocab, self.probs.tolist())),
        }


class TinyLM:
    """The blog's model: embeddings, ``f1`` (dot products) and ``f2`` (projection).

    Parameters
    ----------
    config : TinyLMConfig
        The sizes (V, d, c, h) and dtype; the arrays must match them.
    vocab : Vocab
        ``config.vocab_size`` tokens.
    embeddings : array_like or Embedding, shape (V, d)
    W1 : array_like, shape (c*d, h)
        Weights of ``f1``.
    W2 : array_like or QuantizedMatrix, shape (h, V)
        Weights of ``f2``: an array, or a :class:`tinyllm.formats.QuantizedMatrix`
        (float16, bfloat16 or int8; ``config.dtype`` must then be float32). Made by
        :meth:`quantize`.

    Examples
    --------
    >>> model = TinyLM.from_blog()
    >>> model.next_token_probs("el cielo es").round(4)
    array([0.4982, 0.0823, 0.3021, 0.0499, 0.0674])
    """

    def __init__(self, config: TinyLMConfig, vocab: Vocab, embeddings, W1, W2):
        if not isinstance(config, TinyLMConfig):
            raise TypeError(f"config must be a TinyLMConfig, got {type(config).__name__}")
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
        c = config
        if len(vocab) != c.vocab_size:
            raise ValueError(f"vocab has {len(vocab)} tokens, config.vocab_size is {c.vocab_size}")
        table = embeddings.table if isinstance(embeddings, Embedding) else embeddings
        self.config = config
        self.vocab = vocab
        self.embedding = Embedding(
            as_weight_matrix(table, "embeddings", c.dtype, (c.vocab_size, c.dim)), c.dtype
        )
        self.W1 = as_weight_matrix(W1, "W1", c.dtype, (c.input_size, c.hidden))
        self._packed: QuantizedMatrix | None = None
        self._W2: np.ndarray | None = None
        if isinstance(W2, QuantizedMatrix):
            if c.dtype != "float32":
                raise ValueError(
                    f"a model with W2 in {W2.format} computes in float32: "
                    f"config.dtype must be float32, got {c.dtype}"
                )
            if W2.shape != (c.hidden, c.vocab_size):
                raise ValueError(f"W2 has shape {W2.shape}, expected {(c.hidden, c.vocab_size)}")
            self._packed = W2
        else:
            self._W2 = as_weight_matrix(W2, "W2", c.dtype, (c.hidden, c.vocab_size))
        self._kernel_matrix_W1: PackedMatrix | None = None  # (see _kernel_W1)
        self._kernel_matrix: PackedMatrix | None = None  # what the kernels read (see _kernel_W2)

    # -- the weights ----------------------------------------------------------------
    @property
    def W2(self) -> np.ndarray:
        """The (h, V) weights of ``f2``, read-only. For a quantized model (see
        :meth:`quantize`) a new float32 array, dequantised on each access: the model
        keeps only the packed values (:attr:`packed_W2`)."""
        if self._packed is None:
            return self._stored_W2  # type: ignore[return-value]
        W2 = self._packed.dequantize()
        W2.flags.writeable = False
        return W2

    @property
    def packed_W2(self) -> QuantizedMatrix | None:
        """``W2`` as stored by a quantized model (values and scales); None for a float32
        or float64 model."""
        return self._packed

    @property
    def weight_format(self) -> str:
        """How ``W2`` is stored: "float32", "float64" (the model's dtype), or
        "float16", "bfloat16", "int8" (a quantized model, see :meth:`quantize`)."""
        return self.config.dtype if self._packed is None else self._packed.format

    @property
    def nbytes(self) -> int:
        """Bytes of the weights as the model stores them (embeddings, W1, W2 packed)."""
        return self.embedding.table.nbytes + self.W1.nbytes + self._stored_W2.nbytes

    @property
    def _stored_W2(self) -> np.ndarray | QuantizedMatrix:
        """W2 as the model holds it: its array, or its packed values."""
        stored = self._W2 if self._packed is None else self._packed
        assert stored is not None
        return stored

    @property
    def _kernel_W1(self) -> np.ndarray | PackedMatrix:
        """What every compiled call gets as W1: a float32 :class:`PackedMatrix` of it for
        a float32 (or quantized) model -- the same numbers, read faster -- made on first
        use and kept; the array for a float64 model."""
        if self.config.dtype != "float32":
            return self.W1
        if self._kernel_matrix_W1 is None:
            self._kernel_matrix_W1 = PackedMatrix(self.W1)
        return self._kernel_matrix_W1

    @property
    def _kernel_W2(self) -> np.ndarray | PackedMatrix:
        """What every compiled call gets as W2: for a float32 or quantized model, a
        :class:`~tinyllm._generate.PackedMatrix` of it -- panels the projection reads
        as one stream, with the float32 logits of the plain array bit for bit -- made
        on first use and kept; for a float64 model, the array."""
        if self._packed is None and self.config.dtype != "float32":
            return self._stored_W2  # type: ignore[return-value]
        if self._kernel_matrix is None:
            if self._W2 is not None:
                self._kernel_matrix = PackedMatrix(self._W2)
            elif self._packed is not None:
                self._kernel_matrix = PackedMatrix(self._packed.values, self._packed.scales)
        return cast(PackedMatrix, self._kernel_matrix)

    def quantize(self, fmt: str) -> TinyLM:
        """This model with ``W2`` stored in the weight format ``fmt``: a new model.

        Parameters
        ----------
        fmt : {"float16", "bfloat16", "int8", "float32", "float64"}
            float16 and bfloat16 halve the bytes of ``W2``, int8 quarters them (plus
            one float32 scale per token); :mod:`tinyllm.formats` gives the rules and
            the README the error each one costs. The embeddings and ``W1`` become
            float32, and the model computes in float32. "float32" and "float64" give
            a plain model of that dtype (from a quantized one: ``W2`` dequantised).
            The model's own format gives a model with the same weights.

        Returns
        -------
        TinyLM

        Raises
        ------
        ValueError
            An unknown format, or a weight out of the format's range (float16:
            magnitude above 65504; bfloat16 and float32: rounding to infinity).

        Examples
        --------
        >>> q = TinyLM.from_blog().quantize("bfloat16")
        >>> q.weight_format, q.config.dtype
        ('bfloat16', 'float32')
        >>> q.W2[0].tolist()  # 0.7 and 0.2 keep 8 bits of mantissa
        [2.5, 0.69921875, 2.0, 0.2001953125, 0.5]
        """
        fmt = check_format(fmt)
        if fmt == self.weight_format:
            return TinyLM(self.config, self.vocab, self.embedding, self.W1, self._stored_W2)
        dtype = "float64" if fmt == "float64" else "float32"
        config = dataclasses.replace(self.config, dtype=dtype)
        W2 = self.W2 if fmt in ("float32", "float64") else quantize(self.W2, fmt)
        return TinyLM(config, self.vocab, self.embedding.table, self.W1, W2)

    # -- constructors -----------------------------------------------------------
    @classmethod
    def from_blog(cls, dtype: str = "float64") -> TinyLM:
        """The model of part 3 of the blog, exactly (c=3, d=2, h=1, V=5)."""
        from tinyllm import blog

        return blog.part3_model(dtype)

    @classmethod
    def random(cls, config: TinyLMConfig, vocab: Vocab | None = None, seed: int = 0) -> TinyLM:
        """A model with random weights from ``seed`` (tokens ``t0, t1, ...`` if no vocab).

        Weights are drawn from a normal distribution scaled by ``1/sqrt(fan_in)``, so
        the logits stay of order one for any size.
        """
        rng = np.random.default_rng(seed)
        if vocab is None:
            vocab = Vocab([f"t{i}" for i in range(config.vocab_size)])
        return cls(
            config,
            vocab,
            rng.standard_normal((config.vocab_size, config.dim)),
            rng.standard_normal((config.input_size, config.hidden)) / np.sqrt(config.input_size),
            rng.standard_normal((config.hidden, config.vocab_size)) / np.sqrt(config.hidden),
        )

    def __repr__(self) -> str:
        c = self.config
        act = f", activation={c.activation!r}" if c.activation else ""
        packed = "" if self._packed is None else f", weight_format={self._packed.format!r}"
        return (
            f"TinyLM(vocab_size={c.vocab_size}, dim={c.dim}, context={c.context}, "
            f"hidden={c.hidden}, dtype={c.dtype}{act}{packed})"
        )

    def _repr_html_(self) -> str:
        """The configuration, vocabulary size and weight format, for notebooks."""
        from tinyllm import display

        return display.model_html(self)

    # -- saving and loading -------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to ``path`` (one ``.npz`` file; see :mod:`tinyllm.io`).

        Atomic: the file is written under a temporary name in the same folder and
        then renamed over ``path``, so an interrupted save leaves the old file intact.
        """
        from tinyllm.io import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path) -> TinyLM:
        """The model saved in ``path`` by :meth:`save`, bit for bit.

        Raises
        ------
        ValueError
            The file is not a tinyllm model: corrupt, truncated, another format
            version, arrays that do not match the configuration (checked before
            anything is decompressed), or JSON that is too large or too deep.
        OSError
            The file is missing (FileNotFoundError), not readable (PermissionError),
            or not a regular file (a directory, FIFO, socket or device).
        """
        from tinyllm.io import load_model

        return load_model(path)

    # -- the forward pass ---------------------------------------------------------
    def encode_prompt(self, prompt: str | list[int]) -> list[int]:
        """All the positions of ``prompt`` (text, or a list of positions), checked.

        Raises
        ------
        ValueError
            Fewer than ``c`` tokens (the message says how many are needed), or a
            position out of range.
        UnknownTokenError
            A word of the prompt is not in the vocabulary.
        """
        if isinstance(prompt, str):
            positions = self.vocab.encode(prompt)
        else:
            positions = self.vocab.check_positions(prompt)
        c = self.config.context
        if len(positions) < c:
            raise ValueError(
                f"the prompt has {len(positions)} token{'s' if len(positions) != 1 else ''}; "
                f"this model reads {c}, so it needs at least {c}"
            )
        return positions

    def context_positions(self, prompt: str | list[int]) -> list[int]:
        """The positions the model reads: the last ``c`` tokens of ``prompt``."""
        return self.encode_prompt(prompt)[-self.config.context :]

    def _forward(self, positions: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (c*d,), f1 (h,) and the logits (V,) of c positions: the compiled forward
        pass (tinyllm._generate.forward), the one the generation loop runs."""
        return forward(
            self.embedding.table,
            self._kernel_W1,
            self._kernel_W2,
            positions,
            self.config.activation == "tanh",
        )

    def logits(self, prompt: str | list[int]) -> np.ndarray:
        """One score per vocabulary token for the token after ``prompt``: shape (V,)."""
        return self._forward(self.context_positions(prompt))[2]

    def next_token_probs(self, prompt: str | list[int], temperature: float = 1.0) -> np.ndarray:
        """``softmax(logits / temperature)``: the probability of each token coming next.

        Temperature 0 is greedy, as in :meth:`generate`: probability 1 for the most
        likely token (the lowest position among ties), 0 for the others.
        """
        return softmax(self.logits(prompt), temperature=temperature)

    def trace(self, prompt: str | list[int], temperature: float = 1.0) -> Trace:
        """Run the model on ``prompt`` and return every intermediate (see :class:`Trace`)."""
        positions = self.context_positions(prompt)
        x, f1, logits = self._forward(positions)
        probs = softmax(logits, temperature=temperature)
        words = (
            self.vocab.split(prompt)[-len(positions) :]
            if isinstance(prompt, str)
            else [self.vocab[p] for p in positions]
        )
        return Trace(
            words=words,
            positions=positions,
            ids=[self.vocab.id_of(p) for p in positions],
            embeddings=x.reshape(len(positions), self.config.dim),
            x=x,
            f1=f1,
            logits=logits,
            probs=probs,
            tokens=list(self.vocab.tokens),
            temperature=float(temperature),
            activation=self.config.activation,
            unknown=tuple(isinstance(prompt, str) and w not in self.vocab for w in words),
        )

    # -- sampling and generation --------------------------------------------------
    def stream(
        self,
        prompt: str | list[int],
        max_new_tokens: int = 20,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        rng=None,
        *,
        stop: str | list[str] | None = None,
        **sampling,
    ) -> Iterator[str]:
        """Generate token by token: yields each new token as soon as it is drawn.

        Autoregressive: each drawn token is appended to the text and the model reads
        the last ``c`` tokens for the next one. The arguments are checked before the
        first token; stopping the iteration half-way leaves the model as it was (the
        model holds no generation state). Parameters as in :meth:`generate`; with
        ``stop``, a token that may begin a stop sequence is held back until it is
        known not to.
        """
        _one_prompt(prompt, "stream")
        # The arguments are checked now, not at the first next().
        continuation = self.continuation(
            prompt, max_new_tokens, temperature, top_k, top_p, min_p, rng, stop=stop, **sampling
        )
        return _one_at_a_time(continuation, self.vocab.tokens)

    def stream_positions(
        self,
        prompt: str | list[int],
        max_new_tokens: int = 20,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        rng=None,
        *,
        stop: str | list[str] | None = None,
        **sampling,
    ) -> Iterator[int]:
        """As :meth:`stream`, yielding vocabulary positions instead of tokens."""
        _one_prompt(prompt, "stream_positions")
        continuation = self.continuation(
            prompt, max_new_tokens, temperature, top_k, top_p, min_p, rng, stop=stop, **sampling
        )
        return _one_at_a_time(continuation)

    def continuation(
        self,
        prompt: str | list[int],
        max_new_tokens: int = 20,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        rng=None,
        *,
        stop: str | list[str] | None = None,
        held: bool = False,
        first_logits: bool = True,
        **sampling,
    ) -> Continuation:
        """A generation in progress, for callers that take its tokens in chunks of their
        own size (the command line does). Every argument is checked now, once;
        parameters as in :meth:`generate`.

        ``held``: the caller keeps all the tokens in memory (generate, not stream):
        a number of tokens that would not fit is refused here, before any work. The
        first token's logits are computed now: logits that overflow are an error
        before the first token too (``first_logits=False`` leaves them to the first
        step: a batch computes those of all its sequences in one pass).
        """
        _one_prompt(prompt, "continuation")
        positions = self.encode_prompt(prompt)
        n = checked_int("max_new_tokens", max_new_tokens, 0)
        if held:
            check_memory(
                n * _BYTES_PER_HELD_TOKEN,
                f"max_new_tokens={n}",
                "stream() goes one token at a time and holds none",
            )
        unknown = sorted(set(sampling) - set(_MORE_SAMPLING))
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        options = SamplingOptions(temperature, top_k, top_p, min_p, **sampling)
        stops = self._stop_sequences(stop)
        try:
            generation = Generation(
                self.embedding.table,
                self._kernel_W1,
                self._kernel_W2,
                positions[-self.config.context :],
                options.temperature,
                options.top_k,
                options.top_p,
                options.min_p,
                rng,
                self.config.activation == "tanh",
                typical_p=options.typical_p,
                top_n_sigma=options.top_n_sigma,
                min_tokens_to_keep=options.min_tokens_to_keep,
                logit_bias=self._logit_bias(options.logit_bias),
                repetition_penalty=options.repetition_penalty,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                penalty_last_n=options.penalty_last_n,
                # (only the penalties read the history: no need to hand it over otherwise)
                history=positions if _reads_history(options) else None,
                first_logits=first_logits,
            )
        except (TypeError, ValueError) as exc:
            raise _option_error(exc) from None
        return Continuation(generation, n, stops)

    def _logit_bias(self, logit_bias) -> dict | None:
        """``logit_bias`` with words turned into positions (positions stay)."""
        if not isinstance(logit_bias, dict):
            return logit_bias  # None, or not a dict: the compiled check says why
        return {
            (self.vocab.position(key) if isinstance(key, str) else key): bias
            for key, bias in logit_bias.items()
        }

    def _stop_sequences(self, stop) -> list[tuple[int, ...]]:
        """``stop`` (a word or text, or a list of them) as sequences of positions."""
        if stop is None:
            return []
        items = [stop] if isinstance(stop, str) else stop
        if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
            raise TypeError(f"stop must be a string or a list of strings, got {stop!r}")
        sequences = []
        for text in items:
            positions = self.vocab.encode(text)
            if not positions:
                raise ValueError(f"stop: {text!r} holds no word")
            sequences.append(tuple(positions))
        return sequences

    def generate(
        self,
        prompt: str | list[int] | list[str] | list[list[int]],
        max_new_tokens: int | list[int] = 20,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        rng=None,
        *,
        stop: str | list[str] | None = None,
        **sampling,
    ) -> str | list[str]:
        """Continue ``prompt`` with up to ``max_new_tokens`` sampled tokens.

        Parameters
        ----------
        prompt : str or list of int, or a list of them (a batch)
            Text (at least ``c`` known words) or vocabulary positions. A list of
            texts or of position lists is a batch: each sequence is generated with
            its own Generator, as if alone, and each step reads the model's weights
            once for the whole batch (faster per token than one prompt at a time).
        max_new_tokens : int or list of int, default 20
            How many tokens to generate (>= 0); for a batch, one number for all or
            one per prompt.
        temperature : float, default 1.0
            0 is greedy (always the most likely token); see :func:`tinyllm.sample_logits`.
        top_k, top_p, min_p : optional
            The filters of :func:`tinyllm.sample_logits`, applied in that order.
        rng : None, int or numpy.random.Generator, or a list of them
            The same seed gives the same text, in every run and process. For a
            batch: a list holds one per prompt (sequence i then gives exactly what
            ``generate(prompt[i], ..., rng=rng[i])`` gives); a single seed or
            Generator is split into one independent stream per prompt, sequence i
            getting ``numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(B)[i])``
            (for a Generator ``g``: ``g.spawn(B)[i]``); None: fresh entropy for each.
        stop : str or list of str, optional
            Stop words (or texts of several words): generation ends when the new
            tokens end with one of them, which is not included (as OpenAI's ``stop``).
            In a batch each sequence stops on its own.
        **sampling
            The rest of the decoding chain of :func:`tinyllm.sample_logits`:
            ``typical_p``, ``top_n_sigma``, ``min_tokens_to_keep``, ``logit_bias``
            (``{word or position: bias}``), ``repetition_penalty``,
            ``presence_penalty``, ``frequency_penalty`` and ``penalty_last_n``. The
            penalties read the prompt and every generated token (the history).

        Returns
        -------
        str, or list of str for a batch
            The continuation only (not the prompt), tokens joined by spaces. Use
            :meth:`generate_positions` for the positions.

        Examples
        --------
        >>> model = TinyLM.from_blog()
        >>> model.generate("el cielo es", max_new_tokens=3, temperature=0)
        'azul azul azul'
        >>> model.generate("el cielo es", max_new_tokens=3, temperature=0, repetition_penalty=3.0)
        'azul frío azul'
        >>> model.generate(["el cielo es", "es el cielo"], max_new_tokens=2, rng=[1, 2])
        ['cielo es', 'cielo azul']
        """
        if _is_batch(prompt):
            batch = self._batch(
                prompt, max_new_tokens, rng, temperature, top_k, top_p, min_p, stop, sampling
            )
            return [self.vocab.join([self.vocab[p] for p in seq]) for seq in batch]
        continuation = self.continuation(
            cast("str | list[int]", prompt),  # one prompt, and so one length
            cast(int, max_new_tokens),
            temperature,
            top_k,
            top_p,
            min_p,
            rng,
            stop=stop,
            held=True,
            **sampling,
        )
        return self.vocab.join(continuation.take_tokens(continuation.left, self.vocab.tokens))

    def generate_positions(
        self,
        prompt: str | list[int] | list[str] | list[list[int]],
        max_new_tokens: int | list[int] = 20,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        rng=None,
        *,
        stop: str | list[str] | None = None,
        **sampling,
    ) -> list[int] | list[list[int]]:
        """As :meth:`generate`, returning the vocabulary positions of the new tokens
        (a list of them per prompt for a batch).

        Without ``stop``, all the tokens come from one call of the compiled loop (one
        nogil call, no array allocated per token).
        """
        if _is_batch(prompt):
            return self._batch(
                prompt, max_new_tokens, rng, temperature, top_k, top_p, min_p, stop, sampling
            )
        continuation = self.continuation(
            cast("str | list[int]", prompt),  # one prompt, and so one length
            cast(int, max_new_tokens),
            temperature,
            top_k,
            top_p,
            min_p,
            rng,
            stop=stop,
            held=True,
            **sampling,
        )
        return continuation.take(continuation.left)

    def _batch(
        self, prompts, max_new_tokens, rng, temperature, top_k, top_p, min_p, stop, sampling
    ) -> list[list[int]]:
        """The positions generated for each prompt of a batch (see :meth:`generate`)."""
        B = len(prompts)
        counts = _per_prompt("max_new_tokens", max_new_tokens, B)
        check_memory(  # each sequence's buffers of V, and the tokens it holds
            B * self.config.vocab_size * _BYTES_PER_SEQUENCE_TOKEN
            + sum(checked_int("max_new_tokens", n, 0) for n in counts) * _BYTES_PER_HELD_TOKEN,
            f"a batch of {B} prompts",
            "generate fewer at a time",
        )
        generators = _batch_generators(rng, B)
        positions = []
        for i, prompt in enumerate(prompts):
            try:
                positions.append(self.encode_prompt(prompt))
            except (TypeError, ValueError) as exc:  # the same error, saying which prompt
                exc.args = (f"prompt {i} of the batch: {exc.args[0]}", *exc.args[1:])
                raise
        continuations = [
            self.continuation(
                p,
                n,
                temperature,
                top_k,
                top_p,
                min_p,
                g,
                stop=stop,
                held=True,
                first_logits=False,
                **sampling,
            )
            for p, n, g in zip(positions, counts, generators)
        ]
        outputs: list[list[int]] = [[] for _ in range(B)]
        batch = BatchGeneration([c.generation for c in continuations])
        for i, c in enumerate(continuations):
            if c.done:
                batch.retire(i)
        while batch.active:
            # Steps that no sequence in the batch overshoots (its length), in chunks
            # that let stop words retire sequences early.
            k = min(continuations[i].left for i in batch.active)
            if continuations[0].stops:
                k = min(k, _STOP_CHUNK)
            active = batch.active
            for i, drawn in zip(active, batch.take(k).tolist()):
                outputs[i] += continuations[i].accept(drawn)
                if continuations[i].done:
                    batch.retire(i)
        return outputs

    def draw_next(
        self, prompt: str | list[int], draws: int = 20, temperature: float = 1.0, rng=None
    ) -> Draws:
        """Draw the next token ``draws`` times for the same prompt, as the blog's notebooks do.

        Returns a :class:`Draws` with the tokens in order, their counts and the
        model's probabilities, to compare observed frequencies with probabilities.
        """
        n = checked_int("draws", draws, 0)
        check_memory(n * _BYTES_PER_HELD_TOKEN, f"draws={n}")
        logits = self.logits(prompt)
        probs = softmax(logits, temperature=temperature)  # temperature 0: one-hot (greedy)
        generator = as_generator(rng, "draw_next")
        drawn = sample_logits(logits, temperature=temperature, size=n, rng=generator)
        text = prompt if isinstance(prompt, str) else self.vocab.decode(prompt)
        return Draws(text, [self.vocab[int(p)] for p in drawn], probs, self.vocab.tokens)


def _reads_history(options: SamplingOptions) -> bool:
    """Whether a penalty is on (the positions are the model's own: already checked)."""
    return (
        options.repetition_penalty != 1.0
        or options.presence_penalty != 0.0
        or options.frequency_penalty != 0.0
    )


class Continuation:
    """A generation in progress (from :meth:`TinyLM.continuation`): the compiled loop,
    how many tokens are left, and the stop sequences.

    :meth:`take` draws up to k more tokens in one call of the loop and returns those
    that are final: the ones before a stop sequence, and not those that may still
    begin one (held back until the next take, or given by the last).
    """

    def __init__(self, generation: Generation, n: int, stops: list[tuple[int, ...]]):
        self.generation = generation
        self.left = n
        self.stops = stops
        self.pending: list[int] = []  # drawn, not given yet: may begin a stop sequence
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.done = n == 0

    def take_tokens(self, k: int, tokens: tuple) -> list:
        """As :meth:`take`, giving ``tokens[position]`` (the vocabulary's strings):
        without stop sequences straight from the compiled loop, no int per token."""
        if self.stops or self.done:
            return [tokens[p] for p in self.take(k)]
        k = min(k, self.left)
        self.left -= k
        self.done = self.left == 0
        return self.generation.take_tokens(k, tokens)

    def take(self, k: int) -> list[int]:
        """Draw up to ``k`` more tokens; the positions that are final (possibly fewer
        than ``k``, or none, when a stop sequence may be starting)."""
        if self.done:
            return []
        return self.accept(self.generation.take(min(k, self.left)).tolist())

    def accept(self, drawn: list[int]) -> list[int]:
        """Count ``drawn`` (the next tokens, at most :attr:`left`, from this
        continuation's generation, alone or in a batch) and return those that are final."""
        self.left -= len(drawn)
        if not self.stops:
            self.done = self.left == 0
            return drawn
        # Scan the held tokens and the new ones: a match may straddle the two.
        pending = self.pending + drawn
        end = _first_stop(pending, self.stops)
        if end is not None:
            self.done, self.pending = True, []
            return pending[:end]
        if self.left == 0:
            self.done, self.pending = True, []
            return pending
        cut = max(len(pending) - self.hold, 0)
        self.pending = pending[cut:]
        return pending[:cut]


def _is_batch(prompt) -> bool:
    """A list or tuple of prompts (texts or position lists), not one prompt."""
    return (
        isinstance(prompt, (list, tuple))
        and len(prompt) > 0
        and all(isinstance(p, (str, list, tuple, np.ndarray)) for p in prompt)
    )


def _one_prompt(prompt, method: str) -> None:
    """TypeError for a batch of prompts where one is expected."""
    if _is_batch(prompt):
        raise TypeError(
            f"{method} takes one prompt (text or positions), not a list of prompts: "
            f"batches are for generate and generate_positions"
        )


def _per_prompt(name: str, value, B: int) -> list:
    """``value`` for each of B prompts: a list of B items as they are, else B copies."""
    if isinstance(value, (list, tuple)):
        if len(value) != B:
            raise ValueError(f"{name} has {len(value)} items for {B} prompts")
        return list(value)
    return [value] * B


def _batch_generators(rng, B: int) -> list:
    """One independent Generator (or seed) per sequence of a batch (see generate's rng)."""
    if isinstance(rng, (list, tuple)):
        return _per_prompt("rng", rng, B)
    if isinstance(rng, np.random.Generator):
        return rng.spawn(B)
    is_seed = isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0
    if rng is None or is_seed:
        return [np.random.default_rng(s) for s in np.random.SeedSequence(rng).spawn(B)]
    return [rng] * B  # not a seed: each Generation's check says why


def _first_stop(positions: list[int], stops: list[tuple[int, ...]]) -> int | None:
    """Where the first occurrence of a stop sequence begins in ``positions``, if any."""
    first = None
    for seq in stops:
        n = len(seq)
        for start in range(len(positions) - n + 1):
            if first is not None and start >= first:
                break
            if tuple(positions[start : start + n]) == seq:
                first = start
                break
    return first


def _one_at_a_time(continuation: Continuation, tokens: tuple | None = None) -> Iterator:
    """Lazily, one token per step: a stream stopped early draws nothing more. Yields
    positions, or their items of ``tokens`` (the vocabulary's strings)."""
    while not continuation.done:
        for position in continuation.take(1):
            yield position if tokens is None else tokens[position]


#: Memory per vocabulary token and sequence of a batch: the logits (twice: its own
#: and the batch's), the sampler's integer weights and block sums, at most.
_BYTES_PER_SEQUENCE_TOKEN = 40

#: Tokens per batched step call when stop words may retire sequences early.
_STOP_CHUNK = 16

#: Memory per token that generate() and generate_positions() hold until they return
#: (an int64 from the loop, a list slot, an int or the token's text): an estimate
#: for refusing, before any work, a max_new_tokens that cannot fit.
_BYTES_PER_HELD_TOKEN = 48

#: The options that Generation checks, in the order it checks them.
_OPTIONS = SamplingOptions._fields


def _option_error(exc: Exception) -> Exception:
    """Generation's error for a bad option, worded as the model words it: without the
    "generate: " of the compiled check ("top_p must be in (0, 1], got 0"), as
    filter_logits' messages were shown. Other errors (``rng``'s) are left as they are."""
    message = str(exc)
    option = message.removeprefix("generate: ")
    if option != message and option.startswith(_OPTIONS):
        return type(exc)(option)
    return exc
