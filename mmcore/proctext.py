"""The line formats of /proc's "Name: value kB" files, rendered and parsed from one table.

The kernel prints these files with ``seq_put_decimal_ull_width()``: a label already
padded in the format string, then the number right-aligned in a field width (8 almost
everywhere), then `` kB``. A :class:`Field` records one line's layout, so that rendering
and parsing share a single description of each file (fs/proc/task_mmu.c __show_smap,
task_mem; fs/proc/meminfo.c meminfo_proc_show; mm/vmstat.c vmstat_show).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import ClassVar

from dataclasses_json import DataClassJsonMixin

from . import _reprs


@dataclass(frozen=True)
class Field:
    """One line: ``label``, padded after its colon to ``pad`` characters (0: a tab
    follows the colon, as in /proc/PID/status), the value right-aligned in ``width``
    characters, then ``unit`` (``" kB"`` or nothing)."""

    label: str
    pad: int = 16
    width: int = 8
    unit: str = " kB"

    def render(self, value: int) -> str:
        """The line for ``value``, newline included."""
        head = f"{self.label}:".ljust(self.pad) if self.pad else f"{self.label}:\t"
        return f"{head}{value:>{self.width}}{self.unit}\n"


def fields(labels: Iterable[str], **layout: int | str) -> tuple[Field, ...]:
    """Fields with the same layout for each label."""
    return tuple(Field(label, **layout) for label in labels)  # type: ignore[arg-type]


def render(table: Sequence[Field], values: dict[str, int]) -> str:
    """Every line of ``table``, in its order, with ``values[label]``."""
    return "".join(f.render(values[f.label]) for f in table)


def parse_line(line: str, source: str, lineno: int) -> tuple[str, int]:
    """``"Rss:   12 kB"`` -> ``("Rss", 12)``. A malformed line raises ValueError naming
    the file and line."""
    label, sep, rest = line.partition(":")
    words = rest.split()
    if not sep or not label or " " in label or not words or len(words) > 2 \
            or (len(words) == 2 and words[1] != "kB") or not words[0].isdigit():
        raise ValueError(f"{source}:{lineno}: expected 'Name: number [kB]', got {line!r}")
    return label, int(words[0])


def parse_lines(lines: Iterable[tuple[int, str]], source: str) -> dict[str, int]:
    """``(lineno, line)`` pairs of "Name: value [kB]" lines to a dict in file order; a
    label seen twice is malformed."""
    out: dict[str, int] = {}
    for lineno, line in lines:
        label, value = parse_line(line, source, lineno)
        if label in out:
            raise ValueError(f"{source}:{lineno}: {label!r} appears twice")
        out[label] = value
    return out


def numbered(text: str) -> list[tuple[int, str]]:
    """The non-empty lines of ``text`` with their 1-based line numbers."""
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def check_labels(values: dict[str, int], table: Sequence[Field], source: str) -> None:
    """ValueError naming ``source`` unless ``values`` has exactly the labels of ``table``
    (a file written by another kernel configuration does not fit the table)."""
    want = [f.label for f in table]
    missing = [lbl for lbl in want if lbl not in values]
    extra = [lbl for lbl in values if lbl not in want]
    if missing or extra:
        raise ValueError(f"{source}: fields differ from Linux 6.18's: missing {missing}, "
                         f"unexpected {extra}")


@dataclass(frozen=True)
class ProcTable(DataClassJsonMixin, _reprs.Displayed):
    """A /proc file of labelled values (meminfo, the memory lines of status): the values
    by the kernel's labels (``t["MemFree"]``, in kB where the file says kB) and the text
    in the file's exact layout. Subclasses name their :data:`TABLE`."""

    values: dict[str, int] = dc_field(default_factory=dict)
    TABLE: ClassVar[tuple[Field, ...]] = ()

    def __getitem__(self, label: str) -> int:
        return self.values[label]

    def text(self) -> str:
        """The lines exactly as Linux prints them."""
        return render(self.TABLE, self.values)
