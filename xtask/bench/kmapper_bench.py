"""KeplerMapper side of `cargo xtask bench-mapper`.

Loads a raw little-endian float32 matrix (row-major, --cols columns), computes the lens
(first principal component, scikit-learn PCA) and the mapper graph (kmapper Cover(n_cubes,
perc_overlap), scikit-learn DBSCAN(eps, min_samples)), once to warm up and then best of
--repeats, and prints one JSON line: the best time of `map` alone, of the lens alone, and
their sum, with the node and edge counts.

Run it single-threaded for a fair comparison with the single-threaded Rust side
(`cargo xtask bench-mapper` sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS=1).
"""

import argparse
import json
import time
import warnings

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--cols", type=int, default=40)
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--overlap", type=float, default=30.0, help="percent")
    parser.add_argument("--eps", type=float, default=4.0)
    parser.add_argument("--min-samples", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import kmapper as km
    import sklearn
    from sklearn.cluster import DBSCAN
    from sklearn.decomposition import PCA

    x = np.fromfile(args.data, dtype="<f4").reshape(-1, args.cols)

    def lens_of(data):
        return PCA(n_components=1).fit_transform(data)

    def map_of(lens):
        mapper = km.KeplerMapper(verbose=0)
        return mapper.map(
            lens,
            x,
            cover=km.Cover(n_cubes=args.intervals, perc_overlap=args.overlap / 100.0),
            clusterer=DBSCAN(eps=args.eps, min_samples=args.min_samples),
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = lens_of(x)
        graph = map_of(lens)
        lens_best = float("inf")
        map_best = float("inf")
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            lens = lens_of(x)
            lens_best = min(lens_best, time.perf_counter() - start)
            start = time.perf_counter()
            graph = map_of(lens)
            map_best = min(map_best, time.perf_counter() - start)

    edges = sum(len(targets) for targets in graph["links"].values())
    print(
        json.dumps(
            {
                "secs": map_best + lens_best,
                "map_secs": map_best,
                "lens_secs": lens_best,
                "nodes": len(graph["nodes"]),
                "edges": edges,
                "rows": int(x.shape[0]),
                "cols": int(x.shape[1]),
                "kmapper": km.__version__,
                "sklearn": sklearn.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
