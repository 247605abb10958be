#!/usr/bin/env bash
# How long the server takes for a whole layers x epochs similarity grid: trains the APD
# paper's MLP (784-40-40-40-10) on the built-in digits for 30 epochs with 1,000 probe digits
# (release binary, flex), then for each method starts a fresh `actiscope serve` (so nothing is
# cached), asks for /api/runs/1/similarity?method=M&reference=final three times and prints
# the first answer's time (probe activations read from SQLite included) and the repeat's
# (from the answer cache). Three fresh servers per method; the range is printed.
# Usage: xtask/bench/similarity_server.sh [path/to/release/actiscope]
set -euo pipefail
bin=${1:-target/release/actiscope}
dir=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" train --store "$dir/runs.db" --preset apd-paper --epochs 30 --device flex \
  --probe n=1000 --seed 0 --json >/dev/null 2>"$dir/train.log"
for method in svcca pwcca cka cka-debiased; do
  firsts=() repeats=()
  for round in 1 2 3; do
    port=$((20000 + RANDOM % 20000))
    "$bin" serve --store "$dir/runs.db" --port "$port" >"$dir/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
    url="http://127.0.0.1:$port/api/runs/1/similarity?method=$method&reference=final"
    firsts+=("$(curl -sf -o /dev/null -w '%{time_total}' "$url")")
    repeats+=("$(curl -sf -o /dev/null -w '%{time_total}' "$url")")
    kill "$server"; wait "$server" 2>/dev/null || true
  done
  python3 - "$method" "${firsts[*]}" "${repeats[*]}" <<'PY'
import sys
method, firsts, repeats = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
ms = lambda xs: sorted(float(x) * 1000 for x in xs)
f, r = ms(firsts), ms(repeats)
print(f"{method:>13}: 3 layers x 30 epochs, first answer {f[0]:.0f}-{f[-1]:.0f} ms, "
      f"repeated {r[0]:.1f}-{r[-1]:.1f} ms")
PY
done
