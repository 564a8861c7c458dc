"""Issue 8 item 4, one CLI: one spelling per option on every subcommand and in the pytest
plugin, ``--json`` wherever a command reports, defaults in ``--help``, ``--observe``,
outputs announced before they are written, what satisfies a plugin's need, hex addresses
and symbolic flags in reproducers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmcore import constants as C
from mmcore import flagnames
from mmcore.cli import build_parser, main
from mmcore.experiments.ops import Op
from mmcore.plugins import installed_plugins, plugin_info
from mmcore.testing.repro import format_reproducer

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "examples" / "traces" / "mmtoy.jsonl"
SMALL = ["--param", "pages=8", "--param", "children=2"]


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
           ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command parser of mmsim, by its command path (``("trace", "replay")``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*path, name))


COMMANDS = dict(leaves(build_parser()))


def options(parser: argparse.ArgumentParser) -> dict[str, tuple[str, ...]]:
    """dest -> option strings of one parser."""
    return {a.dest: tuple(a.option_strings) for a in parser._actions if a.option_strings}


def test_each_option_has_one_spelling_on_every_subcommand() -> None:
    """The same setting is spelt the same wherever it appears (``--mremap-policy``,
    never ``--policy``)."""
    spellings: dict[str, set[tuple[str, ...]]] = {}
    for parser in COMMANDS.values():
        for dest, strings in options(parser).items():
            spellings.setdefault(dest, set()).add(strings)
    assert {d: s for d, s in spellings.items() if len(s) > 1} == {}
    assert spellings["mremap_policy"] == {("--mremap-policy",)}
    assert all("--policy" not in s for v in spellings.values() for s in v)


def test_run_compare_and_replay_choose_plugins_with_the_same_options() -> None:
    """Every command that builds a Machine of one scheme takes the same plugin options."""
    wanted = {"rmap", "mremap_policy", "file_rmap", "reclaim", "observe"}
    for command in (("run",), ("compare",), ("trace", "replay")):
        assert wanted <= options(COMMANDS[command]).keys(), command


def test_pytest_options_are_mmsim_options_with_the_mmcore_prefix(
        pytester: pytest.Pytester) -> None:
    """``--mmcore-rmap``, ``--mmcore-mremap-policy``, ``--mmcore-file-rmap``: the mmsim
    spelling with pytest's plugin prefix (``--mmcore-policy`` is gone)."""
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for option in ("--rmap", "--mremap-policy", "--file-rmap"):
        assert f"--mmcore{option[1:]}" in text
    assert "--mmcore-policy" not in text


@pytest.mark.parametrize("command", [
    ("plugins",), ("workloads",), ("run",), ("compare",), ("sweep",), ("rerun",),
    ("reproduce",), ("trace", "import"), ("trace", "info"), ("trace", "record"),
    ("trace", "replay"), ("lab", "list"), ("lab", "show"), ("lab", "grade")])
def test_every_command_that_reports_has_json(command: tuple[str, ...]) -> None:
    """``--json`` is on every subcommand that prints a report."""
    assert "--json" in {s for strings in options(COMMANDS[command]).values()
                        for s in strings}


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` says what an option is when it is not given."""
    assert main(["trace", "replay", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: anon_vma_chain)" in text and "(default: 0)" in text
    assert main(["reproduce", "--help"]) == 0
    assert "(default: results/reproduce)" in " ".join(capsys.readouterr().out.split())


def test_plugins_shows_what_satisfies_a_need(capsys: pytest.CaptureFixture[str]) -> None:
    """A need is shown as the plugins that provide it (``unshare``), not as a capability
    name no plugin has (``mremap_unshare``); the JSON maps each need to them."""
    needy = {n: plugin_info(c) for n, c in installed_plugins().items()
             if plugin_info(c).needs}
    if not needy:
        pytest.skip("no installed plugin needs anything")
    assert main(["plugins", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in doc["plugins"]}
    for name, info in needy.items():
        for cap in info.needs:
            providers = by_name[name]["needs"][cap]
            assert all(cap in plugin_info(installed_plugins()[p]).provides
                       for p in providers)
    if "anonmm" in needy and "unshare" in installed_plugins():
        assert by_name["anonmm"]["needs"] == {"mremap_unshare": ["unshare"]}
        assert main(["plugins"]) == 0
        row = next(ln for ln in capsys.readouterr().out.splitlines()
                   if ln.startswith("│ anonmm "))
        assert "unshare" in row and "mremap_unshare" not in row


def test_a_missing_need_names_the_plugin_that_provides_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``run --rmap anonmm`` (exit 2) says which installed plugin would satisfy it."""
    if not {"anonmm", "unshare"} <= installed_plugins().keys():
        pytest.skip("needs anonmm and unshare")
    assert main(["run", "forking-server", "--rmap", "anonmm", *SMALL]) == 2
    assert "mremap_unshare is provided by unshare" in capsys.readouterr().err


def test_observe_turns_on_an_observer_and_its_events_show_hex_addresses(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--observe event_log`` registers the plugin; its events go to stderr (debug is
    the default level when observing) with addresses in hex."""
    assert main(["run", "forking-server", "--rmap", "anon_vma", *SMALL, "--json",
                 "--observe", "event_log"]) == 0
    captured = capsys.readouterr()
    assert "event_log" in json.loads(captured.out)["plugin_versions"]
    faults = [ln for ln in captured.err.splitlines() if "fault" in ln and "address=" in ln]
    assert faults and all("address=0x" in ln for ln in faults)


def test_compare_announces_its_default_plot_before_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``compare`` says where its default plot goes before the first run starts."""
    from mmcore.experiments import runner

    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    real = runner.run

    def spy(*args: Any, **kw: Any) -> Any:
        if not said:
            said.append(capsys.readouterr().err)
        return real(*args, **kw)

    monkeypatch.setattr(runner, "run", spy)
    assert main(["compare", "forking-server", *SMALL]) == 0
    assert "writing the plot to results/forking-server.png" in said[0]
    assert (tmp_path / "results" / "forking-server.png").exists()


def test_reproduce_writes_under_results_by_default_and_says_so_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``--out``, reproduce writes results/reproduce/ (never ./docs, which is
    someone else's inside their repository) and announces it before measuring."""
    from mmcore.experiments import reproduce as reproduce_mod

    calls: list[tuple[str, str]] = []

    def fake(out_dir: str, *args: Any, **kw: Any) -> tuple[Path, list[Any]]:
        calls.append((str(out_dir), capsys.readouterr().err))
        return Path(out_dir) / "results.md", []

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reproduce_mod, "reproduce", fake)
    assert main(["reproduce", "--json"]) == 0
    assert calls[0][0] == "results/reproduce"
    assert "writing the report to results/reproduce/results.md" in calls[0][1]
    assert json.loads(capsys.readouterr().out)["report"] == "results/reproduce/results.md"
    assert not (tmp_path / "docs").exists()


def test_rerun_json_says_whether_the_result_was_reproduced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rerun --json`` reports identical/diff as data."""
    assert main(["run", "forking-server", "--rmap", "anon_vma", *SMALL, "--json"]) == 0
    saved = tmp_path / "r.json"
    saved.write_text(capsys.readouterr().out)
    assert main(["rerun", str(saved), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["identical"] is True and doc["diff"] == []


# --- symbolic flags and hex addresses -------------------------------------------------------

@pytest.mark.parametrize("fn,value,text", [
    (flagnames.prot_expr, 0, "PROT_NONE"),
    (flagnames.prot_expr, 3, "PROT_READ | PROT_WRITE"),
    (flagnames.prot_expr, 0x41, "PROT_READ | 0x40"),
    (flagnames.mmap_flags_expr, 0x22, "MAP_PRIVATE | MAP_ANONYMOUS"),
    (flagnames.mmap_flags_expr, 0x32, "MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS"),
    (flagnames.mmap_flags_expr, 0x03, "MAP_SHARED_VALIDATE"),
    (flagnames.mmap_flags_expr, 0x08, "0x8"),
    (flagnames.mremap_flags_expr, 3, "MREMAP_MAYMOVE | MREMAP_FIXED"),
    (flagnames.advice_expr, 4, "MADV_DONTNEED"),
    (flagnames.advice_expr, 999, "999"),
])
def test_flags_print_as_the_names_people_write(fn: Any, value: int, text: str) -> None:
    """Each expression names the flags and keeps unnamed bits, so it evaluates back to
    the value."""
    assert fn(value) == text
    assert eval(text, {n: getattr(C, n) for n in C.__all__}) == value


def test_reproducers_use_symbolic_flags_hex_addresses_and_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A reproducer reads ``prot=PROT_READ | PROT_WRITE, flags=MAP_PRIVATE |
    MAP_ANONYMOUS`` with hex addresses and imports what it names, so it runs pasted."""
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, addr=0x10000000, length=0x2000, prot=3, flags=0x32),
           Op("write", pid=1, addr=0x10000000),
           Op("mremap", pid=1, addr=0x10000000, length=0x1000, new_len=0x3000, flags=1),
           Op("exit", pid=1)]
    script = format_reproducer(ops, "anon_vma", None)
    assert "prot=PROT_READ | PROT_WRITE" in script
    assert "flags=MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS" in script
    assert "addr=0x10000000" in script and "flags=MREMAP_MAYMOVE" in script
    assert "from mmcore.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, " \
           "MREMAP_MAYMOVE, PROT_READ, PROT_WRITE" in script
    exec(compile(script, "<reproducer>", "exec"), {})


def test_the_labs_and_the_kit_share_one_flag_formatter() -> None:
    """The grader's scenario code and the kit's reproducers print prot the same way,
    through the same function (no twin)."""
    from mmcore_contrib.labs import scenario

    assert scenario.prot_text is flagnames.prot_expr
