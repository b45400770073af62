"""What each weight format loses: logits and next-token probabilities against float64.

How to run it (from the repository root, with tinyllm built in place or installed)::

    tinyllm train --seed 0 --out model.npz          # the README's trained model
    python bench/quantization_error.py model.npz     # ~10 s, 1 GB
    python bench/quantization_error.py               # random weights only

For each format (tinyllm.formats.quantization_error): the logits' relative RMS error,
the total-variation distance of softmax(logits) (mean and largest over the contexts)
and the share of contexts whose most likely token is float64's. The quantised
model's logits are computed in NumPy as the kernels compute them (float16/bfloat16 W2
converted to float32, the int8 projection of tinyllm.formats.int8_project); the
reference is the same weights in float64.

Two sets: the trained model (a float64 file from ``tinyllm train``) on its held-out
contexts (the lines ``train`` set aside for validation, from the seed and
val_fraction saved in the file), and the large configuration of the benchmarks
(V = 32 000, d = 64, c = 8, h = 256) with random weights (TinyLM.random, seed 0) on
``--contexts`` random contexts. Also the bytes of W2 per format, for each.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinyllm import TinyLM, TinyLMConfig, formats
from tinyllm.io import load_metadata
from tinyllm.train import TrainOptions, held_out_examples

LARGE = TinyLMConfig(vocab_size=32_000, dim=64, context=8, hidden=256, dtype="float64")


def trained_contexts(path: str) -> tuple[TinyLM, np.ndarray, str]:
    model = TinyLM.load(path)
    training = load_metadata(path).get("training") or {}
    if training.get("corpus") not in (None, "built-in corpus_es.txt"):
        raise SystemExit(f"{path} was trained on {training['corpus']!r}: held-out lines unknown")
    options = TrainOptions(**training["options"]) if "options" in training else TrainOptions()
    windows, _ = held_out_examples(model, options=options)
    return model, windows, f"{path}, {len(windows)} held-out contexts"


def random_contexts(count: int, seed: int) -> tuple[TinyLM, np.ndarray, str]:
    model = TinyLM.random(LARGE, seed=seed)
    rng = np.random.default_rng(seed)
    contexts = rng.integers(0, LARGE.vocab_size, (count, LARGE.context))
    return model, contexts, f"random weights V=32000 d=64 c=8 h=256 (seed {seed}), {count} contexts"


def table(model: TinyLM, contexts: np.ndarray, title: str) -> str:
    lines = [
        f"## {title}",
        "",
        "| format | W2 bytes | logits rel. RMS | TV mean | TV max | top-1 agreement |",
        "|---|---|---|---|---|---|",
    ]
    for fmt in ("float32", "float16", "bfloat16", "int8"):
        e = formats.quantization_error(model, fmt, contexts)
        w2 = model.quantize(fmt)
        w2_bytes = w2.nbytes - w2.embedding.table.nbytes - w2.W1.nbytes
        lines.append(
            f"| {fmt} | {w2_bytes:,} | {e.logits_rel_rms:.2e} | {e.tv_mean:.2e} | "
            f"{e.tv_max:.2e} | {e.top1_agreement:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="a float64 model from tinyllm train")
    parser.add_argument("--contexts", type=int, default=256, help="random contexts (256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sets = [random_contexts(args.contexts, args.seed)]
    if args.model:
        sets.insert(0, trained_contexts(args.model))
    print("\n\n".join(table(*s) for s in sets))


if __name__ == "__main__":
    main()
