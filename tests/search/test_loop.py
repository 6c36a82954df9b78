"""run_search: result files, determinism, resume after a kill, the inputs each method needs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from e2nas.data import make_split
from e2nas.search import Harness, SearchConfig
from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search.e2nas import E2NAS
from e2nas.spaces import nb201
from search_helpers import LATENT, NUM_OPS, LinearDecoder, images, tiny_cfg

NB201_NET = nb201.SPACE.config("supernet", {"channels": 4, "cells_per_stage": 1})

# ---------------------------------------------------------------- run_search: files, determinism, resume


class FakeTable:
    """Any object with lookup(arch_string) serves as the NB201 table."""

    def lookup(self, arch):
        return {"cifar10": 90.0 + nb201.parse_arch(arch)[0], "cifar100": 70.0, "imagenet16_120": 40.0}


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory):
    """A tiny dataset, its split, a 1-epoch warm-up file and an (untrained) VGAE model file."""
    from e2nas.data import ImageData, make_split
    from e2nas.graphs import build_graph_set
    from e2nas.vgae import VGAEConfig, save_vgae
    from e2nas.vgae.train import build_model
    from e2nas.warmup import WarmupConfig, run_warmup

    root = tmp_path_factory.mktemp("search")
    (x, y), (tx, ty) = images(128, seed=5), images(16, seed=6)
    data = ImageData("toy", 10, 1, 8, x, y, tx, ty, augment=True, pad=1)
    split = make_split(len(y), 0)
    warmup = root / "warmup.pt"
    run_warmup(data, split, NB201_NET, WarmupConfig(epochs=1, batch_size=16), 0, warmup, root / "w.ckpt", progress=False, space="nb201")
    vcfg = VGAEConfig(latent_dim=LATENT, hidden_dim=16, num_layers=2, decoder_layers=1)
    graphs = build_graph_set("nb201", nb201.sample_archs(64, torch.Generator().manual_seed(0)))
    graphs.save(root / "graphs.pt")
    vae = build_model(graphs, vcfg, torch.device("cpu"))
    vgae = root / "model.pt"
    save_vgae(vae, vcfg, "nb201", vgae)
    return {"data": data, "warmup": warmup, "vgae": vgae, "graphs": root / "graphs.pt"}


def search(files, method, out, seed=0, keep_checkpoint=False, **kw):
    from e2nas.search import run_search

    cfg = tiny_cfg(batch_size=16, **kw)
    e2nas = method.startswith("e2nas")
    return run_search(
        method, files["data"], files["warmup"], files["vgae"] if e2nas else None, cfg, seed, out / "result.json",
        out / "search.ckpt", table=FakeTable(), progress=False, graphs_path=files["graphs"] if e2nas else None,
        keep_checkpoint=keep_checkpoint,
    )


def without_seconds(result):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result["trajectory"]]


def result_without_timings(result):
    """The whole result but its wall-clock fields."""
    return {**{k: v for k, v in result.items() if not k.endswith("seconds")}, "trajectory": without_seconds(result)}


class Interrupt(Exception):
    pass


def kill_at_weight_step(monkeypatch, n: int):
    """Make the n-th weight step of the search raise Interrupt (a kill); returns the real step to restore."""
    from e2nas.search.harness import Harness as H

    real, calls = H.train_paths, {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(H, "train_paths", dying)
    return real


@pytest.mark.parametrize("method", ["e2nas", "rsps"])
def test_search_is_deterministic_and_resumes_after_an_interrupted_epoch(stage_files, tmp_path, monkeypatch, method):
    first = search(stage_files, method, tmp_path / "a")
    again = search(stage_files, method, tmp_path / "b")
    assert again["arch"] == first["arch"]
    assert without_seconds(again) == without_seconds(first)

    # Kill the run in the middle of its second epoch (4 weight steps per epoch).
    from e2nas.search.harness import Harness as H

    real = kill_at_weight_step(monkeypatch, 6)
    out = tmp_path / "c"
    with pytest.raises(Interrupt):
        search(stage_files, method, out)
    assert (out / "search.ckpt").exists() and not (out / "result.json").exists()
    monkeypatch.setattr(H, "train_paths", real)
    resumed = search(stage_files, method, out)
    assert resumed["arch"] == first["arch"]
    assert without_seconds(resumed) == without_seconds(first)
    assert not (out / "search.ckpt").exists()


def test_a_checkpoint_of_a_run_on_an_older_input_is_never_resumed(stage_files, tmp_path, monkeypatch):
    """Issue 20: a search killed mid-run, its warm-up then retrained with other settings: the rerun must
    not resume the old run (its result would be the old warm-up's), and the message names the input."""
    import shutil

    from e2nas.checkpoint import CheckpointError
    from e2nas.search.harness import Harness as H
    from e2nas.warmup import WarmupConfig, run_warmup

    files = {**stage_files, "warmup": tmp_path / "warmup.pt"}
    shutil.copy(stage_files["warmup"], files["warmup"])
    real = kill_at_weight_step(monkeypatch, 6)
    with pytest.raises(Interrupt):
        search(files, "e2nas", tmp_path / "s")
    monkeypatch.setattr(H, "train_paths", real)
    run_warmup(files["data"], make_split(len(files["data"].train_y), 0), NB201_NET, WarmupConfig(epochs=2, batch_size=16),
               0, files["warmup"], tmp_path / "w.ckpt", progress=False, space="nb201")  # warmup.epochs 1 -> 2
    with pytest.raises(CheckpointError, match="input warmup has changed since"):
        search(files, "e2nas", tmp_path / "s")
    assert (tmp_path / "s" / "search.ckpt").exists()  # nothing is deleted: the message says what to do


@pytest.mark.parametrize("method", ["gdas", "darts", "rsps", "e2nas"])
def test_a_kept_finished_checkpoint_lets_a_failed_stage_rerun_without_training(stage_files, tmp_path, monkeypatch, method):
    """Issue 20: the pipeline keeps the checkpoint until the notebook has run through; when something
    after the search fails (MLflow, a plot), the rerun writes the same result, every field of it (RSPS's
    last candidates too), and trains no step."""
    from e2nas.search.harness import Harness as H

    first = search(stage_files, method, tmp_path / "a", keep_checkpoint=True)
    assert (tmp_path / "a" / "search.ckpt").exists()
    (tmp_path / "a" / "result.json").unlink()  # what Snakemake does to the outputs of a failed job
    monkeypatch.setattr(H, "train_paths", lambda *a, **k: pytest.fail("the rerun trained again"))
    again = search(stage_files, method, tmp_path / "a")
    assert again["arch"] == first["arch"] and result_without_timings(again) == result_without_timings(first)
    assert json.loads((tmp_path / "a" / "result.json").read_text())["arch"] == first["arch"]
    assert not (tmp_path / "a" / "search.ckpt").exists()  # without keep_checkpoint, deleted at the end


def test_e2nas_result_file_and_trajectory(stage_files, tmp_path):
    from e2nas.vgae import load_vgae

    result = search(stage_files, "e2nas", tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == result
    assert result["method"] == "e2nas" and result["space"] == "nb201" and result["epochs"] == 2
    assert nb201.parse_arch(result["arch"]) and nb201.parse_arch(result["start_arch"])
    assert result["nb201"] == FakeTable().lookup(result["arch"])
    assert result["arch"] == result["trajectory"][-1]["arch"]
    # The result is the decode of the last epoch's μ (not a sample).
    vae = load_vgae(stage_files["vgae"])
    final_mu = torch.tensor(result["trajectory"][-1]["mu"])
    assert result["arch"] == nb201.format_arch(vae.decode_logits(final_mu[None])[0].argmax(-1).tolist())
    assert result["sigma_max"] > 0 and result["encoding_nn_median"] > 0
    first, last = result["trajectory"]
    assert first["eta"] == pytest.approx(1 - 1 / (1 + math.exp(10))) and last["eta"] == pytest.approx(0.5)  # T = 2
    assert first["tau"] == last["tau"] == pytest.approx(SearchConfig().tau_max)
    assert len(last["mu"]) == LATENT and 0.01 <= last["sigma"] <= result["sigma_max"] + 1e-6
    assert 0.0 <= last["complement_same_fraction"] <= 1.0
    assert last["forgetting"] == pytest.approx(last["forgetting_before"] - last["forgetting_after"])
    assert 0.0 <= last["acc_val"] <= 100.0
    assert last["novelty"] is not None  # the archive is full from the first step
    assert last["nb201_cifar10"] == FakeTable().lookup(last["arch"])["cifar10"]
    for record in result["trajectory"]:
        assert 0.0 <= record["sampled_decoded_fraction"] <= 1.0 and 1 <= record["distinct_cells"] <= 4
        assert record["mu_nearest_distance"] >= 0 and 0 < record["decoder_confidence"] <= 1
        assert record["decoder_jacobian"] >= 0 and record["alpha_entropy"] is None


def test_ablations_switch_off_their_part(stage_files, tmp_path):
    noexplore = search(stage_files, "e2nas-noexplore", tmp_path / "ne")
    nocomp = search(stage_files, "e2nas-nocomplement", tmp_path / "nc")
    assert all(r["eta"] == 0.0 for r in noexplore["trajectory"])
    assert all(r["complement_same_fraction"] is None for r in nocomp["trajectory"])
    assert all(r["complement_same_fraction"] is not None for r in noexplore["trajectory"])


@pytest.mark.parametrize("method", ["gdas", "darts", "rsps"])
def test_baselines_return_valid_cells_without_the_vgae(stage_files, tmp_path, method):
    result = search(stage_files, method, tmp_path, epochs=1)
    assert nb201.format_arch(nb201.parse_arch(result["arch"])) == result["arch"]
    assert result["method"] == method and len(result["trajectory"]) == 1
    record = result["trajectory"][0]
    assert record["mu"] is None and record["sigma"] is None and 0.0 <= record["acc_val"] <= 100.0
    if method != "rsps":
        assert 0 < record["alpha_entropy"] <= math.log(NUM_OPS) + 1e-6
    if method == "rsps":  # the best of its candidates under the supernet
        assert record["acc_val"] == max(record["candidate_accuracies"])
        assert result["arch"] in result["candidates"]
    if method == "darts":
        assert record["forgetting"] is None
    else:
        assert record["forgetting_before"] is not None


def test_e2nas_needs_the_vgae_and_the_right_dataset(stage_files, tmp_path):
    from dataclasses import replace

    from e2nas.search import run_search

    with pytest.raises(ValueError, match="vgae_path"):
        run_search("e2nas", stage_files["data"], stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")
    with pytest.raises(ValueError, match="graphs_path"):
        run_search("e2nas", stage_files["data"], stage_files["warmup"], stage_files["vgae"], tiny_cfg(), 0, tmp_path / "r.json",
                   tmp_path / "c")
    with pytest.raises(ValueError, match="trained on"):
        other = replace(stage_files["data"], name="cifar10")
        run_search("gdas", other, stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")
    with pytest.raises(ValueError, match="unknown search method"):
        run_search("enas", stage_files["data"], stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")


def test_on_a_cpu_warm_up_and_search_run_the_supernet_in_channels_last(tmp_path, monkeypatch):
    # oneDNN's convolutions are faster in channels_last (runtime.memory_format): the conv weights
    # and every image batch the supernet sees (warm-up, search steps, scoring) are in that layout.
    # Three-channel images: with one channel the two layouts are the same strides.
    from e2nas.data import ImageData
    from e2nas.search import run_search
    from e2nas.spaces.nb201.supernet import SuperNet
    from e2nas.warmup import WarmupConfig, run_warmup

    seen, real = [], SuperNet.forward

    def recording(self, x, *args, **kwargs):
        convs = [m.weight for m in self.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]
        seen.append((x.is_contiguous(memory_format=torch.channels_last), x.shape[0] == 1 or not x.is_contiguous(),
                     all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(SuperNet, "forward", recording)
    g = torch.Generator().manual_seed(3)
    x, tx = torch.randn(64, 3, 8, 8, generator=g), torch.randn(8, 3, 8, 8, generator=g)
    data = ImageData("toy3", 10, 3, 8, x, torch.randint(10, (64,), generator=g), tx, torch.arange(8), augment=True, pad=1)
    warmup = tmp_path / "warmup.pt"
    run_warmup(data, make_split(64, 0), NB201_NET, WarmupConfig(epochs=1, batch_size=16), 0, warmup,
               tmp_path / "w.ckpt", progress=False, space="nb201")
    warmup_calls = len(seen)
    run_search("rsps", data, warmup, None, tiny_cfg(batch_size=16), 0, tmp_path / "r.json", tmp_path / "s.ckpt",
               progress=False)
    assert 0 < warmup_calls < len(seen)
    assert all(all(flags) for flags in seen), seen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on a CUDA device")
def test_a_step_syncs_with_the_host_at_most_once():
    """E2NAS copies the step's 6 op indices to the host, GDAS both halves' draws in one transfer; nothing else waits."""
    from conftest import host_syncs_of_a_step

    device = torch.device("cuda")
    from e2nas.spaces.nb201.supernet import SuperNet

    net = SuperNet(4, 1, 10, 1).to(device)
    x, y = (t.to(device) for t in images(16, seed=1))
    expected = {"e2nas": 1, "gdas": 1, "darts": 0, "rsps": 0}
    for name, want in expected.items():
        harness = Harness(net, tiny_cfg(), device, 0, x, y, space="nb201")
        if name == "e2nas":
            method = E2NAS(harness, LinearDecoder().to(device), torch.zeros(LATENT, device=device))
        else:
            method = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}[name](harness)
        syncs = host_syncs_of_a_step(method, x, y)
        assert len(syncs) == want, (name, syncs)
