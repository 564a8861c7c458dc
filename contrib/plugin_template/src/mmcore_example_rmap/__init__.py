"""An example third-party rmap scheme for mmcore (see ``scheme.py`` and the README)."""

from .scheme import ExampleAnonVma

__all__ = ["ExampleAnonVma"]
