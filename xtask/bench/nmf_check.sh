#!/usr/bin/env bash
# The factorization paper's check on the built-in digits: does a network trained for fewer
# epochs give a lower NMF reconstruction error (at the same rank) than a well-trained one?
# Trains one run, then asks the server for RMSE against rank at a few epochs. Prints a table.
# Every factorization runs exactly ROUNDS multiplicative-update rounds (default 200): the
# requests pass iters=ROUNDS and tol=0, so no fit stops early at the server's default tolerance
# and every cell of the table had the same number of rounds.
# Usage: [ROUNDS=200] xtask/bench/nmf_check.sh [path/to/actiscope]   (default target/debug/actiscope)
set -euo pipefail
bin=${1:-target/debug/actiscope}
rounds=${ROUNDS:-200}
dir=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
"$bin" train --store "$dir/runs.db" --dataset digits --hidden 40,40,40 --optimizer sgd \
  --lr 0.05 --batch 64 --epochs 30 --device flex --probe n=1000 --seed 7 --json >"$dir/train.json"
port=$((20000 + RANDOM % 20000))
"$bin" serve --store "$dir/runs.db" --port "$port" >"$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.2; done
python3 - "$port" "$dir/train.json" "$rounds" <<'PY'
import json, sys, urllib.error, urllib.request
port, train, rounds = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
acc = {e["epoch"]: e["val_accuracy"] for e in train["epochs"]}
ranks = "10,20,30,40,50"
for title, query in [("layers 1-3 (activations only)", "inputs=false"),
                     ("inputs + layers 1-3, balanced blocks", "inputs=true&balance=true")]:
    print(f"\n{title}: RMSE by rank (probe: 1,000 test digits; {rounds} rounds each, no early "
          "stop (tol=0), seed 0)")
    print("RMSE (and RMSE / RMS of the data, in brackets)")
    print("| epoch | val accuracy | " + " | ".join(f"rank {r}" for r in ranks.split(",")) + " |")
    print("| --- | --- |" + " --- |" * len(ranks.split(",")))
    for epoch in [1, 3, 10, 30]:
        url = f"http://127.0.0.1:{port}/api/runs/1/epochs/{epoch}/nmf/rmse?ranks={ranks}&iters={rounds}&tol=0&{query}"
        try:
            curve = json.load(urllib.request.urlopen(url, timeout=600))
        except urllib.error.HTTPError as err:
            sys.exit(f"{url}: {err.code} {err.read().decode()}")
        rms = curve["data_rms"]
        cells = " | ".join(f"{rmse:.4f} ({rmse / rms:.3f})" for _, rmse in curve["points"])
        print(f"| {epoch} | {100 * acc[epoch]:.1f}% | {cells} |")
PY
