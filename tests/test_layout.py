"""e2nas.layout.run_files: every file of a kind in a run folder, whatever the depth of its job name."""

from pathlib import Path

from e2nas import layout

WILDCARDS = {"dataset": "fashion-mnist", "space": "nb201", "method": "e2nas", "seed": 3, "cell": "cell-0123456789"}


def test_run_files_finds_every_stage_log_and_checkpoint_however_deep_its_job_name(tmp_path):
    written: dict[str, set[str]] = {}
    for rule, (job, _) in layout.STAGES.items():
        wildcards = {k: v for k, v in WILDCARDS.items() if "{" + k + "}" in job}
        files = {"notebook_log": layout.notebook_log(rule, run="r", root=str(tmp_path), **wildcards)}
        if rule in layout.EPOCH_STAGES:
            files["checkpoint"] = layout.checkpoint(rule, run="r", root=str(tmp_path), **wildcards)
        for kind, file in files.items():
            kind = "report_notebook" if rule == "report" else kind
            written.setdefault(kind, set()).add(file)
    for kind, template in layout.TEMPLATES.items():
        if kind not in written and "{rule}" not in template:
            written[kind] = {layout.path(kind, run="r", root=str(tmp_path), **WILDCARDS)}
    for files in written.values():
        for file in files:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            Path(file).write_text("")

    for kind, files in written.items():
        assert set(layout.run_files(tmp_path / "r", kind)) == files, kind
    # a job name four folders deep (a search's notebook) is found, not only the one-folder ones
    assert any(f.count("/") - str(tmp_path).count("/") >= 6 for f in written["notebook_log"])
