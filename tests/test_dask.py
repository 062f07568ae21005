"""The Dask recipe of docs/edit_distance.md: dask.bag partitions -> error_counts -> sum, on a
local cluster of worker processes, equals the single-machine result."""
import os
import random

import pytest

import fastloss

db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("dask.distributed")


def shard_counts(pairs, unit):
    """One partition's ErrorCounts (the recipe's map step)."""
    pairs = list(pairs)
    return [fastloss.error_counts([r for r, _ in pairs], [h for _, h in pairs], unit=unit)]


def corpus(n=3000, seed=0):
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "é"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 15))) for _ in range(n)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 15))) for _ in range(n)]
    return refs, hyps


def test_local_cluster_with_worker_processes(monkeypatch):
    # Worker processes import fastloss from the same place as this process.
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastloss.__file__)))
    monkeypatch.setenv("PYTHONPATH", pkg_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    refs, hyps = corpus()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids  # real worker processes
        bag = db.from_sequence(list(zip(refs, hyps)), npartitions=12)
        for unit in ["word", "char"]:
            total = bag.map_partitions(shard_counts, unit).sum().compute()
            assert total == fastloss.error_counts(refs, hyps, unit=unit)
            assert total.error_rate == fastloss.error_rate(refs, hyps, unit=unit)
