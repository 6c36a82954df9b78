"""benchmarks/RESULTS.md, which every benchmark script appends its dated figures to."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def append_result(text: str) -> None:
    """Append to RESULTS.md, re-reading it in the same open (other benchmarks append too)."""
    with open(RESULTS, "a+") as f:
        f.seek(0)
        current = f.read()
        if not current:
            f.write("# Benchmark results\n\n")
        elif not current.endswith("\n\n"):
            f.write("\n" if current.endswith("\n") else "\n\n")
        f.write(text + "\n")
