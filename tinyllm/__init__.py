"""tinyllm: the toy language model of "Mi camino a entender (por fin) los LLMs"."""
from tinyllm._version import __version__
from tinyllm._linalg import dot, project
from tinyllm._softmax import log_softmax, softmax

__all__ = ["__version__", "dot", "project", "softmax", "log_softmax"]
