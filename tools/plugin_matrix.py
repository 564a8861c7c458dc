#!/usr/bin/env python3
"""Write (or check) tools/plugin_matrix.json, the plugin matrix the noxfile reads.

    tools/plugin_matrix.py            rewrite the file from the plugin registry
    tools/plugin_matrix.py --check    exit 1, naming the command, if the file is stale

nox is usually installed on its own (pipx, ``uv tool install nox``), where mmcore and its
dependencies cannot be imported, so the noxfile cannot ask the registry which
configurations are valid. This tool asks it once, here in the project's environment, and
records the answer: every valid (rmap, mremap_policy) pair
(:func:`mmcore.plugins.valid_configurations`) and the file_rmap and reclaim plugins. Only
the plugins this repository ships (``[project.entry-points.mmcore]`` in pyproject.toml)
are recorded: a nox session installs this repository and nothing else, so a third-party
plugin installed beside it would give sessions that cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "tools" / "plugin_matrix.json"
sys.path.insert(0, str(ROOT))

from mmcore.atomicfile import write_text  # noqa: E402
from mmcore.plugins import plugins_of_kind, valid_configurations  # noqa: E402


def shipped_names() -> set[str]:
    """The plugin names under ``[project.entry-points.mmcore]`` in pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    return set(project["entry-points"]["mmcore"])


def matrix() -> dict[str, Any]:
    """The matrix of the shipped plugins, as the noxfile reads it."""
    ours = shipped_names()
    return {
        "generated_by": "tools/plugin_matrix.py (rerun it after adding or changing a plugin)",
        "rmap": [[rmap, policy] for rmap, policy in valid_configurations()
                 if rmap in ours and (policy is None or policy in ours)],
        "file_rmap": sorted(n for n in plugins_of_kind("file_rmap") if n in ours),
        "reclaim": sorted(n for n in plugins_of_kind("reclaim") if n in ours),
    }


def render() -> str:
    """The file's text: stable key order, so a regenerated file diffs cleanly."""
    return json.dumps(matrix(), indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the matrix file, or with ``--check`` compare it with the registry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the file differs from the registry")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = MATRIX.read_text() if MATRIX.exists() else ""
        if current != text:
            print(f"{MATRIX.relative_to(ROOT)} is stale: run tools/plugin_matrix.py",
                  file=sys.stderr)
            return 1
        return 0
    write_text(MATRIX, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
