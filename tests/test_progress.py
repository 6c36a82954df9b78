"""e2nas.progress: plain-text progress lines, in a terminal and in a papermill-executed notebook (no widgets)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from e2nas.progress import progress

SRC = Path(__file__).resolve().parents[1] / "src"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _lines(text: str) -> list[str]:
    assert text.endswith("\n") and "\r" not in text
    return text.splitlines()


def test_lines_are_complete_and_carry_count_and_postfix(capsys):
    bar = progress(range(4), desc="tiny loop", unit="step", mininterval=0)
    for i in bar:
        bar.set_postfix(loss=f"{1.0 / (i + 1):.3f}")
    err = capsys.readouterr().err
    lines = _lines(err)
    assert len(lines) == 5  # the start, one per step (mininterval=0), the end once
    assert all(line.startswith("tiny loop:") for line in lines)
    assert [f"{n}/4" in line for n, line in enumerate(lines)] == [True] * 5
    assert "loss=0.250" in lines[-1] and "100%" in lines[-1]
    assert WIDGET not in err and "\x1b" not in err  # no widget, no cursor moves


def test_updated_by_hand_throttled_and_leave_false_still_ends_with_a_line():
    out = io.StringIO()
    bar = progress(total=50, desc="epoch 1/2", leave=False, mininterval=3600, stream=out)
    for _ in range(50):
        bar.update()
    bar.close()
    lines = _lines(out.getvalue())
    assert len(lines) == 2 and "0/50" in lines[0] and "50/50" in lines[1]  # throttled: only first and last


def test_disabled_writes_nothing(capsys):
    assert list(progress(range(3), desc="off", disable=True)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_papermill_notebook_gets_stream_lines_not_widgets(tmp_path, monkeypatch):
    import nbformat
    import papermill

    code = (
        "from e2nas.progress import progress\n"
        "bar = progress(range(3), desc='nb loop', unit='epoch', mininterval=0)\n"
        "for i in bar:\n"
        "    bar.set_postfix(loss=f'{0.5 / (i + 1):.3f}')\n"
    )
    source, executed = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), source)
    # The kernel is a subprocess: it must import this checkout's e2nas.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p))
    papermill.execute_notebook(str(source), str(executed), kernel_name="python3", cwd=str(tmp_path), progress_bar=False)

    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert outputs and all(o.output_type == "stream" for o in outputs)
    assert WIDGET not in executed.read_text()
    text = "".join(o.text for o in outputs)
    lines = _lines(text)
    assert len(lines) == 4 and all(line.startswith("nb loop:") for line in lines)
    assert "3/3" in lines[-1] and "loss=0.167" in lines[-1]


def test_inside_a_pipeline_job_every_line_names_the_job(capsys, monkeypatch):
    monkeypatch.setenv("E2NAS_JOB", "e2nas seed0 · search")
    for _ in progress(range(3), desc="e2nas epoch 1/2", mininterval=0):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("[e2nas seed0 · search] e2nas epoch 1/2") for line in lines)
    monkeypatch.delenv("E2NAS_JOB")
    for _ in progress(range(1), desc="alone", mininterval=0):
        pass
    assert capsys.readouterr().err.startswith("alone")
