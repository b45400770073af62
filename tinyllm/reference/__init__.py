"""tinyllm.reference: pure-Python versions of tinyllm's kernels (the teaching version).

Plain lists, floats and ``math``; no NumPy. Each function has the name, the
semantics and the error rules of its compiled twin in ``tinyllm``, and is written
to be read: it is the oracle of the tests and the baseline of the benchmarks.
:mod:`tinyllm.reference.model` holds the model's forward pass and generation loop.

    >>> from tinyllm import reference
    >>> [round(p, 4) for p in reference.softmax([2.5, 0.7, 2.0, 0.2, 0.5])]
    [0.4982, 0.0823, 0.3021, 0.0499, 0.0674]
"""

from tinyllm.reference.linalg import dot, project
from tinyllm.reference.model import PythonLM, forward
from tinyllm.reference.sampling import filter_logits, sample, sample_logits
from tinyllm.reference.softmax import log_softmax, softmax

__all__ = [
    "dot",
    "project",
    "softmax",
    "log_softmax",
    "sample",
    "sample_logits",
    "filter_logits",
    "forward",
    "PythonLM",
]
