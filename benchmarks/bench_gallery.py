"""Gallery identification speed: exact (NumPy) vs faiss, on synthetic 512-d identities.

For each gallery size (one enrolled image per identity): build time, latency of one probe
(median of repeated single-probe searches) and throughput for a batch of probes (top-5), for
exact search, faiss Flat IP and, up to ``--approx-up-to`` identities, faiss IVF-Flat and HNSW
with their recall against exact search. Probes are noisy copies of random gallery entries
(cosine about 0.7 to their source), so the true identity is known.

    nice -n 10 .venv/bin/python benchmarks/bench_gallery.py --sizes 10000 1000000

``--threads`` (default 1) caps BLAS and faiss threads, so that both backends get the same
compute (and faiss's OpenMP threads do not spin on a shared, loaded machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time


def _threads_from_argv() -> str:
    # BLAS reads its thread count when numpy loads, so this must run before the import
    if "--threads" in sys.argv:
        return sys.argv[sys.argv.index("--threads") + 1]
    return "1"


for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402

from mfr.gallery.search import GallerySearch  # noqa: E402


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """(median seconds, last result) over ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def bench_backend(name, make, probes, k, exact_top, truth, single_repeat):
    build, search = timed(make)
    latency, _ = timed(lambda: search.search(probes[:1], k), single_repeat)
    batch_time, ranked = timed(lambda: search.search(probes, k))
    top = [[m.identity for m in r] for r in ranked]
    row = {
        "backend": name,
        "build_s": round(build, 3),
        "latency_1_probe_ms": round(1000 * latency, 3),
        "batch_s": round(batch_time, 3),
        "probes_per_s": round(len(probes) / batch_time, 1),
        "top1_correct": float(np.mean([t[0] == truth[i] for i, t in enumerate(top)])),
    }
    if exact_top is not None:
        row["same_topk_as_exact"] = float(np.mean([t == e for t, e in zip(top, exact_top)]))
        row["recall1_vs_exact"] = float(np.mean([t[0] == e[0] for t, e in zip(top, exact_top)]))
    return row, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--single-repeat", type=int, default=20)
    parser.add_argument("--approx-up-to", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1, help="BLAS and faiss threads")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"threads {args.threads}, dim {args.dim}, probes {args.probes}, k {args.k}", flush=True)

    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes:
        gallery = rng.standard_normal((size, args.dim), dtype=np.float32)
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        names = np.char.add("id", np.char.zfill(np.arange(size).astype(str), 7))
        source = rng.integers(0, size, args.probes)
        noise = rng.standard_normal((args.probes, args.dim), dtype=np.float32)
        probes = gallery[source] + noise / np.sqrt(args.dim)  # cosine ~0.7 to its source
        truth = names[source]

        def exact(gallery=gallery, names=names):
            return GallerySearch(gallery, names, "exact")

        row, exact_top = bench_backend(
            "exact", exact, probes, args.k, None, truth, args.single_repeat
        )
        rows.append({"gallery": size, **row})
        print(json.dumps(rows[-1]), flush=True)
        gc.collect()
        kinds = ["flat"] + (["ivf", "hnsw"] if size <= args.approx_up_to else [])
        for kind in kinds:

            def faiss(kind=kind, gallery=gallery, names=names):
                return GallerySearch(gallery, names, "faiss", faiss_index=kind)

            row, _ = bench_backend(
                f"faiss-{kind}", faiss, probes, args.k, exact_top, truth, args.single_repeat
            )
            rows.append({"gallery": size, **row})
            print(json.dumps(rows[-1]), flush=True)
            gc.collect()
        del gallery
        gc.collect()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
