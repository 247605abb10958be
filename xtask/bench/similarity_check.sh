#!/usr/bin/env bash
# The SVCCA paper's convergence observation on the built-in digits: do layers converge bottom
# up? Trains the APD paper's MLP (784-40-40-40-10) for EPOCHS epochs (default 20) twice, with
# SGD at lr 0.001 (the `apd-paper` preset) and with Adam at lr 0.001 (the default preset), then
# asks the server for each layer's SVCCA similarity (99% of the variance kept) to the final
# epoch at every epoch, and prints per layer the first epoch reaching 0.9 and 0.99, and the
# whole grid. Nothing is tuned: the presets as they are, seed 0, probe 1,000 test digits.
# Usage: [EPOCHS=20] xtask/bench/similarity_check.sh [path/to/actiscope]   (default target/debug/actiscope)
set -euo pipefail
bin=${1:-target/debug/actiscope}
epochs=${EPOCHS:-20}
dir=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
for preset in apd-paper default; do
  "$bin" train --store "$dir/runs.db" --preset "$preset" --epochs "$epochs" --device flex \
    --probe n=1000 --seed 0 --json >"$dir/$preset.json" 2>"$dir/$preset.log"
done
port=$((20000 + RANDOM % 20000))
"$bin" serve --store "$dir/runs.db" --port "$port" >"$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.2; done
python3 - "$port" "$dir" <<'PY'
import json, sys, urllib.request
port, folder = sys.argv[1], sys.argv[2]
for run_id, preset in [(1, "apd-paper"), (2, "default")]:
    train = json.load(open(f"{folder}/{preset}.json"))
    config = train["config"]
    acc = [e["val_accuracy"] for e in train["epochs"]]
    url = f"http://127.0.0.1:{port}/api/runs/{run_id}/similarity?method=svcca&reference=final"
    grid = json.load(urllib.request.urlopen(url, timeout=600))
    epochs = grid["epochs"]
    cols = len(epochs)
    print(f"\n{preset}: {config['optimizer']} lr {config['learning_rate']}, {cols} epochs, "
          f"val accuracy {100 * acc[0]:.1f}% after epoch 1, {100 * acc[-1]:.1f}% after {cols}; "
          "SVCCA (99%) of each layer with itself at the final epoch")
    print("| layer | first epoch >= 0.9 | first epoch >= 0.99 | " +
          " | ".join(f"e{e}" for e in epochs) + " |")
    print("| --- | --- | --- |" + " --- |" * cols)
    for row, label in enumerate(grid["row_labels"]):
        values = grid["values"][row * cols:(row + 1) * cols]
        def first(threshold):
            return next((e for e, v in zip(epochs, values) if v is not None and v >= threshold), "-")
        cells = " | ".join("-" if v is None else f"{v:.3f}" for v in values)
        print(f"| {label} | {first(0.9)} | {first(0.99)} | {cells} |")
    if grid["problems"]:
        print("empty cells:", "; ".join(grid["problems"]))
PY
