"""scikit-learn's NMF (multiplicative updates) on the same matrix as actiscope's nmf_bench.

Usage: sklearn_nmf.py MATRIX.f32 ROWS COLS RANK ITERATIONS
Prints one JSON line: best of three timed fits after one warm-up, final RMSE, rounds run.
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning


def main():
    path, rows, cols, rank, iterations = sys.argv[1:6]
    x = np.fromfile(path, dtype="<f4").reshape(int(rows), int(cols))
    model = lambda: NMF(
        n_components=int(rank),
        solver="mu",
        init="random",
        max_iter=int(iterations),
        tol=0.0,
        random_state=0,
    )
    warnings.simplefilter("ignore", ConvergenceWarning)
    model().fit_transform(x)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        m = model()
        w = m.fit_transform(x)
        best = min(best, time.perf_counter() - started)
    rmse = float(np.sqrt(np.mean((x - w @ m.components_) ** 2)))
    print(json.dumps({"secs": best, "rmse": rmse, "iterations": int(m.n_iter_)}))


if __name__ == "__main__":
    main()
