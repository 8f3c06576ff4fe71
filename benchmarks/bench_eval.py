"""Speed of the evaluation at the paper's MFSR-REC size (3,648 masked probes x 7,967 gallery,
512-d, 1,004 identities) on random data, against the plain per-probe NumPy loop in the same
run, plus 10-fold verification over 10 x 10,000 pairs.

    .venv/bin/python benchmarks/bench_eval.py [--probes 3648 --gallery 7967 --dim 512]

Asserts identical numbers (CMC bit-for-bit, per-probe AP to 1e-12) and prints a table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mfr.eval.embeddings import l2_normalise
from mfr.eval.pairs import generate_pairs
from mfr.eval.retrieval import retrieval_metrics, retrieval_reference
from mfr.eval.verification import pair_similarities, verification_metrics


def make_data(num_probes, num_gallery, dim, num_identities, seed=0):
    """Identity centres plus noise; every identity has >= 1 gallery image, masked noisier."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_identities, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery_ids = np.r_[
        np.arange(num_identities), rng.integers(0, num_identities, num_gallery - num_identities)
    ]
    probe_ids = rng.integers(0, num_identities, num_probes)
    noise = 1.0 / np.sqrt(dim)
    gallery = centres[gallery_ids] + 2.0 * noise * rng.standard_normal((num_gallery, dim))
    probes = centres[probe_ids] + 4.5 * noise * rng.standard_normal((num_probes, dim))
    return (
        probes.astype(np.float32),
        probe_ids.astype(str),
        gallery.astype(np.float32),
        gallery_ids.astype(str),
    )


def best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=3648)
    parser.add_argument("--gallery", type=int, default=7967)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--identities", type=int, default=1004)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    probes, probe_ids, gallery, gallery_ids = make_data(
        args.probes, args.gallery, args.dim, args.identities
    )
    t_sim, sim = best_of(lambda: l2_normalise(probes) @ l2_normalise(gallery).T, args.repeats)
    t_fast_sim, fast = best_of(
        lambda: retrieval_metrics(None, probe_ids, None, gallery_ids, similarity=sim), args.repeats
    )
    t_fast_emb, fast_emb = best_of(
        lambda: retrieval_metrics(probes, probe_ids, gallery, gallery_ids), args.repeats
    )
    t_ref, ref = best_of(lambda: retrieval_reference(sim, probe_ids, gallery_ids), 1)

    assert np.array_equal(fast.cmc, ref.cmc), "CMC differs from the reference loop"
    assert np.array_equal(fast_emb.cmc, ref.cmc), "chunked CMC differs from the reference loop"
    assert fast.skipped_probes == ref.skipped_probes == fast_emb.skipped_probes
    ap_diff = max(
        np.abs(fast.average_precision - ref.average_precision).max(),
        np.abs(fast_emb.average_precision - ref.average_precision).max(),
    )
    assert ap_diff <= 1e-12, f"AP differs from the reference loop by {ap_diff}"

    domains = np.r_[np.ones(args.probes, np.uint8), np.zeros(args.gallery, np.uint8)]
    identities = np.r_[probe_ids, gallery_ids]
    t_pairs, generated = best_of(lambda: generate_pairs(identities, domains, 10_000, seed=0), 1)
    # This data has fewer than 50,000 distinct matched masked-vs-full pairs, so the protocol
    # shrinks; the timing below uses exactly 10 x 10,000 pairs drawn with repetition.
    rng = np.random.default_rng(1)
    take = rng.choice(len(generated.pairs), size=100_000, replace=True)
    pairs = generated.pairs
    pairs = type(pairs)(pairs.a[take], pairs.b[take], pairs.same[take])
    normalised = l2_normalise(np.r_[probes, gallery])
    t_pair_sims, sims = best_of(
        lambda: pair_similarities(normalised, pairs.a, pairs.b), args.repeats
    )
    t_verify, verification = best_of(lambda: verification_metrics(sims, pairs.same), args.repeats)

    print(
        f"data: {args.probes} probes x {args.gallery} gallery, {args.dim}-d, "
        f"{args.identities} identities; generated pairs: {generated.matched_per_fold} matched + "
        f"{generated.matched_per_fold} unmatched per fold (shrunk: {generated.shrunk}); "
        f"verification timed on {len(pairs)} pairs"
    )
    print(
        f"figures: Rank-1 {100 * fast.rank(1):.2f}  Rank-5 {100 * fast.rank(5):.2f}  "
        f"Rank-10 {100 * fast.rank(10):.2f}  mAP {100 * fast.mean_average_precision:.2f}  "
        f"acc {100 * verification.accuracy:.2f} +- {100 * verification.accuracy_std:.2f}"
    )
    print(
        f"identical to the reference loop: CMC exact, max |AP diff| = {ap_diff:.1e}, "
        f"skipped {fast.skipped_probes}"
    )
    rows = [
        ("similarity matrix (one float32 matmul)", t_sim, ""),
        ("reference loop, from similarity matrix", t_ref, "1.0x"),
        ("fast CMC+mAP, from similarity matrix", t_fast_sim, f"{t_ref / t_fast_sim:.1f}x"),
        (
            "fast CMC+mAP, from embeddings (incl. matmul)",
            t_fast_emb,
            f"{(t_ref + t_sim) / t_fast_emb:.1f}x vs ref+matmul",
        ),
        ("generate pairs (10 folds, protocol)", t_pairs, ""),
        (f"pair similarities ({len(pairs):,})", t_pair_sims, ""),
        ("10-fold verification + TAR@FAR + AUC", t_verify, "goal < 1 s"),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'step':<{width}}  {'seconds':>8}  speed-up")
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:8.3f}  {note}")


if __name__ == "__main__":
    main()
