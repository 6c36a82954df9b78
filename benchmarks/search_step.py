"""Cost of one search step (weight half + architecture half) per method, on one supernet and batch.

Every method steps over the same fixed, seeded list of uniformly sampled cells (the step's
cell is forced, so the path sizes match), interleaved round-robin over several rounds so that
drift of a shared machine hits all methods alike; the median step time is reported, with the
ratios to GDAS and DARTS and the share of an E2NAS step spent in its latent part (decoder
forward + backward, novelty, manifold term, normalised combination, archive), timed separately in
the same rounds.

Bars (issue 8): e2nas ≤ 2.2× gdas, e2nas ≤ 0.6× darts, latent part ≤ 10% of an e2nas step. The row `e2nas` is the
paper's step (straight-through estimator, sampled weight paths), as the bars were set on it.

`--e2nas-options EST/PATHS ...` (issue 31) also steps E2NAS with `search.estimator` EST and `search.weight_paths`
PATHS (e.g. swap/frozen, the defaults) over the same cells in the same rounds, and reports each one's paired ratio to
the paper's step.

    python benchmarks/search_step.py                       # paper size: C=16, N=5, batch 64, 3x32x32, 10 classes
    python benchmarks/search_step.py --C 8 --N 1 --rounds 3 --device cuda
    python benchmarks/search_step.py --baseline d14453c    # also the code of revision d14453c, same run

`--split-edge E` (issue 27) also steps every method on a few-shot supernet split on edge E (its
sub-supernets copied from the one-shot supernet) over the same cells in the same rounds, and reports
each method's paired split / one-shot ratio (bar: single-path methods ≤ 1.10; DARTS's mixture on a
split supernet runs |ops| mixtures, its cost is stated).

`--baseline REV` (issue 21) times the code of git revision REV against today's working tree in
one run: every round steps each method on REV's code and then on today's (the order of the two
alternates from round to round) over the same cells, so both see the same load of a shared
machine; it reports each method's step time old and new, the paired ratio new/old, and
e2nas/gdas for both. Bars (issue 21): e2nas and gdas each ≤ 0.75× their old time, e2nas/gdas
still ≤ 2.2.

How: two persistent worker processes, one per revision, driven round-robin by this process over
pipes (JSON lines), rather than both package versions in one interpreter. The package imports
itself absolutely (`from e2nas.… import …`), so a copy loaded under another name would resolve
its own imports to whichever `e2nas` sys.modules holds, and swapping sys.modules entries call by
call would have to cover every submodule (and the classes other modules captured at import):
fragile. Each worker is this same script run with `--worker` under a PYTHONPATH that holds only
its revision's `src` (REV's is `git archive REV src` unpacked into a temporary directory, today's
is this checkout's `src/`); it checks which `e2nas` it imported, builds its supernet, methods and
inputs once (same seeds), and times the steps it is asked for; only one worker computes at a
time, the other waits on its pipe. The top-level imports of this script are torch and the
standard library only, and `import_api` finds the pieces in either package layout (today's, and
the one before the space redesign 0d54769, e.g. d14453c), so the one script drives both. The
latent part is timed on today's code only (REV's E2NAS may not have the hooks `LatentPart` uses).

Needs only torch and torch-geometric (no MLflow). Appends a dated entry to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from results_file import append_result  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

METHOD_ORDER = ("e2nas", "gdas", "darts", "rsps")
REPO = Path(__file__).resolve().parents[1]
BAR_NEW_OVER_OLD = {"e2nas": 0.75, "gdas": 0.75}  # issue 21, against the code before the box-sum pool (d14453c)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--C", type=int, default=16, help="supernet channels (paper: 16)")
    p.add_argument("--N", type=int, default=5, help="cells per stage (paper: 5)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image", type=int, default=32, help="image side")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=6, help="round-robin rounds over the methods")
    p.add_argument("--steps", type=int, default=2, help="timed steps per method per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per method first")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    p.add_argument("--baseline", metavar="REV", default=None,
                   help="also time git revision REV's code, in the same run (see the module docstring)")
    p.add_argument("--split-edge", type=int, default=None, metavar="E",
                   help="also step every method on a few-shot supernet split on edge E (issue 27), in the same rounds")
    p.add_argument("--e2nas-options", nargs="+", default=[], metavar="EST/PATHS",
                   help="also time E2NAS with search.estimator EST and search.weight_paths PATHS (e.g. swap/frozen)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a --baseline worker process
    return p.parse_args(argv)


def import_api() -> SimpleNamespace:
    """What the benchmark needs from the `e2nas` package on sys.path, in today's layout or the one
    before the space redesign (0d54769: `e2nas.supernet.nb201`, `e2nas.search.common`)."""
    from e2nas.search import Harness, SearchConfig
    from e2nas.search.baselines import DARTS, GDAS, RSPS
    from e2nas.search.e2nas import E2NAS
    from e2nas.spaces import nb201

    try:
        from e2nas.spaces.nb201.supernet import SuperNet
    except ImportError:  # before 0d54769
        from e2nas.supernet.nb201 import SuperNet
    if hasattr(nb201, "SPACE"):
        sample_cells = nb201.SPACE.sample
    else:  # before 0d54769
        from e2nas.search.common import random_cells as sample_cells
    return SimpleNamespace(Harness=Harness, SearchConfig=SearchConfig, DARTS=DARTS, GDAS=GDAS, RSPS=RSPS,
                           E2NAS=E2NAS, nb201=nb201, SuperNet=SuperNet, sample_cells=sample_cells)


def build_decoder(device) -> tuple[nn.Module, int, str]:
    """The project's VGAE at its default config (untrained weights cost the same as trained ones)."""
    from e2nas.graphs import build_graph_set
    from e2nas.spaces import nb201
    from e2nas.vgae import GraphVAE, VGAEConfig

    cfg = VGAEConfig()
    num_features = build_graph_set("nb201", torch.zeros(1, nb201.NUM_EDGES, dtype=torch.long)).num_features
    vae = GraphVAE(num_features, nb201.CHOICE_SIZES, cfg).to(device).eval()
    return vae, cfg.latent_dim, f"GraphVAE(VGAEConfig()) d={cfg.latent_dim} hidden={cfg.hidden_dim}x{cfg.decoder_layers}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latent_part_class(E2NAS: type) -> type:
    """`LatentPart` over the package's E2NAS (a class statement here would import e2nas at the top)."""

    class LatentPart(E2NAS):
        """E2NAS's latent part of a step alone: its `step` without the supernet.

        Sample, decode (with μ's reference decode), novelty, manifold term, the normalised
        combination, Adam, σ's clamp and the archive all run as in a real step; the supernet's
        validation loss is replaced by a surrogate on the straight-through weights that takes the
        same route back through the decoder, and the weight half is skipped.
        """

        def validation_loss(self, x, y, cell, weights):
            return (weights * torch.linspace(0, 1, weights.shape[-1], device=weights.device)).sum()

        def weight_step(self, x, y, prev, cur, probe):
            pass

    return LatentPart


def accepts(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


class Bench:
    """One package version's supernet, methods, inputs and fixed cells; `time` steps one method."""

    def __init__(self, args, device: torch.device, cells: list | None = None, latent: bool = True):
        api = import_api()
        self.args, self.device = args, device
        torch.manual_seed(args.seed)
        net = api.SuperNet(args.C, args.N, args.classes, args.channels).to(device)
        g = torch.Generator().manual_seed(args.seed)
        shape = (args.batch, args.channels, args.image, args.image)
        self.xw, self.xa = (torch.randn(shape, generator=g).to(device) for _ in range(2))
        self.yw, self.ya = (torch.randint(args.classes, (args.batch,), generator=g).to(device) for _ in range(2))
        paper_step = {k: v for k, v in (("estimator", "straight-through"), ("weight_paths", "sampled"))
                      if k in inspect.signature(api.SearchConfig).parameters}  # older code: the paper's step only
        cfg = api.SearchConfig(epochs=1, batch_size=args.batch, archive_size=50, **paper_step)

        decoder, dim, self.decoder_name = build_decoder(device)
        e2nas_kwargs = {}
        if accepts(api.E2NAS.__init__, "encodings"):
            # The manifold term's KDE runs over every NB201 cell's encoding: 15,625 points, as in a search.
            encodings = torch.randn(api.nb201.NUM_ARCHS, dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
            e2nas_kwargs = {"encodings": encodings, "sigma_max": 0.3}
        mu0 = torch.randn(dim, generator=torch.Generator().manual_seed(args.seed))
        space = {"space": "nb201"} if accepts(api.Harness.__init__, "space") else {}

        def harness():  # one supernet, one optimiser per method
            return api.Harness(net, cfg, device, args.seed, self.xa, self.ya, **space)

        self.methods = {}
        for name in METHOD_ORDER:
            if name == "e2nas":
                self.methods[name] = api.E2NAS(harness(), decoder, mu0, **e2nas_kwargs)
            else:
                self.methods[name] = {"gdas": api.GDAS, "darts": api.DARTS, "rsps": api.RSPS}[name](harness())
            self.methods[name].start_epoch(0, 2)
        # The batches in the layout the search loop feeds (channels_last on a CPU since issue 21; older code: none).
        layout = getattr(self.methods["gdas"].harness, "layout", torch.contiguous_format)
        self.xw, self.xa = (x.contiguous(memory_format=layout) for x in (self.xw, self.xa))
        e2nas = self.methods["e2nas"]
        if not e2nas.archive.full:  # older E2NAS starts empty: a full archive, as in every step after the first K
            for _ in range(cfg.archive_size):
                e2nas.archive.append(e2nas.mu.detach() + torch.randn(dim, device=device))
        if getattr(args, "split_edge", None) is not None:  # the same methods on a few-shot supernet (issue 27)
            from e2nas.spaces.nb201.supernet import FewShotSuperNet

            split = FewShotSuperNet(args.C, args.N, args.classes, args.channels, args.split_edge).to(device)
            for sub in split.subnets:
                sub.load_state_dict(net.state_dict())

            def split_harness():
                return api.Harness(split, cfg, device, args.seed, self.xa, self.ya, **space)

            for name in METHOD_ORDER:
                if name == "e2nas":
                    method = api.E2NAS(split_harness(), decoder, mu0, **e2nas_kwargs)
                    method.archive = e2nas.archive
                else:
                    method = {"gdas": api.GDAS, "darts": api.DARTS, "rsps": api.RSPS}[name](split_harness())
                method.start_epoch(0, 2)
                self.methods[f"{name}-split"] = method
        for option in getattr(args, "e2nas_options", None) or []:  # the same E2NAS under other search options (issue 31)
            estimator, paths = option.split("/")
            option_cfg = api.SearchConfig(epochs=1, batch_size=args.batch, archive_size=50, estimator=estimator,
                                          weight_paths=paths)
            method = api.E2NAS(api.Harness(net, option_cfg, device, args.seed, self.xa, self.ya, **space), decoder, mu0,
                               **e2nas_kwargs)
            method.archive = e2nas.archive
            method.start_epoch(0, 2)
            self.methods[f"e2nas {option}"] = method
        self.latent = None
        if latent:
            self.latent = latent_part_class(api.E2NAS)(harness(), decoder, mu0, **e2nas_kwargs)
            self.latent.start_epoch(0, 2)

        total = args.warmup + args.rounds * args.steps
        if cells is None:
            cells = api.sample_cells(total, torch.Generator().manual_seed(args.seed + 1))
        self.cells = [tuple(int(a) for a in c) for c in cells]

    def warmup(self) -> None:
        """Untimed steps (allocator, cuDNN autotuning)."""
        for method in self.methods.values():
            for i in range(self.args.warmup):
                method.step(self.xw, self.yw, self.xa, self.ya, cell=self.cells[i])

    def time(self, name: str, start: int, steps: int) -> list[float]:
        """Seconds of each of `steps` steps of method `name` ("latent": E2NAS's latent part) on cells[start:]."""
        method = self.latent if name == "latent" else self.methods[name]
        times = []
        for s in range(steps):
            cell = self.cells[start + s]
            sync(self.device)
            t0 = time.perf_counter()
            method.step(self.xw, self.yw, self.xa, self.ya, cell=cell)
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return times


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.baseline:
        return main_baseline(args, device)
    bench = Bench(args, device)
    order = [*METHOD_ORDER, *(f"{m}-split" for m in METHOD_ORDER if f"{m}-split" in bench.methods),
             *(f"e2nas {o}" for o in args.e2nas_options)]
    times = {name: [] for name in (*order, "latent")}
    bench.warmup()
    for r in range(args.rounds):
        start = args.warmup + r * args.steps
        for name in order:
            times[name] += bench.time(name, start, args.steps)
            if name == "e2nas":  # its latent part alone, right after its full steps
                times["latent"] += bench.time("latent", start, args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {1e3 * t[-1]:.0f} ms" for n, t in times.items()), flush=True)

    summary = summarise(times, args, bench.decoder_name, torch.get_num_threads())
    text = report(summary, device)
    print(text)
    if not args.no_record:
        append_result(text)
    return summary


def summarise(times: dict[str, list[float]], args, decoder_name: str, threads: int) -> dict:
    return {
        "ms": {name: 1e3 * statistics.median(t) for name, t in times.items()},
        # Ratios paired within each round (same cells, same moment of a shared machine's load),
        # then the median over rounds: steadier than a ratio of medians.
        "e2nas_over_gdas": paired_ratio(times, "e2nas", "gdas", args.steps),
        "e2nas_over_darts": paired_ratio(times, "e2nas", "darts", args.steps),
        "latent_share": paired_ratio(times, "latent", "e2nas", args.steps),
        "split_over_one_shot": {m: paired_ratio(times, f"{m}-split", m, args.steps) for m in METHOD_ORDER if f"{m}-split" in times},
        "options_over_paper": {o: paired_ratio(times, f"e2nas {o}", "e2nas", args.steps) for o in args.e2nas_options},
        "decoder": decoder_name,
        "args": vars(args),
        "threads": threads,
    }


def paired_ratio(times: dict[str, list[float]], num: str, den: str, steps: int) -> float:
    """Median over rounds of (num's total time in the round) / (den's total time in the round)."""
    return paired(times[num], times[den], steps)


def paired(num: list[float], den: list[float], steps: int) -> float:
    """Median over rounds of sum(num's steps in the round) / sum(den's steps in the round)."""
    rounds = len(num) // steps
    chunk = lambda t, r: sum(t[r * steps : (r + 1) * steps])  # noqa: E731
    return statistics.median(chunk(num, r) / chunk(den, r) for r in range(rounds))


def report(s: dict, device: torch.device) -> str:
    a = s["args"]
    ok = lambda cond: "pass" if cond else "FAIL"  # noqa: E731
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"## search_step — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"machine {platform.node()} ({name}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{s['threads']} torch threads, device {device}; supernet C={a['C']} N={a['N']}, batch {a['batch']}, "
        f"{a['channels']}x{a['image']}x{a['image']}, {a['classes']} classes; decoder {s['decoder']}; "
        f"median of {a['rounds'] * a['steps']} steps per method ({a['rounds']} round-robin rounds x {a['steps']})",
        "",
        "| method | ms/step (median) | × gdas (ratio of medians) |",
        "| --- | ---: | ---: |",
    ]
    for m in METHOD_ORDER:
        lines.append(f"| {m} | {s['ms'][m]:.1f} | {s['ms'][m] / s['ms']['gdas']:.2f} |")
    lines += [
        f"| e2nas latent part (decoder + novelty + manifold + archive) | {s['ms']['latent']:.2f} | |",
        "",
        "Paired per round (median over rounds):",
        f"- e2nas / gdas = {s['e2nas_over_gdas']:.2f} (bar ≤ 2.2: {ok(s['e2nas_over_gdas'] <= 2.2)})",
        f"- e2nas / darts = {s['e2nas_over_darts']:.2f} (bar ≤ 0.6: {ok(s['e2nas_over_darts'] <= 0.6)})",
        f"- latent part / e2nas step = {100 * s['latent_share']:.2f}% (bar ≤ 10%: {ok(s['latent_share'] <= 0.10)})",
        "",
    ]
    if s.get("options_over_paper"):
        lines += ["E2NAS under other search options (estimator/weight_paths), same cells, same rounds, paired to the "
                  "paper's step (straight-through/sampled):", "",
                  *(f"- e2nas {o}: {s['ms'][f'e2nas {o}']:.1f} ms/step, {r:.2f}× the paper's step"
                    for o, r in s["options_over_paper"].items()), ""]
    if s.get("split_over_one_shot"):
        lines += [f"On a few-shot supernet split on edge {a['split_edge']} (5 sub-supernets), same cells, same rounds "
                  f"(paired split / one-shot, median over rounds):", ""]
        for m, r in s["split_over_one_shot"].items():
            bar = "" if m == "darts" else f" (bar ≤ 1.10: {ok(r <= 1.10)})"
            lines.append(f"- {m}: {s['ms'][m + '-split']:.1f} ms/step, {r:.2f}× one-shot{bar}")
        lines.append("")
    if "baseline" in s:
        lines += baseline_lines(s["baseline"])
    return "\n".join(lines)


# ------------------------------------------------------------------ --baseline REV: two worker processes


def baseline_lines(b: dict) -> list[str]:
    ok = lambda cond: "pass" if cond else "FAIL"  # noqa: E731
    lines = [
        f"Against revision {b['rev']} ({b['sha'][:12]}, its `src/` from `git archive`), in the same run: one worker "
        f"process per revision, each method stepped on both in every round (order alternating), same cells and seeds; "
        f"the table above is today's code ({b['new_src']}).",
        "",
        "| method | old ms/step (median) | new ms/step (median) | new / old (paired per round, median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in METHOD_ORDER:
        bar = BAR_NEW_OVER_OLD.get(m)
        verdict = f" (bar ≤ {bar}: {ok(b['new_over_old'][m] <= bar)})" if bar is not None else ""
        lines.append(f"| {m} | {b['old_ms'][m]:.1f} | {b['new_ms'][m]:.1f} | {b['new_over_old'][m]:.2f}{verdict} |")
    lines += [
        "",
        f"- e2nas / gdas (paired): old {b['old_e2nas_over_gdas']:.2f}, new {b['new_e2nas_over_gdas']:.2f} "
        f"(bar ≤ 2.2: {ok(b['new_e2nas_over_gdas'] <= 2.2)})",
        "",
    ]
    return lines


def resolve_revision(rev: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"--baseline {rev}: not a commit of {REPO} ({out.stderr.strip()})")
    return out.stdout.strip()


def export_src(sha: str, dest: Path) -> Path:
    """`git archive sha src` unpacked under dest; the path of its src/."""
    tar = subprocess.run(["git", "archive", "--format=tar", sha, "src"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, filter="data")
        else:  # Python < 3.12: the archive is our own repository's
            archive.extractall(dest)
    if not (dest / "src" / "e2nas" / "__init__.py").is_file():
        raise SystemExit(f"--baseline: revision {sha[:12]} has no src/e2nas package")
    return dest / "src"


class Worker:
    """A `--worker` process of this script over the e2nas package in `src`, answering JSON lines."""

    def __init__(self, label: str, src: Path, args):
        self.label, self.src = label, src.resolve()
        env = dict(os.environ, PYTHONPATH=str(self.src))  # only this revision's package, not the caller's path
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.args = args

    def call(self, cmd: str, **kw) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.label} worker ({self.src}) exited (code {self.proc.wait()}); see its stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.label} worker ({self.src}) failed on {cmd!r}:\n{reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("exit")
            except (RuntimeError, OSError):
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def worker_main(args) -> dict:
    """Serve a parent's requests: setup, warmup, time, exit (one JSON line each way).

    Replies go to the original stdout; anything else printing (the package, warnings) goes to
    stderr, so that the pipe carries only replies."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    bench = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "setup":
                wargs = argparse.Namespace(**msg["args"])
                if wargs.threads:
                    torch.set_num_threads(wargs.threads)
                import e2nas

                package = Path(e2nas.__file__).resolve().parent
                if package.parent != Path(msg["src"]).resolve():
                    raise RuntimeError(f"imported e2nas from {package}, expected {msg['src']}")
                bench = Bench(wargs, torch.device(wargs.device), msg.get("cells"), latent=msg["latent"])
                reply = {"cells": [list(c) for c in bench.cells], "decoder": bench.decoder_name,
                         "threads": torch.get_num_threads(), "torch": torch.__version__, "package": str(package)}
            elif msg["cmd"] == "warmup":
                bench.warmup()
                reply = {}
            elif msg["cmd"] == "time":
                reply = {"times": bench.time(msg["name"], msg["start"], msg["steps"])}
            elif msg["cmd"] == "exit":
                replies.write("{}\n")
                break
            else:
                raise ValueError(f"unknown command {msg['cmd']!r}")
        except Exception:
            reply = {"error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
    return {}


def main_baseline(args, device: torch.device) -> dict:
    """Today's code and revision args.baseline's, interleaved in one run (see the module docstring)."""
    sha = resolve_revision(args.baseline)
    with tempfile.TemporaryDirectory(prefix=f"search_step-{sha[:8]}-") as tmp:
        old_src = export_src(sha, Path(tmp))
        workers = {"old": Worker("old", old_src, args), "new": Worker("new", REPO / "src", args)}
        try:
            sent = {k: v for k, v in vars(args).items() if k not in ("baseline", "worker")}
            sent.update(baseline=None, worker=False)
            new = workers["new"].call("setup", args=sent, src=str(workers["new"].src), cells=None, latent=True)
            # REV gets today's cells, whatever its own sampler would draw.
            workers["old"].call("setup", args=sent, src=str(workers["old"].src), cells=new["cells"], latent=False)
            for w in workers.values():
                w.call("warmup")
            times = {"old": {m: [] for m in METHOD_ORDER}, "new": {m: [] for m in (*METHOD_ORDER, "latent")}}
            for r in range(args.rounds):
                start = args.warmup + r * args.steps
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for name in METHOD_ORDER:
                    for which in order:
                        times[which][name] += workers[which].call("time", name=name, start=start, steps=args.steps)["times"]
                    if name == "e2nas":  # its latent part alone, right after its full steps (today's code)
                        times["new"]["latent"] += workers["new"].call("time", name="latent", start=start, steps=args.steps)["times"]
                print(f"round {r + 1}/{args.rounds}: "
                      + ", ".join(f"{m} {1e3 * times['old'][m][-1]:.0f} → {1e3 * times['new'][m][-1]:.0f} ms" for m in METHOD_ORDER)
                      + f", latent {1e3 * times['new']['latent'][-1]:.0f} ms", flush=True)
        finally:
            for w in workers.values():
                w.close()

    summary = summarise(times["new"], args, new["decoder"], new["threads"])
    old_ms = {m: 1e3 * statistics.median(t) for m, t in times["old"].items()}
    summary["baseline"] = {
        "rev": args.baseline,
        "sha": sha,
        "new_src": str(REPO / "src"),
        "old_ms": old_ms,
        "new_ms": {m: summary["ms"][m] for m in METHOD_ORDER},
        "new_over_old": {m: paired(times["new"][m], times["old"][m], args.steps) for m in METHOD_ORDER},
        "old_e2nas_over_gdas": paired(times["old"]["e2nas"], times["old"]["gdas"], args.steps),
        "new_e2nas_over_gdas": summary["e2nas_over_gdas"],
        "times": times,
    }
    text = report(summary, device)
    print(text)
    if not args.no_record:
        append_result(text)
    return summary


if __name__ == "__main__":
    main()
