"""tinyllm: the toy next-token language model of "Mi camino a entender (por fin) los LLMs".

Kernels (compiled, NumPy-like): :func:`dot`, :func:`project`, :func:`softmax`,
:func:`log_softmax`, and the seeded samplers :func:`sample`, :func:`sample_logits`
and :func:`filter_logits`. The model: :class:`Vocab`, :class:`Embedding`,
:class:`TinyLMConfig`, :class:`TinyLM` (``TinyLM.from_blog()`` is part 3 of the
blog). Pure-Python versions of the kernels: :mod:`tinyllm.reference`. The blog's
parts 1-3 with their numbers: :mod:`tinyllm.blog`.
"""

from tinyllm._compiled import (
    dot,
    filter_logits,
    log_softmax,
    project,
    sample,
    sample_logits,
    softmax,
)
from tinyllm._version import __version__
from tinyllm.config import TinyLMConfig
from tinyllm.embedding import Embedding
from tinyllm.model import Draws, TinyLM, Trace
from tinyllm.vocab import UnknownTokenError, Vocab

__all__ = [
    "__version__",
    "dot",
    "project",
    "softmax",
    "log_softmax",
    "sample",
    "sample_logits",
    "filter_logits",
    "Vocab",
    "UnknownTokenError",
    "Embedding",
    "TinyLMConfig",
    "TinyLM",
    "Trace",
    "Draws",
]
