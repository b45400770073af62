"""``tinyllm bench``: tinyllm against NumPy, PyTorch and plain Python, on your machine.

Run it as ``tinyllm bench`` (quick, under a minute) or ``tinyllm bench --full``;
``bench/run.py`` in a checkout is the same command. Every case times tinyllm and the
idioms of one operation on one row of logits (a family of :mod:`.families`, a size V,
a dtype), in interleaved rounds on one thread each, and reports
ratio = the idiom's median time ÷ tinyllm's.

Where things are:

- :mod:`.families`: the logit families (N(0, σ), all equal, Zipf, half -inf, a
  trained model's);
- :mod:`.numpy_idioms`, :mod:`.torch_idioms`, :mod:`.python_idioms`: what tinyllm is
  measured against, the common idiom and the best we can write, each filter with the
  support set it keeps (tests/test_bench.py checks them against tinyllm's);
- :mod:`.ops`: the operations, tinyllm's call and their idioms;
- :mod:`.runner`: the quick and full plans, timing the cases;
- :mod:`.generation`: generation per weight format, batch size and thread count,
  against the NumPy, PyTorch and Python loops, with W2's read rate and the read floor;
- :mod:`.timing`: interleaved rounds and medians; :mod:`.machine`: CPU, versions,
  threads; :mod:`.models`: the model step in NumPy and Python;
- :mod:`.report`: the tables, the JSON and the plot; :mod:`.targets`: the issues'
  targets; :mod:`.command`: the command's options.

The JSON (``--json FILE``, schema ``tinyllm-bench/1``) holds ``mode``, ``plan``,
``machine`` (CPU, platform, versions, threads, BLAS), ``notes``, ``ops`` (each op's
title and idioms: library, role, label), ``results`` (one record per case and
contender: ``op``, ``family``, ``V``, ``dtype``, ``idiom``, ``library``, ``role``,
``seconds`` per call, ``ratio`` to tinyllm, ``spread``, ``samples``; generation's
records, ``op`` "generate", also ``h``, ``batch``, ``threads``, ``label``,
``tokens_per_call``, ``w2_bytes``, and for W2 of 1 MiB or more ``gb_per_s`` and, for
tinyllm, ``read_floor_gb_per_s``; their ``seconds`` are per token, ``dtype`` is the
weights' format), ``skipped``,
``targets``, ``seconds`` and ``date``.
"""
