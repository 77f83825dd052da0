"""How fast all-MiniLM-L6-v2 embeds chat lines on this machine, per runtime, on ONE thread.

Compares what the issue allowed: transformers' ``BertModel`` on torch with mean pooling (what
sentence-transformers runs) against the same weights exported to ONNX on ONNX Runtime, in
arrival order at several batch sizes, then costar's own ``LocalEmbedder`` (ONNX Runtime, a batch
sorted by length and run ``_RUN_ROWS`` lines at a time). The model comes from the cache
(``costar model prepare`` unpacks and exports it). Lines are the first ``--lines`` of the CSV.

    python bench/embedding_speed.py --csv ../shared/data/live-chat-press-briefing.csv

The last line is ``RESULT torch_best=… onnx_best=… costar=… threads=1`` (sentences per second).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inputs import require_inputs
from engine.recall.embedding import LocalEmbedder, normalised
from engine.serving.model_store import ensure_minilm
from engine.settings import CoreSettings

Rows = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
BATCHES = (1, 8, 32, 64)


def rate(embed: Callable[[Sequence[str]], Rows], texts: Sequence[str], batch: int) -> float:
    embed(texts[:batch])  # warm-up
    began = time.perf_counter()
    for start in range(0, len(texts), batch):
        embed(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - began)


def padded(tokenizer: object, texts: Sequence[str]) -> tuple[Ids, Ids]:
    encodings = [tokenizer.encode(text) for text in texts]  # type: ignore[attr-defined]
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
    return ids, (ids != 0).astype(np.int64)


def pooled(hidden: Rows, mask: Ids) -> Rows:
    weights = mask[:, :, None].astype(np.float32)
    return normalised((hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))


def torch_runner(folder: Path, tokenizer: object) -> Callable[[Sequence[str]], Rows]:
    import torch
    from transformers import BertModel

    torch.set_num_threads(1)
    model = BertModel.from_pretrained(folder).eval()

    def embed(texts: Sequence[str]) -> Rows:
        ids, mask = padded(tokenizer, texts)
        with torch.inference_mode():
            hidden = model(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.zeros_like(torch.from_numpy(ids)),
            ).last_hidden_state
        return pooled(hidden.numpy(), mask)

    return embed


def onnx_runner(folder: Path, tokenizer: object) -> Callable[[Sequence[str]], Rows]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def embed(texts: Sequence[str]) -> Rows:
        ids, mask = padded(tokenizer, texts)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(["last_hidden_state"], feeds)
        return pooled(hidden, mask)

    return embed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV with a message column")
    parser.add_argument("--lines", type=int, default=512, help="how many of its lines to embed per measurement")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    with args.csv.open(encoding="utf-8") as handle:
        texts = [row["message"] for row in csv.DictReader(handle) if row.get("message")][: args.lines]
    folder = ensure_minilm(CoreSettings().cache_dir)
    costar = LocalEmbedder(folder)
    costar.load()
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()  # tokenizer.json pads every line to 128 pieces; here to the batch's longest
    best: dict[str, float] = {}
    outputs: dict[str, Rows] = {}
    for name, make in (("torch", torch_runner), ("onnx", onnx_runner)):
        embed = make(folder, tokenizer)
        outputs[name] = embed(texts[:16])
        for batch in BATCHES:
            measured = rate(embed, texts, batch)
            best[name] = max(best.get(name, 0.0), measured)
            print(f"{name:<6} batch {batch:>3}: {measured:6.1f} sentences/s", flush=True)
    ours = max(rate(costar.embed, texts, batch) for batch in (64, 256))
    print(f"costar LocalEmbedder (ONNX Runtime, sorted runs), batches of 64/256: {ours:6.1f} sentences/s")
    print(f"largest difference torch vs onnx: {float(np.abs(outputs['torch'] - outputs['onnx']).max()):.1e}")
    print(f"RESULT torch_best={best['torch']:.1f} onnx_best={best['onnx']:.1f} costar={ours:.1f} threads=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
