"""mmsim command line (placeholder until the experiments layer lands)."""


def main() -> int:
    """Entry point."""
    return 0
