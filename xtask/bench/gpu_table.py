"""The GPU table of `cargo xtask bench-gpu`, runnable on its own on a machine with a GPU.

Runs each workload through actiscope (its release binary, `--device wgpu` and `--device
flex`) and through a PyTorch peer of the same model (CUDA and CPU), one run each, on the same
built-in digits, split sizes, batch size and optimizer, and prints steady-state seconds per
epoch as a Markdown table, then what a user waits for (the first epoch, kernels compiled
included, in a first and a second process; capture on each device; what `--device auto`
picks and why). Writes every number to `--out` as JSON.

    python3 xtask/bench/gpu_table.py --actiscope PATH [--nmf-device PATH] [--epochs 6]

A binary path ending in `.xz` (what `cargo xtask bench-gpu --prepare DIR` writes) is unpacked
into a temporary folder first.

Where no GPU is visible (no CUDA for PyTorch and no GPU adapter for wgpu), it says so and exits
0 without measuring, unless `--cpu-only` asks for the CPU columns alone (how this script is
checked on a machine without a GPU).

The PyTorch peer does what actiscope does per step: batches gathered on the device from a
training set uploaded once, the loss summed on the device and read once per epoch (no host
sync per step), the same layer shapes and initial learning rates. Its epoch time is measured
like actiscope's `train_secs`: from the epoch's first batch to its last step, synchronised.
"""

import argparse
import gzip
import json
import lzma
import os
import struct
import subprocess
import sys
import tempfile
import time

WORKLOADS = {
    # name: (actiscope flags, peer model, optimizer, learning rate, batch)
    "paper MLP 40x3, SGD, batch 64": (
        ["--hidden", "40,40,40", "--optimizer", "sgd", "--lr", "0.001", "--batch", "64"],
        ("mlp", [40, 40, 40]),
        "sgd",
        0.001,
        64,
    ),
    "MLP 2048x3, Adam, batch 512": (
        ["--hidden", "2048,2048,2048", "--optimizer", "adam", "--lr", "0.001", "--batch", "512"],
        ("mlp", [2048, 2048, 2048]),
        "adam",
        0.001,
        512,
    ),
    "CNN (factorization paper), Adam, batch 64": (
        ["--model", "cnn", "--optimizer", "adam", "--lr", "0.001", "--batch", "64"],
        ("cnn", None),
        "adam",
        0.001,
        64,
    ),
}


def load_digits(path):
    with gzip.open(path, "rb") as f:
        payload = f.read()
    magic, count, rows, cols = payload[:4], *struct.unpack(">III", payload[4:16])
    if magic != b"ADG1":
        raise SystemExit(f"{path} is not an actiscope digits file")
    labels = list(payload[16 : 16 + count])
    pixels = payload[16 + count :]
    return labels, pixels, count, rows * cols


def unpack(path, into):
    """`path` itself, or for `NAME.xz` the decompressed `NAME` in `into`, executable."""
    if not path or not path.endswith(".xz"):
        return path
    target = os.path.join(into, os.path.basename(path)[: -len(".xz")])
    with lzma.open(path) as packed, open(target, "wb") as out:
        out.write(packed.read())
    os.chmod(target, 0o755)
    return target


def steady(values):
    """Mean over the epochs after the first (kernels compile there) and before the last
    (actiscope's last epoch waits for its own capture)."""
    middle = values[1:-1] if len(values) >= 3 else values[1:] or values
    return sum(middle) / len(middle) if middle else float("nan")


def run_actiscope(binary, flags, device, epochs, store_dir, threads=None):
    store = os.path.join(store_dir, f"bench-{device}-{time.monotonic_ns()}.db")
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    done = subprocess.run(
        [binary, "train", "--store", store, "--dataset", "digits", "--probe", "n=500",
         "--device", device, "--epochs", str(epochs), "--json", *flags],
        capture_output=True, text=True, env=env, check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    summary = json.loads(done.stdout)
    epochs_json = summary["epochs"]
    return {
        "device": summary.get("device", ""),
        "train_secs": [e["train_secs"] for e in epochs_json],
        "capture_secs": [e["capture_secs"] for e in epochs_json],
        "capture_wait_secs": [e.get("capture_wait_secs", 0.0) for e in epochs_json],
        "wall_secs": wall,
    }


def torch_epochs(torch, data, model_spec, optimizer_name, lr, batch, epochs, device, threads):
    labels, pixels, count, dim = data
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_all = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(count, dim).float() / 255.0
    y_all = torch.tensor(labels, dtype=torch.long)
    # actiscope trains on 81% of the 10,000 digits (a tenth for test, a tenth of the rest for
    # validation): the same number of instances here.
    order = torch.randperm(count)
    train = order[: int(count * 0.81)]
    x, y = x_all[train].to(device), y_all[train].to(device)
    nn = torch.nn
    kind, hidden = model_spec
    if kind == "mlp":
        layers, previous = [], dim
        for width in hidden:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        model = nn.Sequential(*layers, nn.Linear(previous, 10))
    else:
        side = int(dim ** 0.5)
        final = ((side - 4) // 2 - 4) // 2
        model = nn.Sequential(
            nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(20 * final * final, 10),
        )
    model = model.to(device)
    optimizer = (torch.optim.SGD if optimizer_name == "sgd" else torch.optim.Adam)(
        model.parameters(), lr=lr
    )
    loss_fn = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    secs, losses = [], []
    for _ in range(epochs):
        sync()
        started = time.perf_counter()
        perm = torch.randperm(len(y), device=device)
        total = torch.zeros((), device=device)
        steps = 0
        for start in range(0, len(y), batch):
            idx = perm[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
        losses.append(float(total) / steps)
        sync()
        secs.append(time.perf_counter() - started)
    return {"train_secs": secs, "losses": losses}


def torch_nmf(torch, matrix, rank, rounds, device):
    """The work of one timed fit of the nmf_device example (the NMF lens's device fit): the
    host matrix uploaded, `rounds` multiplicative updates from a seeded uniform start, each
    round's objective terms (one number per column and rank^2 more) kept on the device and read
    back every 16 rounds, the factors read back at the end. One warm-up, best of three, as the
    example does. (The example also stacks the blocks and computes the residuals on the host.)"""
    generator = torch.Generator(device="cpu").manual_seed(0)
    n, m = matrix.shape
    w0 = torch.rand(n, rank, generator=generator)
    h0 = torch.rand(rank, m, generator=generator)
    eps = 1e-9
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(4):
        sync()
        started = time.perf_counter()
        x = matrix.to(device)
        wi, hi = w0.to(device), h0.to(device)
        pending, objective = [], []
        norm_sq = float((x * x).sum())
        for done in range(rounds):
            wi = wi * ((x @ hi.T) / (wi @ (hi @ hi.T) + eps))
            wtw = wi.T @ wi
            numerator = wi.T @ x
            hi = hi * (numerator / (wtw @ hi + eps))
            pending.append(torch.cat([(numerator * hi).sum(dim=0), (wtw * (hi @ hi.T)).reshape(-1)]))
            if len(pending) == 16 or done + 1 == rounds:
                for terms in torch.stack(pending).double().cpu():
                    objective.append(norm_sq - 2.0 * float(terms[:m].sum()) + float(terms[m:].sum()))
                pending = []
        w_host, h_host = wi.cpu(), hi.cpu()
        sync()
        best = min(best, time.perf_counter() - started)
    rmse = float(torch.sqrt(torch.mean((matrix - w_host @ h_host) ** 2)))
    return {"secs": best, "rmse": rmse, "rounds": len(objective)}


def fmt(value, digits=3):
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--actiscope", required=True, help="the release actiscope binary")
    parser.add_argument("--nmf-device", help="the release nmf_device example (NMF row)")
    parser.add_argument("--data", default="assets/digits-10k.bin.gz")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cpu-only", action="store_true",
                        help="measure the CPU columns alone (no GPU needed)")
    parser.add_argument("--only", help="run only workloads whose name contains this")
    parser.add_argument("--out", default="gpu-table.json")
    args = parser.parse_args()
    unpacked = tempfile.TemporaryDirectory()
    args.actiscope = unpack(args.actiscope, unpacked.name)
    args.nmf_device = unpack(args.nmf_device, unpacked.name)

    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is not installed: pip install torch")
    cores = os.cpu_count() or 1
    has_cuda = torch.cuda.is_available()
    listing = subprocess.run([args.actiscope, "devices", "--json"], capture_output=True,
                             text=True, check=False)
    if listing.returncode != 0:
        raise SystemExit(f"`{args.actiscope} devices` failed: {listing.stderr.strip()}")
    adapters = json.loads(listing.stdout)
    wgpu_gpu = adapters["gpu"]
    print(f"PyTorch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if has_cuda else 'none'}")
    print("wgpu adapters: " + "; ".join(
        f"{a['name']} ({a['backend']}{', GPU' if a['is_gpu'] else ''})" for a in adapters["adapters"]))
    print(adapters["auto"])
    if not (has_cuda or wgpu_gpu) and not args.cpu_only:
        print("no GPU here (PyTorch sees no CUDA device and wgpu no GPU adapter): nothing to "
              "measure. Run this on a machine with a GPU, or pass --cpu-only for the CPU columns.")
        return 0
    gpu = not args.cpu_only

    data = load_digits(args.data)
    results = {"date": time.strftime("%Y-%m-%d"), "cores": cores, "torch": torch.__version__,
               "cuda_device": torch.cuda.get_device_name(0) if has_cuda else None, "rows": {}}
    table = []
    with tempfile.TemporaryDirectory() as store_dir:
        for name, (flags, model_spec, optimizer, lr, batch) in WORKLOADS.items():
            if args.only and args.only not in name:
                continue
            row = {}
            print(f"== {name}", flush=True)
            if gpu:
                row["wgpu"] = run_actiscope(args.actiscope, flags, "wgpu", args.epochs, store_dir)
                # A second process: what the warm-start cache saves before the first epoch.
                row["wgpu_second_process"] = run_actiscope(args.actiscope, flags, "wgpu", 2, store_dir)
                row["auto"] = run_actiscope(args.actiscope, flags, "auto", 1, store_dir)
                if has_cuda:
                    row["torch_cuda"] = torch_epochs(torch, data, model_spec, optimizer, lr, batch,
                                                     args.epochs, "cuda", None)
            row["flex"] = run_actiscope(args.actiscope, flags, "flex", args.epochs, store_dir)
            row["torch_cpu"] = torch_epochs(torch, data, model_spec, optimizer, lr, batch,
                                            args.epochs, "cpu", cores)
            results["rows"][name] = row
            for side, value in row.items():
                if "error" in value:
                    print(f"   {side}: failed: {value['error']}")
                elif "train_secs" in value:
                    print(f"   {side}: {fmt(steady(value['train_secs']))} s/epoch "
                          f"(epochs: {', '.join(fmt(s) for s in value['train_secs'])})", flush=True)
            table.append((name, row))

    nmf = None
    if args.nmf_device and (not args.only or "NMF" in args.only):
        labels, pixels, count, dim = data
        matrix = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(count, dim).float() / 255.0
        with tempfile.NamedTemporaryFile(suffix=".f32") as f:
            f.write(matrix.numpy().astype("<f4").tobytes())
            f.flush()
            nmf = {}
            for device in (["wgpu"] if gpu else []) + ["flex"]:
                done = subprocess.run([args.nmf_device, f.name, str(count), str(dim), "20", "200", device],
                                      capture_output=True, text=True, check=False)
                nmf[device] = (json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                               else {"error": done.stderr.strip()[-300:]})
        if has_cuda and gpu:
            nmf["torch_cuda"] = torch_nmf(torch, matrix, 20, 200, "cuda")
        nmf["torch_cpu"] = torch_nmf(torch, matrix, 20, 200, "cpu")
        results["nmf"] = nmf

    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

    def secs(row, side):
        value = row.get(side)
        return steady(value["train_secs"]) if value and "train_secs" in value else None

    print()
    print(f"Steady-state seconds per epoch ({time.strftime('%Y-%m-%d')}; "
          f"{results['cuda_device'] or 'no GPU'}; {cores} cores; {args.epochs} epochs, "
          f"mean of epochs 2..{args.epochs - 1}):")
    print()
    print(f"| workload | actiscope wgpu | actiscope flex, {cores} cores | PyTorch CUDA | "
          f"PyTorch CPU, {cores} cores | wgpu / CUDA |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in table:
        wgpu_secs, cuda_secs = secs(row, "wgpu"), secs(row, "torch_cuda")
        ratio = f"{wgpu_secs / cuda_secs:.2f}x" if wgpu_secs and cuda_secs else "—"
        print(f"| {name} | {fmt(wgpu_secs)} | {fmt(secs(row, 'flex'))} | {fmt(cuda_secs)} | "
              f"{fmt(secs(row, 'torch_cpu'))} | {ratio} |")
    if nmf:
        def nmf_secs(side):
            return (nmf.get(side) or {}).get("secs")
        wgpu_secs, cuda_secs = nmf_secs("wgpu"), nmf_secs("torch_cuda")
        ratio = f"{wgpu_secs / cuda_secs:.2f}x" if wgpu_secs and cuda_secs else "—"
        print(f"| NMF 10,000 x 784, rank 20, 200 rounds (s) | {fmt(wgpu_secs)} | "
              f"{fmt(nmf_secs('flex'))} | {fmt(cuda_secs)} | {fmt(nmf_secs('torch_cpu'))} | {ratio} |")
    print()
    print("What a user waits for:")
    for name, row in table:
        for side in ("wgpu", "wgpu_second_process", "flex"):
            value = row.get(side)
            if not value or "train_secs" not in value:
                continue
            capture = steady(value["capture_secs"])
            training = steady(value["train_secs"])
            print(f"- {name}, {side}: first epoch {fmt(value['train_secs'][0], 2)} s "
                  f"(process {fmt(value['wall_secs'], 1)} s in all); capture {fmt(capture)} s per "
                  f"epoch, {100 * capture / training:.0f}% of training; training waited "
                  f"{fmt(sum(value['capture_wait_secs'][:-1]))} s for captures")
        auto = row.get("auto")
        if auto and "device" in auto:
            print(f"- {name}, --device auto: {auto['device']}")
    print(f"\nEvery number: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
