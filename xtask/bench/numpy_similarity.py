"""A straightforward numpy implementation of the similarity measures, on the same matrices as
actiscope's similarity_bench (the peer of `cargo xtask bench-similarity`).

Usage: numpy_similarity.py pair X.f32 Y.f32 ROWS COLS
       numpy_similarity.py grid GRID.f32 INSTANCES NEURONS LAYERS EPOCHS
The float32 files are read and converted to float64 once, before any timing; every measure
then runs in float64 numpy:
- CKA: the feature form ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred columns, and the
  debiased version as in the google-research CKA notebook's
  feature_space_linear_cka(debiased=True).
- SVCCA: centre, drop constant neurons, SVD, keep the fewest leading directions reaching 99%
  of the variance (numerically zero directions never, numpy's matrix_rank tolerance), then
  CCA by QR of both reduced data and SVD of Q_x^T Q_y; the mean correlation.
- PWCCA (Morcos et al. 2018): plain CCA (QR of both centred data, SVD of Q_x^T Q_y), each
  correlation weighted by sum_j |corr(x_j, h_i)| over the first argument's neurons x_j (h_i
  the canonical variates in x's space), weights normalised to sum 1.
`pair` times each measure once to warm up and then best of three and prints one JSON line
with the times and values, and the rate of numpy's float32 X^T Y (OpenBLAS's sgemm, the
largest of CKA's products) in GFLOP/s; `grid` does the same for the whole layers x epochs grid against
the last epoch (SVCCA and CKA), reducing each layer's reference once for SVCCA as actiscope does.
"""
import json
import sys
import time

import numpy as np


def centred_live(x):
    """Columns centred, constant ones dropped."""
    x = x - x.mean(axis=0, keepdims=True)
    live = np.any(x != 0.0, axis=0)
    return x[:, live]


def debiased_dot(xty, rows_x, rows_y, norm_x, norm_y, n):
    # The notebook's _debiased_dot_product_similarity_helper.
    return xty - n / (n - 2.0) * rows_x.dot(rows_y) + norm_x * norm_y / ((n - 1) * (n - 2))


def feature_space_linear_cka(x, y, debiased=False):
    x = x - np.mean(x, 0, keepdims=True)
    y = y - np.mean(y, 0, keepdims=True)
    dot = np.linalg.norm(x.T.dot(y)) ** 2
    norm_x = np.linalg.norm(x.T.dot(x))
    norm_y = np.linalg.norm(y.T.dot(y))
    if debiased:
        n = x.shape[0]
        rows_x = np.einsum("ij,ij->i", x, x)
        rows_y = np.einsum("ij,ij->i", y, y)
        sq_x, sq_y = np.sum(rows_x), np.sum(rows_y)
        dot = debiased_dot(dot, rows_x, rows_y, sq_x, sq_y, n)
        norm_x = np.sqrt(debiased_dot(norm_x**2, rows_x, rows_x, sq_x, sq_x, n))
        norm_y = np.sqrt(debiased_dot(norm_y**2, rows_y, rows_y, sq_y, sq_y, n))
    return float(dot / (norm_x * norm_y))


def reduce(x, keep):
    """Centred live data projected on its leading directions holding `keep` of the variance."""
    x = centred_live(x)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    tolerance = s[0] * max(x.shape) * np.finfo(np.float64).eps
    s = s[s > tolerance]
    energy = np.cumsum(s**2)
    k = int(np.searchsorted(energy, keep * energy[-1]) + 1)
    return u[:, :k] * s[:k]


def svcca(x, y, keep=0.99):
    qx, _ = np.linalg.qr(reduce(x, keep))
    qy, _ = np.linalg.qr(reduce(y, keep))
    rho = np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)
    return float(rho.mean())


def pwcca(x, y):
    x, y = centred_live(x), centred_live(y)
    qx, _ = np.linalg.qr(x)
    qy, _ = np.linalg.qr(y)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    h = qx @ u  # canonical variates in x's space, unit norm and centred
    loads = np.abs(x.T @ h) / np.linalg.norm(x, axis=0)[:, None]
    alpha = loads.sum(axis=0)
    alpha /= alpha.sum()
    return float(alpha @ rho)


def best_of(f, repeats=3):
    value = f()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        value = f()
        best = min(best, time.perf_counter() - started)
    return best, value


def read(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape).astype(np.float64)


def pair(x_path, y_path, rows, cols):
    x, y = read(x_path, (rows, cols)), read(y_path, (rows, cols))
    report = {}
    for name, f in [
        ("cka", lambda: feature_space_linear_cka(x, y)),
        ("cka_debiased", lambda: feature_space_linear_cka(x, y, debiased=True)),
        ("svcca", lambda: svcca(x, y)),
        ("pwcca", lambda: pwcca(x, y)),
    ]:
        report[name + "_secs"], report[name] = best_of(f)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    gemm_secs, _ = best_of(lambda: x32.T @ y32)
    report["gemm_f32_gflops"] = 2.0 * rows * cols * cols / gemm_secs / 1e9
    return report


def grid(path, instances, neurons, layers, epochs):
    data = read(path, (epochs, layers, instances, neurons))

    def whole(measure):
        return [
            measure(data[epoch, layer], data[epochs - 1, layer])
            for layer in range(layers)
            for epoch in range(epochs)
        ]

    def whole_svcca(keep=0.99):
        # As actiscope does it: each layer's reference reduced (and its basis found) once.
        values = []
        for layer in range(layers):
            qy, _ = np.linalg.qr(reduce(data[epochs - 1, layer], keep))
            for epoch in range(epochs):
                qx, _ = np.linalg.qr(reduce(data[epoch, layer], keep))
                rho = np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)
                values.append(float(rho.mean()))
        return values

    svcca_secs, svcca_values = best_of(whole_svcca)
    cka_secs, cka_values = best_of(lambda: whole(feature_space_linear_cka))
    return {
        "svcca_secs": svcca_secs,
        "cka_secs": cka_secs,
        "svcca_values": svcca_values,
        "cka_values": cka_values,
    }


def main():
    mode = sys.argv[1]
    if mode == "pair":
        x_path, y_path, rows, cols = sys.argv[2:6]
        report = pair(x_path, y_path, int(rows), int(cols))
    elif mode == "grid":
        path, instances, neurons, layers, epochs = sys.argv[2:7]
        report = grid(path, int(instances), int(neurons), int(layers), int(epochs))
    else:
        sys.exit(f"mode must be pair or grid, not {mode!r}")
    report["numpy"] = np.__version__
    print(json.dumps(report))


if __name__ == "__main__":
    main()
