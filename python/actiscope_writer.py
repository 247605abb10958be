"""Write a run directory that ``actiscope import DIR`` reads ("bring your own network").

Train your network with any framework; after every epoch, evaluate it on a fixed set of N
instances and hand the hidden layers' activations to :class:`RunWriter`. The directory it
writes holds:

- ``run.toml``: ``name``, ``layers`` (in order), optional ``classes``, ``threshold`` (a unit is
  active when its value is > threshold) and ``probe`` (how many of the first instances the
  per-instance lenses keep; default min(N, 1000)).
- ``labels.npy`` (N integers) and optional ``inputs.npy`` (N x H x W images or N x D).
- ``epoch-0001.safetensors``, ``epoch-0002.safetensors``, ...: one tensor per layer, named as
  in ``layers`` (N x units or N x C x H x W), plus optional ``predictions`` (N integers) and
  ``losses`` (N floats). An epoch may also be a folder ``epoch-0001/`` of ``<layer>.npy``,
  ``predictions.npy`` and ``losses.npy``; this module writes safetensors.
- ``finished``: an empty file, written by :meth:`RunWriter.close` when the job ends.

Every file is written under a ``.tmp`` name and then renamed (``os.replace``), so a reader
that follows the directory while it grows (``actiscope import --follow``) never sees half an
epoch. The full description is the section "Bring your own network" of the project's
README (``README.md#bring-your-own-network``, one folder up from this file).

Needs only numpy and safetensors (``pip install numpy safetensors``). Torch tensors are
accepted anywhere an array is: they are detached and copied to the CPU.

Example::

    with RunWriter("runs/mlp", ["fc1", "fc2"], labels, classes=["cat", "dog"]) as writer:
        for epoch in range(20):
            train_one_epoch()
            writer.write_epoch({"fc1": h1, "fc2": h2}, predictions=pred, losses=loss)
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from safetensors.numpy import save_file

__all__ = ["RunWriter", "epoch_name"]

_LAYER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_RESERVED = ("predictions", "losses")


def epoch_name(epoch: int) -> str:
    """The entry name of epoch ``epoch`` (counted from 1), without extension: ``epoch-0001``."""
    return f"epoch-{epoch:04d}"


def _to_numpy(value: Any) -> np.ndarray:
    """An array-like (numpy array, list, torch tensor, ...) as a numpy array."""
    if hasattr(value, "detach"):  # a torch tensor: leave the autograd graph and the GPU
        value = value.detach()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            value = value.float()
        value = value.cpu().numpy()
    return np.asarray(value)


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _fsync_and_replace(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk, then rename it to ``final`` in one step."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync_and_replace(tmp, path)


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    _fsync_and_replace(tmp, path)


def _integers(value: Any, what: str, n: int | None, n_classes: int | None) -> np.ndarray:
    """``value`` checked to be ``n`` non-negative integers (each < ``n_classes``), as int64."""
    array = _to_numpy(value)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of integers, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what}: expected integers, got dtype {array.dtype}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{what}: expected {n} values (one per instance), got {array.shape[0]}")
    if array.size and array.min() < 0:
        raise ValueError(f"{what}: negative value {int(array.min())}")
    if n_classes is not None and array.size and array.max() >= n_classes:
        raise ValueError(
            f"{what}: value {int(array.max())} is not < the number of classes ({n_classes})"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def _floats(value: Any, what: str, n: int, keep_float16: bool) -> np.ndarray:
    """``value`` with ``n`` rows, as contiguous float32 (float16 kept if ``keep_float16``)."""
    array = _to_numpy(value)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{what}: expected real numbers, got dtype {array.dtype}")
    if array.ndim == 0 or array.shape[0] != n:
        raise ValueError(f"{what}: expected {n} rows (one per instance), got shape {array.shape}")
    _check_finite(array, what, "NaN or infinite value")
    dtype = np.float16 if keep_float16 and array.dtype == np.float16 else np.float32
    with np.errstate(over="ignore"):  # values too large for float32 become inf: caught below
        array = np.ascontiguousarray(array, dtype=dtype)
    _check_finite(array, what, "value beyond the float32 range")
    return array


def _check_finite(array: np.ndarray, what: str, reason: str) -> None:
    finite = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    if not finite.all():
        raise ValueError(f"{what}: {reason} (first at instance {int(np.flatnonzero(~finite)[0])})")


class RunWriter:
    """Writes a run directory for ``actiscope import``, one epoch at a time.

    Args:
        directory: the run directory; created (with its parents).
        layers: the hidden layers' names, in order (letters, digits, ``_``, ``-``, ``.``).
        labels: N integer class labels, one per evaluated instance.
        name: the run's name (default: the directory's name).
        classes: optional class names; every label must be < ``len(classes)``.
        inputs: optional N x H x W images (uint8, or floats in [0, 1]) or N x D features.
        threshold: a unit is active when its value is > ``threshold``.
        probe: how many of the first instances the per-instance views keep
            (default, when None: min(N, 1000), decided by the reader).
        exist_ok: allow ``directory`` to exist already (it must hold no earlier run).

    Use as a context manager, or call :meth:`close` when training ends.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        layers: Sequence[str],
        labels: Any,
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
        inputs: Any = None,
        threshold: float = 0.0,
        probe: int | None = None,
        exist_ok: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.layers: list[str] = self._check_layers(layers)
        self.classes: list[str] | None = None if classes is None else self._check_classes(classes)
        n_classes = None if self.classes is None else len(self.classes)
        self.labels = _integers(labels, "labels", None, n_classes)
        self.n = int(self.labels.shape[0])
        if self.n == 0:
            raise ValueError("labels: expected at least one instance, got none")
        self.name = self.directory.resolve().name if name is None else name
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        self.threshold = float(threshold)
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
        self.probe = None if probe is None else self._check_probe(probe)
        input_array = None if inputs is None else self._check_inputs(inputs)

        self._prepare_directory(exist_ok)
        _write_text(self.directory / "run.toml", self._run_toml())
        _write_npy(self.directory / "labels.npy", self.labels)
        if input_array is not None:
            _write_npy(self.directory / "inputs.npy", input_array)
        self.epochs_written = 0
        self.closed = False

    # -- validation -------------------------------------------------------------------------

    @staticmethod
    def _check_layers(layers: Sequence[str]) -> list[str]:
        if isinstance(layers, str):
            raise ValueError(f"layers: expected a list of names, got the string {layers!r}")
        names = list(layers)
        if not names:
            raise ValueError("layers: expected at least one layer name")
        for layer in names:
            if not isinstance(layer, str) or not _LAYER_NAME.fullmatch(layer):
                raise ValueError(
                    f"layers: {layer!r} is not a valid name (use letters, digits, '_', '-', '.')"
                )
            if layer in _RESERVED:
                raise ValueError(f"layers: {layer!r} is reserved for the per-instance tensor")
        duplicates = sorted({layer for layer in names if names.count(layer) > 1})
        if duplicates:
            raise ValueError(f"layers: duplicate name(s) {', '.join(duplicates)}")
        return names

    def _check_probe(self, probe: int) -> int:
        try:
            value = operator.index(probe)
        except TypeError:
            value = None
        if isinstance(probe, bool) or value is None or not 1 <= value <= self.n:
            raise ValueError(f"probe: expected an integer from 1 to N = {self.n}, got {probe!r}")
        return value

    @staticmethod
    def _check_classes(classes: Sequence[str]) -> list[str]:
        if isinstance(classes, str):
            raise ValueError(f"classes: expected a list of names, got the string {classes!r}")
        names = list(classes)
        if not names:
            raise ValueError("classes: expected at least one class name")
        for c in names:
            if not isinstance(c, str):
                raise ValueError(f"classes: expected strings, got {c!r}")
        if len(set(names)) != len(names):
            raise ValueError("classes: names must be unique")
        return names

    def _check_inputs(self, inputs: Any) -> np.ndarray:
        array = _to_numpy(inputs)
        if array.ndim not in (2, 3) or array.shape[0] != self.n:
            raise ValueError(
                f"inputs: expected N x H x W or N x D with N = {self.n}, got shape {array.shape}"
            )
        if array.dtype == np.uint8:
            return np.ascontiguousarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"inputs: expected uint8 or floats, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ValueError("inputs: NaN or infinite value")
        if array.ndim == 3 and array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError("inputs: float images must lie in [0, 1] (or pass uint8)")
        return array

    def _prepare_directory(self, exist_ok: bool) -> None:
        if self.directory.exists() and not exist_ok:
            raise FileExistsError(f"{self.directory}: already exists (pass exist_ok=True)")
        self.directory.mkdir(parents=True, exist_ok=True)
        earlier = sorted(
            p.name
            for p in self.directory.iterdir()
            if p.name in ("run.toml", "finished") or p.name.startswith("epoch-")
        )
        if earlier:
            raise FileExistsError(
                f"{self.directory}: holds an earlier run ({', '.join(earlier[:3])}); "
                "delete it or choose another directory"
            )

    def _run_toml(self) -> str:
        lines = [
            f"name = {_toml_string(self.name)}",
            f"layers = [{', '.join(_toml_string(layer) for layer in self.layers)}]",
        ]
        if self.classes is not None:
            lines.append(f"classes = [{', '.join(_toml_string(c) for c in self.classes)}]")
        lines.append(f"threshold = {self.threshold!r}")
        if self.probe is not None:
            lines.append(f"probe = {self.probe}")
        return "\n".join(lines) + "\n"

    # -- writing ----------------------------------------------------------------------------

    def write_epoch(
        self,
        activations: Mapping[str, Any],
        *,
        predictions: Any = None,
        losses: Any = None,
    ) -> int:
        """Write the next epoch; returns its number (1 for the first).

        Args:
            activations: layer name -> N x units (or N x C x H x W) array or tensor, for
                every layer in ``layers``. Stored as float32 (float16 stays float16).
            predictions: optional N predicted class indices.
            losses: optional N per-instance losses.

        Raises:
            ValueError: a layer is missing or unknown, a tensor has the wrong number of rows
                or shape, or holds NaN or infinity. Nothing is written then.
        """
        if self.closed:
            raise RuntimeError("write_epoch: the writer is closed")
        missing = [layer for layer in self.layers if layer not in activations]
        if missing:
            raise ValueError(f"activations: missing layer(s) {', '.join(missing)}")
        unknown = sorted(str(k) for k in activations if k not in self.layers)
        if unknown:
            raise ValueError(
                f"activations: unknown layer(s) {', '.join(unknown)} (layers are "
                f"{', '.join(self.layers)})"
            )
        tensors: dict[str, np.ndarray] = {}
        for layer in self.layers:
            array = _floats(activations[layer], f"layer {layer}", self.n, keep_float16=True)
            if array.ndim not in (2, 4) or array.size == 0:
                raise ValueError(
                    f"layer {layer}: expected N x units or N x C x H x W, got shape "
                    f"{array.shape} (reshape it to (N, -1))"
                )
            tensors[layer] = array
        if predictions is not None:
            n_classes = None if self.classes is None else len(self.classes)
            tensors["predictions"] = _integers(predictions, "predictions", self.n, n_classes)
        if losses is not None:
            loss = _floats(losses, "losses", self.n, keep_float16=False)
            if loss.ndim != 1:
                raise ValueError(f"losses: expected {self.n} values, got shape {loss.shape}")
            tensors["losses"] = loss

        epoch = self.epochs_written + 1
        final = self.directory / f"{epoch_name(epoch)}.safetensors"
        tmp = final.with_name(final.name + ".tmp")
        save_file(tensors, str(tmp))
        _fsync_and_replace(tmp, final)
        self.epochs_written = epoch
        return epoch

    def close(self) -> None:
        """Write the empty ``finished`` file: the run is complete. Safe to call twice."""
        if not self.closed:
            (self.directory / "finished").touch()
            self.closed = True

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Also on an error: the job has ended, so a follower should stop waiting.
        self.close()
