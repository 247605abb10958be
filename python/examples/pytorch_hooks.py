"""Train a small ReLU MLP with PyTorch and let actiscope watch it learn.

Forward hooks on the hidden nn.Linear layers capture their outputs (the pre-activations,
before the ReLU) while the network evaluates a fixed set of instances after every epoch;
actiscope_writer.RunWriter stores them, with the predictions and per-instance losses, in a
run directory that ``actiscope import`` reads. The data are Gaussian blobs made here, so
nothing is downloaded.

Needs torch, numpy and safetensors::

    pip install torch numpy safetensors
    python python/examples/pytorch_hooks.py runs/blobs-mlp

To watch it learn live, run in two more terminals (the run directory appears as soon as
the script starts, before the first epoch)::

    actiscope serve --store runs.db                              # the dashboard
    actiscope import --follow --store runs.db runs/blobs-mlp     # imports each new epoch

``import --follow`` stops once the script has finished and every epoch is stored. Or import
the finished run afterwards: ``actiscope import --store runs.db runs/blobs-mlp``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from actiscope_writer import RunWriter  # noqa: E402

CLASSES, DIM = 4, 16


def blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points around CLASSES Gaussian centres in DIM dimensions, and their labels."""
    centres = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(0)) * 2.5
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    points = centres[labels] + torch.randn(n, DIM, generator=generator) * 1.5
    return points, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="runs/blobs-mlp")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    args = parser.parse_args()

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    train_x, train_y = blobs(4000, generator)
    eval_x, eval_y = blobs(1000, generator)  # fixed: the same instances every epoch

    model = nn.Sequential(
        nn.Linear(DIM, 32),
        nn.ReLU(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, CLASSES),  # the output layer: not hooked
    )
    hidden = {"fc1": model[0], "fc2": model[2]}

    # Each hook keeps the latest output of its layer: N x units, before the ReLU.
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            captured[name] = output.detach()

        return hook

    handles = [layer.register_forward_hook(keep(name)) for name, layer in hidden.items()]

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    per_instance_loss = nn.CrossEntropyLoss(reduction="none")

    if args.overwrite:
        shutil.rmtree(args.directory, ignore_errors=True)
    with RunWriter(
        args.directory,
        list(hidden),
        eval_y,
        name="blobs MLP (PyTorch)",
        classes=[f"blob {c}" for c in range(CLASSES)],
        inputs=(eval_x - eval_x.min()) / (eval_x.max() - eval_x.min()),  # shown as N x D
        threshold=0.0,  # a unit is active when its pre-activation is > 0, i.e. the ReLU passes
        probe=500,
    ) as writer:
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = torch.randperm(len(train_x), generator=generator)
            for start in range(0, len(order), 64):
                batch = order[start : start + 64]
                optimizer.zero_grad()
                loss_fn(model(train_x[batch]), train_y[batch]).backward()
                optimizer.step()

            # Evaluate the fixed set in one batch (or concatenate the hooks' batches).
            model.eval()
            with torch.no_grad():
                logits = model(eval_x)
            losses = per_instance_loss(logits, eval_y)
            predictions = logits.argmax(dim=1)
            writer.write_epoch(dict(captured), predictions=predictions, losses=losses)
            accuracy = (predictions == eval_y).float().mean().item()
            print(f"epoch {epoch}: accuracy {accuracy:.3f}, loss {losses.mean().item():.4f}")
    # Leaving the `with` block called writer.close(), which writes `finished`.

    for handle in handles:
        handle.remove()


if __name__ == "__main__":
    main()
