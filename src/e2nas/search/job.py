"""One stage-4 job, whichever kind of method it runs: a search on the warmed-up supernet (`loop.run_search`), or a
method without a supernet (`standalone.run_standalone`: random search, the zero-cost picks).

The method's module is imported by name (e2nas.names.METHOD_MODULES), as `loop.method_class` does: a job's code
inputs are its own method's module and no other, so editing random search reruns no supernet search.
"""

from __future__ import annotations

import importlib

from e2nas import spaces
from e2nas.names import METHOD_MODULES, STANDALONE_METHODS
from e2nas.search.config import SearchConfig
from e2nas.search.loop import run_search


def run_job(method: str, dataset: str, inputs: dict, outputs: dict, cfg: SearchConfig, seed: int, checkpoint_path, *,
            data: dict, images: int, space: str, space_options: dict | None = None, device="cpu", table=None,
            on_epoch=None, on_candidate=None, keep_checkpoint: bool = False) -> dict:
    """One stage-4 job: `run_search` on the warmed-up supernet, or, for a method without one (random search,
    the zero-cost picks: e2nas.search.standalone), `run_standalone` on the config's split (`data`, the
    `data` section) scoring on `images` arch-half images (`ranking.images`)."""
    from e2nas.data import DataConfig, load_dataset, split_for

    images_data = load_dataset(dataset)
    if method in STANDALONE_METHODS:
        run_standalone = importlib.import_module(f"e2nas.search.{METHOD_MODULES[method]}").run_standalone
        split = split_for(images_data, DataConfig(**data))
        return run_standalone(method, images_data, split, cfg, images, seed, outputs["result"], checkpoint_path,
                              space=spaces.configured(space, space_options), device=device, table=table,
                              on_candidate=on_candidate, keep_checkpoint=keep_checkpoint)
    return run_search(method, images_data, inputs["warmup"], inputs.get("vgae"), cfg, seed, outputs["result"], checkpoint_path,
                      device=device, table=table, on_epoch=on_epoch, graphs_path=inputs.get("graphs"),
                      supernet_path=outputs.get("supernet"), space_options=space_options, keep_checkpoint=keep_checkpoint)
