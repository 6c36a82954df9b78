"""Issue 18: every stage notebook runs top to bottom with its own defaults (the smoke profile's paths),
as a researcher opening it in Jupyter would: no injected parameters, no MLflow run."""

import os
import shutil

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def smoke_copy(smoke_pipeline, tmp_path_factory):
    """A copy of the shared smoke run's results, so these runs overwrite nothing the other tests read."""
    work = tmp_path_factory.mktemp("standalone")
    shutil.copytree(smoke_pipeline["workdir"] / "results", work / "results",
                    ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts", "notebooks"))
    return work


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_stage_notebook_runs_with_its_defaults(smoke_copy, notebook, monkeypatch):
    import papermill

    monkeypatch.chdir(smoke_copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = smoke_copy / f"{notebook.stem}.out.ipynb"
    papermill.execute_notebook(str(notebook), str(out), kernel_name="python3", progress_bar=False, cwd=str(smoke_copy))
    assert out.is_file()
    assert not (smoke_copy / "results" / "mlflow.db").exists()  # MLflow is optional: nothing was tracked
