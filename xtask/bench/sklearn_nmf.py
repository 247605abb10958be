"""scikit-learn's NMF (multiplicative updates) on the same matrix as actiscope's nmf_bench.

Usage: sklearn_nmf.py MATRIX.f32 ROWS COLS RANK ITERATIONS [dense|csr]
The matrix is handed to scikit-learn as a dense array (the default) or as a scipy.sparse CSR
matrix of the same values (converted before timing). Either way the same settings: rank,
ITERATIONS rounds with no early stop (tol=0), the same random start (init="random",
random_state=0, scaled by the data's mean, which is the same in both layouts).
Prints one JSON line: best of three timed fits after one warm-up, final RMSE, rounds run,
the layout, and the share of zeros in the matrix.
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
    layout = sys.argv[6] if len(sys.argv) > 6 else "dense"
    dense = np.fromfile(path, dtype="<f4").reshape(int(rows), int(cols))
    if layout == "dense":
        x = dense
    elif layout == "csr":
        import scipy.sparse

        x = scipy.sparse.csr_matrix(dense)
    else:
        sys.exit(f"layout must be dense or csr, not {layout!r}")
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
    rmse = float(np.sqrt(np.mean((dense - w @ m.components_) ** 2)))
    print(
        json.dumps(
            {
                "secs": best,
                "rmse": rmse,
                "iterations": int(m.n_iter_),
                "layout": layout,
                "zeros": float(np.mean(dense == 0)),
            }
        )
    )


if __name__ == "__main__":
    main()
