"""The conformance kit's engine: random operation sequences with every invariant checked
after every step, as a hypothesis state machine, a seeded random walk, and fixed scenarios.

This module holds the runners and the suite; the pieces they tie together live in
sibling modules, bottom up:

* :mod:`.model`: :class:`ContentModel` predicts, independently of the simulator, what every
  process must read on every page it maps (private pages copied at fork, shared pages
  shared, content moved by mremap, zeroed by MADV_DONTNEED, lazily freed, punched by
  MADV_REMOVE, wiped at fork) and which pages it maps at all, and its guard regions;
* :mod:`.driver`: :class:`Driver` applies :class:`~mmcore.experiments.ops.Op` values through
  a :class:`~mmcore.experiments.ops.Player`, updates the model, and after every op runs
  :func:`~mmcore.testing.invariants.find_violations` plus the model checks. The first
  failure raises :class:`~mmcore.testing.repro.ConformanceFailure` with the op list as
  runnable Python (minimised by delta debugging);
* :mod:`.generator`: :class:`OpGenerator` draws the next op (mmap, munmap, mprotect, mremap,
  fork, exit, write, read, try_to_unmap, the madvise family, MAP_POPULATE, a fork tree) from a
  :class:`Chooser`: hypothesis data in :func:`conformance_state_machine`, a seeded
  ``random.Random`` in :func:`run_random_sequence`;
* :mod:`.scenarios`: :func:`fork_tree_ops` and the fixed, readable op lists;
* here: the runners (:func:`run_random_sequence`, :func:`conformance_state_machine`,
  :func:`run_conformance`, :func:`run_fork_tree`) and :class:`RmapConformance`, the suite
  a plugin author subclasses with one line.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..experiments.ops import Op
from .driver import Driver, replay
from .generator import Chooser, DataChooser, OpGenerator, RandomChooser
from .model import DEFAULT_MACHINE_KWARGS, MAX_LIVE, TOKEN_LEN, WINDOW, ContentModel, P
from .scenarios import SCENARIOS, fork_tree_ops

if TYPE_CHECKING:
    from hypothesis.stateful import RuleBasedStateMachine
    from hypothesis.strategies import DataObject

__all__ = [
    "DEFAULT_MACHINE_KWARGS",
    "Chooser",
    "ContentModel",
    "Driver",
    "OpGenerator",
    "RandomChooser",
    "RmapConformance",
    "conformance_state_machine",
    "fork_tree_ops",
    "replay",
    "run_conformance",
    "run_fork_tree",
    "run_random_sequence",
]


# ----------------------------------------------------------------------------------------
# Runners: seeded random sequences, the hypothesis state machine, fork trees
# ----------------------------------------------------------------------------------------

def run_random_sequence(rmap: str | type, mremap_policy: str | type | None = None, *,
                        seed: int = 0, steps: int = 2000,
                        machine_kwargs: dict[str, Any] | None = None,
                        minimize_budget: float = 30.0) -> Driver:
    """``steps`` random operations from a seeded generator (no hypothesis), checked after
    every op, then every process exits and nothing may be left. Returns the Driver."""
    driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs,
                    minimize_budget=minimize_budget, seed=seed)
    gen = OpGenerator(driver, RandomChooser(random.Random(seed)))
    gen.spawn()
    for _ in range(steps):
        gen.random_step()
    driver.finish()
    return driver


def conformance_state_machine(rmap: str | type, mremap_policy: str | type | None = None, *,
                              machine_kwargs: dict[str, Any] | None = None,
                              max_live: int = MAX_LIVE,
                              minimize_budget: float = 20.0) -> type[RuleBasedStateMachine]:
    """A hypothesis ``RuleBasedStateMachine`` class for one configuration: one rule per
    operation kind, every invariant checked after every op, every process exited (and
    leaks checked) in teardown."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

    def alive(self: Any) -> bool:
        return bool(self.driver.live())

    def room(self: Any) -> bool:
        return len(self.driver.live()) < max_live

    class RmapStateMachine(RuleBasedStateMachine):
        """Random mmap/munmap/mprotect/mremap/fork/exit/write/read/try_to_unmap/
        madvise (DONTNEED, FREE, COLD, PAGEOUT, REMOVE, guards, WIPEONFORK, POPULATE)
        sequences against one rmap scheme."""

        def __init__(self) -> None:
            super().__init__()
            self.driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs,
                                 minimize_budget=minimize_budget)

        def gen(self, data: DataObject) -> OpGenerator:
            return OpGenerator(self.driver, DataChooser(data), max_live)

        @initialize(data=st.data())
        def start(self, data: DataObject) -> None:
            g = self.gen(data)
            g.spawn()
            g.mmap()

        @precondition(room)
        @rule(data=st.data())
        def spawn(self, data: DataObject) -> None:
            self.gen(data).spawn()

        @precondition(alive)
        @rule(data=st.data())
        def mmap(self, data: DataObject) -> None:
            self.gen(data).mmap()

        @precondition(alive)
        @rule(data=st.data())
        def munmap(self, data: DataObject) -> None:
            self.gen(data).munmap()

        @precondition(alive)
        @rule(data=st.data())
        def mprotect(self, data: DataObject) -> None:
            self.gen(data).mprotect()

        @precondition(alive)
        @rule(data=st.data())
        def mremap(self, data: DataObject) -> None:
            self.gen(data).mremap()

        @precondition(lambda self: alive(self) and room(self))
        @rule(data=st.data())
        def fork(self, data: DataObject) -> None:
            self.gen(data).fork()

        @precondition(alive)
        @rule(data=st.data())
        def exit(self, data: DataObject) -> None:
            self.gen(data).exit()

        @precondition(alive)
        @rule(data=st.data())
        def write(self, data: DataObject) -> None:
            self.gen(data).write()

        @precondition(alive)
        @rule(data=st.data())
        def write_again(self, data: DataObject) -> None:
            self.gen(data).write()

        @precondition(alive)
        @rule(data=st.data())
        def read(self, data: DataObject) -> None:
            self.gen(data).read()

        @precondition(alive)
        @rule(data=st.data())
        def try_to_unmap(self, data: DataObject) -> None:
            self.gen(data).try_to_unmap()

        @precondition(alive)
        @rule(data=st.data())
        def madvise_dontneed(self, data: DataObject) -> None:
            self.gen(data).dontneed()

        @precondition(alive)
        @rule(data=st.data())
        def madvise_other(self, data: DataObject) -> None:
            self.gen(data).advise()

        @precondition(lambda self: alive(self) and room(self))
        @rule(data=st.data())
        def fork_tree(self, data: DataObject) -> None:
            self.gen(data).fork_tree()

        @precondition(alive)
        @rule(data=st.data())
        def file_mmap(self, data: DataObject) -> None:
            self.gen(data).file_mmap()

        @precondition(alive)
        @rule(data=st.data())
        def file_io(self, data: DataObject) -> None:
            self.gen(data).file_io()

        @precondition(alive)
        @rule(data=st.data())
        def ftruncate(self, data: DataObject) -> None:
            self.gen(data).ftruncate()

        def teardown(self) -> None:
            # Not after a failure, nor after an op cut short (hypothesis calls teardown in
            # a finally: exiting every process would walk again, and a walk that loops
            # would turn the grader's TestTimeout into a second failure).
            if not self.driver.failed and not self.driver.interrupted:
                self.driver.finish()

    RmapStateMachine.__name__ = RmapStateMachine.__qualname__ = \
        f"RmapStateMachine[{_label(rmap, mremap_policy)}]"
    return RmapStateMachine


def _label(rmap: str | type, mremap_policy: str | type | None) -> str:
    def name(x: str | type) -> str:
        return x if isinstance(x, str) else x.__name__
    return name(rmap) + (f"+{name(mremap_policy)}" if mremap_policy is not None else "")


def run_conformance(rmap: str | type, mremap_policy: str | type | None = None, *,
                    max_examples: int = 25, step_count: int = 30,
                    machine_kwargs: dict[str, Any] | None = None,
                    minimize_budget: float = 20.0) -> None:
    """Run the hypothesis state machine for one configuration, deterministically
    (derandomized, no example database). Raises :class:`ConformanceFailure` (with a
    minimal reproducer) on the first failure hypothesis finds and shrinks."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.stateful import run_state_machine_as_test

    machine_cls = conformance_state_machine(rmap, mremap_policy,
                                            machine_kwargs=machine_kwargs,
                                            minimize_budget=minimize_budget)
    run_state_machine_as_test(machine_cls, settings=settings(
        max_examples=max_examples, stateful_step_count=step_count, derandomize=True,
        database=None, deadline=None, print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink), report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck)))


def run_fork_tree(rmap: str | type, mremap_policy: str | type | None = None, *,
                  seed: int = 0, height: int = 5, max_children: int = 3, pages: int = 4,
                  machine_kwargs: dict[str, Any] | None = None) -> Driver:
    """selftests/mm/rmap.c as a property: after a random fork tree in which every process
    writes, one process has one page unmapped through the rmap walk (try_to_unmap: the
    "migration"); the walk must have found every mapping, every process must still read
    its own data, the processes that shared the old frame must all share one new frame
    once they read it back, and after they all exit nothing may be left."""
    rng = random.Random(seed ^ 0x5EED)
    driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs, seed=seed)
    for op in fork_tree_ops(seed, height=height, max_children=max_children, pages=pages):
        driver.apply(op)
    pids = driver.live()
    victim = rng.choice(pids)
    addr = WINDOW + rng.randrange(pages) * P
    entry = driver.proc(victim).pagemap(addr)
    sharers = [pid for pid in pids if driver.proc(pid).pagemap(addr).present
               and driver.proc(pid).pagemap(addr).pfn == entry.pfn]
    driver.apply(Op("reclaim", pid=victim, addr=addr, length=P))
    still = [pid for pid in sharers if driver.proc(pid).pagemap(addr).present]
    if still:
        driver.fail(f"try_to_unmap of pfn {entry.pfn} (pid {victim} @ {addr:#x}) left it "
                    f"mapped in pids {still}: the rmap walk did not find those mappings")
    for pid in pids:
        for i in range(pages):
            driver.apply(Op("read", pid=pid, addr=WINDOW + i * P, length=TOKEN_LEN))
    new_pfns = {driver.proc(pid).pagemap(addr).pfn for pid in sharers}
    if len(new_pfns) > 1:
        driver.fail(f"pids {sharers} shared pfn {entry.pfn} at {addr:#x}; after it was "
                    f"unmapped and read back they map different frames {sorted(new_pfns)}")
    order = list(pids)
    rng.shuffle(order)
    for pid in order:
        driver.apply(Op("exit", pid=pid))
    return driver


# ----------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------

#: Overrides set by the pytest plugin's options (``--mmcore-max-examples``).
OVERRIDES: dict[str, int] = {}


class RmapConformance:
    """The conformance suite for one rmap scheme. Subclass it with one line::

        class TestMine(RmapConformance):
            rmap = "my_scheme"          # a plugin name, or the plugin class itself

    Optional: ``mremap_policy`` (a name or class), ``file_rmap`` (the file rmap plugin,
    default ``"i_mmap_tree"``; file mappings are exercised too), ``max_examples`` and
    ``stateful_step_count`` (hypothesis budget), ``fork_tree_seeds``, ``random_steps``,
    ``machine_kwargs`` (extra :class:`~mmcore.Machine` arguments).
    """

    rmap: ClassVar[str | type | None] = None
    mremap_policy: ClassVar[str | type | None] = None
    file_rmap: ClassVar[str | type] = "i_mmap_tree"
    max_examples: ClassVar[int] = 80
    stateful_step_count: ClassVar[int] = 40
    fork_tree_seeds: ClassVar[Sequence[int]] = (0, 1, 2, 3)
    random_steps: ClassVar[int] = 600
    machine_kwargs: ClassVar[dict[str, Any]] = {}

    def _scheme(self) -> str | type:
        if self.rmap is None:
            raise TypeError(f"{type(self).__name__}: set `rmap = \"scheme_name\"` (or the "
                            "plugin class) on your RmapConformance subclass")
        return self.rmap

    def _kwargs(self, **extra: Any) -> dict[str, Any]:
        """Machine arguments: ``machine_kwargs``, ``file_rmap`` (unless the default), extra."""
        kwargs = dict(self.machine_kwargs)
        if self.file_rmap != "i_mmap_tree":
            kwargs["file_rmap"] = self.file_rmap
        return {**kwargs, **extra}

    def _driver(self) -> Driver:
        return Driver(self._scheme(), self.mremap_policy, machine_kwargs=self._kwargs())

    def test_random_operations(self) -> None:
        """Hypothesis stateful testing over every operation; invariants after every op."""
        run_conformance(self._scheme(), self.mremap_policy,
                        max_examples=OVERRIDES.get("max_examples", self.max_examples),
                        step_count=self.stateful_step_count,
                        machine_kwargs=self._kwargs())

    def test_random_operations_under_memory_pressure(self) -> None:
        """The same with 24 frames: kswapd reclaim runs through the rmap walk in the
        middle of operations (and the OOM killer may end a process)."""
        run_conformance(self._scheme(), self.mremap_policy,
                        max_examples=OVERRIDES.get("max_examples", self.max_examples) // 2,
                        step_count=self.stateful_step_count,
                        machine_kwargs=self._kwargs(ram_pages=24))

    def test_seeded_random_walk(self) -> None:
        """A longer seeded random sequence (no hypothesis) under memory pressure."""
        run_random_sequence(self._scheme(), self.mremap_policy, seed=1,
                            steps=self.random_steps,
                            machine_kwargs=self._kwargs(ram_pages=24))

    def test_large_folios(self) -> None:
        """The seeded random sequence with 16, 32 and 64 kB mTHP on (PTE-mapped large
        folios: batched fork and zap, partial unmaps, splits, COW of one page), roomy and
        under memory pressure."""
        from ..thp import ThpSettings
        for ram_pages in (4096, 24):
            thp = ThpSettings(per_order={2: "always", 3: "always", 4: "always"})
            run_random_sequence(self._scheme(), self.mremap_policy, seed=3,
                                steps=self.random_steps,
                                machine_kwargs=self._kwargs(thp=thp, ram_pages=ram_pages))

    def test_fork_tree(self) -> None:
        """selftests/mm/rmap.c: random fork trees, one page unmapped, all read their data."""
        for seed in self.fork_tree_seeds:
            run_fork_tree(self._scheme(), self.mremap_policy, seed=seed,
                          machine_kwargs=self._kwargs())

    def test_mremap_after_fork(self) -> None:
        """mremap of pages shared with fork children, and the half-over-half move."""
        self._run_scenario("mremap_after_fork")

    def test_mremap_swapped_pages(self) -> None:
        """mremap moves swap ptes of pages a fork child shares; both swap them back in."""
        self._run_scenario("mremap_swapped_pages")

    def test_mprotect_split_storm(self) -> None:
        """Split into single pages after fork, unmap everything, merge back."""
        self._run_scenario("mprotect_split_storm")

    def test_merge_after_fork(self) -> None:
        """Adjacent vmas with different anon objects: merge attempts after fork."""
        self._run_scenario("merge_after_fork")

    def test_shared_anon_after_fork(self) -> None:
        """MAP_SHARED anonymous memory across fork and reclaim."""
        self._run_scenario("shared_anon_after_fork")

    def test_file_mappings(self) -> None:
        """Shared and private file mappings, pread/pwrite, ftruncate and SIGBUS."""
        self._run_scenario("file_mappings")

    def test_exit_orders(self) -> None:
        """Parents exit before children with pages swapped out: nothing may leak."""
        self._run_scenario("exit_orders")

    def test_mapcount_design_on_hand_mapped_folios(self) -> None:
        """Large folios mapped, forked, COWed, split and unmapped by hand
        (:mod:`mmcore.testing.folio_hand`) under the machine's mapcount design
        (``machine_kwargs["mapcount"]``, default ``per_page``): the core's counters match
        the page tables and the design is exact wherever it claims to be."""
        from mmcore.machine import Machine

        from .folio_hand import random_folio_walk

        for seed in self.fork_tree_seeds:
            m = Machine(rmap=self._scheme(), mremap_policy=self.mremap_policy,
                        **self._kwargs(ram_pages=1 << 14))
            random_folio_walk(m, seed=seed, steps=60)

    def _run_scenario(self, name: str) -> None:
        driver = self._driver()
        for op in SCENARIOS[name]():
            driver.apply(op)
        driver.check()
