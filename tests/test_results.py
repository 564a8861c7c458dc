"""Results: JSON round trip, and a rerun reproduces every number byte for byte."""

from __future__ import annotations

import json

import pytest

import mmcore
from mmcore.experiments import workloads
from mmcore.experiments.ops import Op
from mmcore.experiments.results import Result, dumps, load, load_many
from mmcore.experiments.runner import rerun, run, run_ops
from mmcore.plugins import valid_configurations

CONFIGS = valid_configurations()
FIRST = CONFIGS[0]


def test_json_round_trip_keeps_every_field() -> None:
    r = run("forking-server", {"pages": 8, "children": 2}, rmap=FIRST[0], mremap_policy=FIRST[1])
    back = Result.from_json(r.to_json())
    assert back == r
    assert load(r.to_json()) == r
    assert load_many(dumps([r, r])) == [r, r]
    assert back.costs.walk.walks == r.costs.walk.walks > 0


def test_result_records_its_configuration_and_versions() -> None:
    r = run("wide-fork", {"pages": 4, "children": 2}, rmap=FIRST[0], mremap_policy=FIRST[1],
            seed=5, arch="i386")
    c = r.config
    assert (c.workload, c.seed, c.rmap, c.policy, c.arch) == ("wide-fork", 5, *FIRST,
                                                              "i386")
    assert c.params == workloads.make_params("wide-fork", {"pages": 4, "children": 2}
                                             ).to_dict()
    assert r.mmcore_version == mmcore.__version__
    assert FIRST[0] in r.plugin_versions
    assert r.costs.arch == "i386"


@pytest.mark.parametrize("config", CONFIGS,
                         ids=[r if p is None else f"{r}+{p}" for r, p in CONFIGS])
@pytest.mark.parametrize("name,params", [
    ("forking-server", {"pages": 8, "children": 3}),
    ("random-mix", {"steps": 150, "max_procs": 4}),
    ("mremap-after-fork", {"pages": 4, "children": 2}),
])
def test_rerun_reproduces_byte_for_byte(name: str, params: dict[str, int],
                                        config: tuple[str, str | None]) -> None:
    r = run(name, params, rmap=config[0], mremap_policy=config[1], seed=11)
    again = rerun(r.to_json())
    assert again.reproducible_json() == r.reproducible_json()
    assert "wall_time_s" not in json.loads(r.reproducible_json())


def test_rerun_of_an_op_list() -> None:
    ops = list(workloads.generate("merge-churn", {"rounds": 2}))
    r = run_ops(ops, rmap=FIRST[0], mremap_policy=FIRST[1])
    assert r.ops == ops
    assert rerun(r.to_json()).reproducible_json() == r.reproducible_json()


def test_reproducible_json_notices_a_different_run() -> None:
    a = run("random-mix", {"steps": 100}, rmap=FIRST[0], mremap_policy=FIRST[1], seed=1)
    b = run("random-mix", {"steps": 100}, rmap=FIRST[0], mremap_policy=FIRST[1], seed=2)
    assert a.reproducible_json() != b.reproducible_json()


def test_load_rejects_what_is_not_a_result() -> None:
    with pytest.raises(ValueError, match="not an mmcore result"):
        load(json.dumps({"hello": 1}))
    with pytest.raises(ValueError):
        load(Op("spawn").to_json())
