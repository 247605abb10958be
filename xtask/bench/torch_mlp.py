"""PyTorch peer of `actiscope train` for `cargo xtask bench-train`.

Trains the APD paper's MLP (784-40-40-40-10, ReLU, SGD, lr 0.001) on the same built-in
digits (assets/digits-10k.bin.gz, same 0.1 test / 0.1 validation split sizes) with the same
batch size and thread count, and prints one JSON line per epoch with its wall time.
"""

import argparse
import gzip
import json
import struct
import time

import torch


def load_digits(path):
    with gzip.open(path, "rb") as f:
        payload = f.read()
    magic, count, rows, cols = payload[:4], *struct.unpack(">III", payload[4:16])
    assert magic == b"ADG1", "not an actiscope digits file"
    labels = torch.tensor(list(payload[16 : 16 + count]), dtype=torch.long)
    pixels = torch.frombuffer(bytearray(payload[16 + count :]), dtype=torch.uint8)
    images = pixels.reshape(count, rows * cols).float() / 255.0
    return images, labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = load_digits(args.data)
    order = torch.randperm(len(labels))
    train = order[: int(len(labels) * 0.81)]
    x, y = images[train], labels[train]
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 40), torch.nn.ReLU(),
        torch.nn.Linear(40, 40), torch.nn.ReLU(),
        torch.nn.Linear(40, 40), torch.nn.ReLU(),
        torch.nn.Linear(40, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        perm = torch.randperm(len(y))
        total = 0.0
        for start in range(0, len(y), args.batch):
            idx = perm[start : start + args.batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        secs = time.perf_counter() - started
        print(json.dumps({"epoch": epoch, "train_secs": secs, "loss": total / ((len(y) + args.batch - 1) // args.batch)}), flush=True)


if __name__ == "__main__":
    main()
