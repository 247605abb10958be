"""Write a small imported run and the numbers actiscope must compute from it.

Usage: python write_fixture.py OUT_DIR

Writes the run directory OUT_DIR (a seeded toy network: 300 instances of 20-D inputs in 3
classes, hidden layers fc1 with 12 units and fc2 with 8, 4 epochs, probe 200) and, beside
it, OUT_DIR/../expected.json. Epochs 1-3 go through RunWriter as safetensors; epoch 4 is a
folder of .npy files in awkward layouts (float64 Fortran order, big-endian float32), written
by hand. expected.json holds, computed here with numpy from the same arrays:

    {
      "n": 300, "probe": 200, "threshold": 0.0, "layers": ["fc1", "fc2"],
      "classes": ["a", "b", "c"], "epochs": 4,
      "unique_patterns": [[u_fc1, u_fc2], ...],            # per epoch, over all N
      "apd": [{"nodes": [[node, ...], ...], "edges": [edge, ...]}, ...],  # first probe only
      "accuracy": [float, ...], "mean_loss": [float, ...]  # per epoch, over all N
    }

A node is {"key", "instances", "errors"}; levels are fc1, fc2, then the predicted label. Keys
are bit strings ('1' = value > threshold, unit 0 first) or the label in decimal. An edge is
{"from_level", "from_key", "to_key", "instances", "errors"} between consecutive levels.
Nodes are sorted by key, edges by (from_level, from_key, to_key). Prints nothing on success.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from actiscope_writer import RunWriter, epoch_name  # noqa: E402

N, DIM, HIDDEN, CLASSES = 300, 20, (12, 8), ["a", "b", "c"]
LAYERS = ["fc1", "fc2"]
EPOCHS, PROBE, THRESHOLD = 4, 200, 0.0


def relu(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(x, 0.0))


def away_from_threshold(x: np.ndarray) -> np.ndarray:
    """Move values within 1e-3 of the threshold off it, so float32 and float64 agree."""
    near = np.abs(x - THRESHOLD) < 1e-3
    return np.where(near, THRESHOLD + np.where(x >= THRESHOLD, 1e-3, -1e-3), x)


def make_epochs(
    rng: np.random.Generator, inputs: np.ndarray, labels: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Per epoch: fc1, fc2 (pre-activations, float64), predictions and losses."""
    w1 = rng.normal(0.0, 0.5, (DIM, HIDDEN[0]))
    b1 = rng.normal(0.0, 0.1, HIDDEN[0])
    w2 = rng.normal(0.0, 0.5, (HIDDEN[0], HIDDEN[1]))
    b2 = rng.normal(0.0, 0.1, HIDDEN[1])
    readout = rng.normal(0.0, 1.0, (HIDDEN[1], len(CLASSES)))
    epochs = []
    for _ in range(EPOCHS):
        fc1 = away_from_threshold(inputs @ w1 + b1)
        fc2 = away_from_threshold(relu(fc1) @ w2 + b2)
        logits = relu(fc2) @ readout
        predictions = logits.argmax(axis=1).astype(np.int64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses = (0.01 - log_softmax[np.arange(N), labels]).astype(np.float32)
        epochs.append({"fc1": fc1, "fc2": fc2, "predictions": predictions, "losses": losses})
        for weight in (w1, b1, w2, b2, readout):  # drift a little
            weight += rng.normal(0.0, 0.05, weight.shape)
    return epochs


def write_npy_folder(directory: Path, epoch: int, arrays: dict[str, np.ndarray]) -> None:
    """One epoch as a folder of .npy files, written under .tmp and renamed."""
    final = directory / epoch_name(epoch)
    tmp = directory / (epoch_name(epoch) + ".tmp")
    tmp.mkdir()
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array, allow_pickle=False)
    os.replace(tmp, final)


def patterns(values: np.ndarray) -> list[str]:
    return ["".join("1" if v else "0" for v in row) for row in values > THRESHOLD]


def apd(epoch: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, list[Any]]:
    """Nodes and edges of the Activation Pattern Diagram over the first PROBE instances."""
    wrong = (epoch["predictions"] != labels)[:PROBE]
    levels = [patterns(epoch[layer][:PROBE]) for layer in LAYERS]
    levels.append([str(int(p)) for p in epoch["predictions"][:PROBE]])

    def count(keys: list[Any]) -> list[dict[str, Any]]:
        instances, errors = Counter(keys), Counter(k for k, w in zip(keys, wrong, strict=True) if w)
        return [{"key": k, "instances": instances[k], "errors": errors[k]} for k in instances]

    nodes = [sorted(count(level), key=lambda d: d["key"]) for level in levels]
    edges: list[dict[str, Any]] = []
    for lvl in range(len(levels) - 1):
        for node in count(list(zip(levels[lvl], levels[lvl + 1], strict=True))):
            from_key, to_key = node["key"]
            edges.append(
                {
                    "from_level": lvl,
                    "from_key": from_key,
                    "to_key": to_key,
                    "instances": node["instances"],
                    "errors": node["errors"],
                }
            )
    edges.sort(key=lambda e: (e["from_level"], e["from_key"], e["to_key"]))
    return {"nodes": nodes, "edges": edges}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python write_fixture.py OUT_DIR")
    out = Path(sys.argv[1])
    rng = np.random.default_rng(7)

    labels = rng.integers(0, len(CLASSES), N)
    centers = rng.normal(0.0, 2.0, (len(CLASSES), DIM))
    raw = centers[labels] + rng.normal(0.0, 1.0, (N, DIM))
    inputs = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)  # in [0, 1]
    epochs = make_epochs(rng, inputs.astype(np.float64), labels)

    writer = RunWriter(
        out,
        LAYERS,
        labels,
        name="fixture",
        classes=CLASSES,
        inputs=inputs,
        threshold=THRESHOLD,
        probe=PROBE,
        exist_ok=True,
    )
    stored = []  # the arrays as written, which expected.json is computed from
    for epoch in epochs[:3]:
        writer.write_epoch(
            {layer: epoch[layer] for layer in LAYERS},
            predictions=epoch["predictions"],
            losses=epoch["losses"],
        )
        stored.append({**epoch, **{layer: epoch[layer].astype(np.float32) for layer in LAYERS}})
    last = {
        "fc1": np.asfortranarray(epochs[3]["fc1"], dtype=np.float64),
        "fc2": epochs[3]["fc2"].astype(">f4"),
        "predictions": epochs[3]["predictions"].astype(np.int64),
        "losses": epochs[3]["losses"].astype(np.float32),
    }
    write_npy_folder(out, 4, last)
    stored.append(last)
    writer.close()

    expected = {
        "n": N,
        "probe": PROBE,
        "threshold": THRESHOLD,
        "layers": LAYERS,
        "classes": CLASSES,
        "epochs": EPOCHS,
        "unique_patterns": [
            [len(set(patterns(epoch[layer]))) for layer in LAYERS] for epoch in stored
        ],
        "apd": [apd(epoch, labels) for epoch in stored],
        "accuracy": [float(np.mean(e["predictions"] == labels)) for e in stored],
        "mean_loss": [float(np.mean(e["losses"], dtype=np.float64)) for e in stored],
    }
    path = out.resolve().parent / "expected.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
