# placeholder: the packaging engineer replaces this with a guarded import
from tinyllm._linalg import dot, project
from tinyllm._softmax import log_softmax, softmax
