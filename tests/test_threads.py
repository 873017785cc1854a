"""The thread policy of `srbench run` and the parameter/MAC cost cache."""

from __future__ import annotations

import os

import pytest
import torch

from srbench import threads
from srbench.errors import SRBenchError
from srbench.threads import ThreadPolicy, restored_threads, threads_for


@pytest.mark.parametrize(
    ("idle", "cores", "expected"),
    [(None, 2, 2), (0.0, 2, 1), (0.9, 2, 1), (1.5, 2, 1), (1.9, 2, 2), (2.0, 2, 2), (3.2, 4, 3)],
)
def test_threads_are_whole_idle_cores_at_least_one(idle, cores, expected):
    assert threads_for(idle, cores) == expected


def test_idle_cores_is_a_core_count():
    idle = threads.idle_cores(0.05)
    if not os.path.exists("/proc/stat"):
        assert idle is None
    else:
        assert idle is not None and 0.0 <= idle <= os.cpu_count()


def test_fixed_policy_sets_and_records_its_count():
    with restored_threads():
        before = torch.get_num_threads()
        policy = ThreadPolicy(1)
        assert policy.update() == 1 == torch.get_num_threads()
        assert policy.provenance() == {
            "torch_threads": 1,
            "thread_policy": "fixed",
            "idle_cores": None,
        }
    assert torch.get_num_threads() == before
    with pytest.raises(SRBenchError, match="--threads must be >= 1"):
        ThreadPolicy(0)


def test_adaptive_policy_follows_the_load_and_resamples_when_due(monkeypatch):
    samples = iter([0.2, 2.0])
    monkeypatch.setattr(threads, "idle_cores_since", lambda since: (next(samples), None))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    with restored_threads():
        policy = ThreadPolicy(interval_s=3600)
        assert policy.update() == 1 == torch.get_num_threads()  # a busy machine: one thread
        assert policy.update() == 1  # not due: the first sample stands
        assert policy.provenance() == {
            "torch_threads": 1,
            "thread_policy": "adaptive",
            "idle_cores": 0.2,
        }
        policy.interval_s = 0
        assert policy.update() == 2 == torch.get_num_threads()  # the load went away


def test_run_records_the_threads_of_each_image(tmp_path, monkeypatch):
    from srbench.runner import RunConfig, run
    from srbench.sources import demo_source

    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    config = RunConfig(["bicubic"], ["demo"], [4], results_dir=tmp_path / "r", crops=False,
                       count_costs=False, threads=1)  # fmt: skip
    records = run(config, [demo_source()])
    assert len(records) == 5
    assert {(r["torch_threads"], r["thread_policy"]) for r in records} == {(1, "fixed")}
    assert torch.get_num_threads() == before  # the run's count does not outlive it


def test_costs_are_counted_once_per_model_code(tmp_path, monkeypatch):
    import srbench.profiling
    from srbench import cost_cache

    calls = []
    real = srbench.profiling.profile_model

    def counting(*args, **kwargs):
        calls.append(kwargs["sizes"])
        return real(*args, **kwargs)

    monkeypatch.setattr(srbench.profiling, "profile_model", counting)
    first = cost_cache.cached_counts("srcnn", 2, ["16", "256"], tmp_path)
    again = cost_cache.cached_counts("srcnn", 2, ["16", "256"], tmp_path)
    assert calls == [["16", "256"]]  # the second store reads the cache
    assert [r["total_macs"] for r in again] == [r["total_macs"] for r in first]
    assert first[0]["network_macs"] == 57_184 * 32 * 32  # SRCNN runs on the x2 upsampled input
    keys = {cost_cache.cost_key(m, s, "256") for m in ("srcnn", "idn") for s in (2, 3)}
    assert len(keys) == 4
    # An edit to the architecture's code is a new key: it is counted afresh.
    before = cost_cache.cost_key("srcnn", 2, "256")
    digest = cost_cache._source_digest
    monkeypatch.setattr(
        cost_cache,
        "_source_digest",
        lambda m: "edited" if m.__name__ == "architectures.srcnn" else digest(m),
    )
    assert cost_cache.cost_key("srcnn", 2, "256") != before
    cost_cache.cached_counts("srcnn", 2, ["16"], tmp_path)
    assert calls == [["16", "256"], ["16"]]


def test_a_window_already_open_long_enough_costs_no_wait(monkeypatch):
    start = threads.read_load()
    if start is None:
        pytest.skip("no /proc/stat")
    waits = []
    monkeypatch.setattr(threads.time, "sleep", waits.append)
    # a window opened a second ago on an idle machine; its counters must lie behind the
    # reading that ends it, which a real window only this old may not (a fast machine reads
    # /proc/stat twice within one clock tick, and the window then has no load to measure)
    second = (os.cpu_count() or 1) * os.sysconf("SC_CLK_TCK")
    old = threads.LoadReading(
        start.idle - second, start.total - second, start.own_s, start.at - 1.0
    )
    idle, end = threads.idle_cores_since(old)
    assert waits == [0.0] and end is not None and end.at >= start.at
    assert idle is not None and 0.0 <= idle <= os.cpu_count()
    fresh = threads.read_load()
    threads.idle_cores_since(fresh, 0.1)
    assert 0.0 < waits[1] <= 0.1  # a new window waits for the rest of its 0.1 s
