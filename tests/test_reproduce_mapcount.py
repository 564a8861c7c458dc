"""The mapcount claims of ``mmsim reproduce``: each verdict follows from the study's
figures, and a core without large folios gives "not measured", never a verdict."""

from __future__ import annotations

import pytest

from mmcore.experiments import reproduce_mapcount as rm
from mmcore.experiments.mapcount_study import DesignRun, MapcountStudy, default_designs


def fake_studies(monkeypatch: pytest.MonkeyPatch, fill: dict[str, dict[str, object]]
                 ) -> rm.Studies:
    """Studies whose runs are DesignRuns with the given attributes per design."""
    def measure(self: rm.Studies) -> None:  # instead of running the study cells
        for label, (workload, _) in rm.RUNS.items():
            runs = []
            for d in self.designs:
                r = DesignRun(d)
                for k, v in fill.get(d, {}).items():
                    setattr(r, k, v)
                runs.append(r)
            self._done[label] = MapcountStudy(workload, {}, 0, runs)
    monkeypatch.setattr(rm.Studies, "_measure", measure)
    return rm.Studies(default_designs())


def test_no_large_folio_means_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    s = fake_studies(monkeypatch, {})
    assert {fn(s).verdict for fn in rm.CLAIMS.values()} == {"not measured"}


def test_constant_size_holds_and_fails_on_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    fill = {d: {"metadata_bytes": 24, "folio_samples": 1} for d in default_designs()}
    fill["per_page"] = {"metadata_bytes": 92, "folio_samples": 1}
    s = fake_studies(monkeypatch, fill)
    # the same bytes for both folio sizes: per_page does not grow, so the claim fails
    assert rm.claim_constant_size(s).verdict == "did not hold"


def test_an_unsafe_reuse_fails_the_no_false_exclusive_claim(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fill = {d: {"decisions": {"cow_asked": 3}} for d in default_designs()}
    assert rm.claim_no_false_exclusive(fake_studies(monkeypatch, fill)).verdict == "held"
    fill["per_folio_tuple"] = {"decisions": {"cow_asked": 3, "cow_unsafe_reuse": 1}}
    assert rm.claim_no_false_exclusive(fake_studies(monkeypatch, fill)).verdict == \
        "did not hold"


def test_part_two_renders_every_claim_with_an_anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    s = fake_studies(monkeypatch, {})
    text = rm.render_mapcount([fn(s) for fn in rm.CLAIMS.values()], s)
    assert text.startswith("# The large-folio mapcount claims, measured")
    for fn in rm.CLAIMS.values():
        c = fn(s)
        assert f'<a id="{c.key}"></a>' in text and f"(#{c.key})" in text
    assert "arena-alone: `mthp-allocator` (worker=False)" in text


def test_a_design_whose_study_cell_fails_is_a_row_without_figures_in_each_claim() -> None:
    """The mapcount claims' runs are study cells: one that fails (here every run of
    per_page, past a budget no run can meet) leaves its design out of the study and is
    a row and a not-measured check naming it in each claim; nothing raises."""
    _, claims = rm.reproduce_mapcount(["per_page"], timeout=1e-6)
    for claim in claims:
        assert len(claim.failures) == len(rm.RUNS)
        assert {f.label for f in claim.failures} == {f"{r} on per_page" for r in rm.RUNS}
        assert all(f.status == "timed out" for f in claim.failures)
        assert claim.verdict == "not measured"
        assert any(row[:2] == ["snapshot on per_page", "**timed out**"]
                   for row in claim.rows)
