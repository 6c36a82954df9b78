"""`e2nas`: the common jobs without remembering Snakemake's or the table tools' flags.

    e2nas run [--profile NAME] [--cores N] [SNAKEMAKE_ARGS ...]   # the pipeline (default profile: config/config.yaml)
    e2nas check [--profile NAME | --configfile FILE]              # every check a run makes before its first job
    e2nas ui [--port 5000]                                        # the MLflow UI on results/mlflow.db (127.0.0.1 only)
    e2nas clean RUN [--yes]                                       # remove one run: results/RUN, its MLflow experiment, its parameter files
    e2nas table convert PATH --out CSV                            # NB201 table from the official benchmark files
    e2nas table build [--cells 200] [--worker K/N]                # grow the Fashion-MNIST ground-truth table
    e2nas table extend [--top 50]                                 # seeds 2 and 3 for its best cells
    e2nas table summary                                           # its size, noise ceiling, agreement with NB201

Run from the checkout (the folder holding the Snakefile). Each subcommand runs the tool it names
(snakemake, mlflow, the table modules) with the arguments it is given after its own: `e2nas run
--profile smoke -n` hands `-n` to Snakemake.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

# Options of `mlflow ui` that would serve it beyond this machine: MLflow has no login, so `e2nas ui`
# serves on 127.0.0.1 only (run `mlflow ui` yourself, knowingly, for anything else).
UI_BINDING_OPTIONS = ("-h", "--host", "--gunicorn-opts", "--uvicorn-opts", "--waitress-opts", "--disable-security-middleware",
                      "--allowed-hosts", "--cors-allowed-origins")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _checkout() -> Path:
    """The checkout this package lives in (src/e2nas/cli.py -> the folder with the Snakefile)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "Snakefile").is_file():
        sys.exit(f"e2nas: no Snakefile at {root}: run from a checkout of the project (pip install -e .)")
    return root


def _profile(root: Path, name: str | None, configfile: str | None) -> list[str]:
    """The --configfile arguments of a profile name (config/NAME.yaml) or a file."""
    if configfile:
        return ["--configfile", configfile]
    if name in (None, "default", "config"):
        return []
    path = root / "config" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "config").glob("*.yaml"))
        sys.exit(f"e2nas: no profile {name!r} (config/{name}.yaml); profiles: {', '.join(known)}")
    return ["--configfile", str(path)]


def _config(root: Path, files: list[str]) -> dict:
    """The default config merged key by key with the given files, each read under the config check's limits
    (one line naming the file and line for a file it cannot take)."""
    from e2nas.config_check import ConfigError, load_config_file, merge

    try:
        config = load_config_file(root / "config" / "config.yaml")
        for f in files:
            config = merge(config, load_config_file(f))
    except ConfigError as error:
        sys.exit(str(error))
    return config


def _check(root: Path, files: list[str], store: bool = False) -> dict:
    """What the Snakefile checks before planning (the config, every space's references) and, with `store`,
    what its onstart checks before the first job (the run's lock, the tracking store). Exits with one
    message at the first that fails; returns the merged config."""
    from e2nas.config_check import ConfigError, check

    config = _config(root, files)
    try:
        check(config, root / "workflow" / "schemas" / "config.schema.yaml", files)
    except ConfigError as error:
        sys.exit(str(error))
    if store:
        from e2nas import run_control
        from e2nas.tracking import TrackingError, init_store

        lock = run_control.RunLock(root / "results" / config["run"])
        if lock.path.exists() and lock.held_elsewhere():
            sys.exit(f"e2nas: run {config['run']!r} is in use by another pipeline ({lock.holder()}); "
                     "a run now would stop at its start")
        try:
            uri = init_store(root / "results")
        except TrackingError as error:
            sys.exit(str(error))
        print(f"tracking store OK ({uri or 'MLflow not installed: no tracking'})")
    return config


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _run_snakemake(cmd: list[str], root: Path) -> int:
    """Snakemake as a child in its own process group; SIGTERM, SIGINT and SIGHUP to `e2nas run` are passed on
    to it (once: Ctrl-C in a terminal reaches only this process) and it is waited for, so that it stops its
    jobs cleanly and is never left running without its parent. A stop on request says so."""
    child = subprocess.Popen(cmd, cwd=root, env=_env(root), process_group=0)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        if child.poll() is None and signum == signal.SIGINT:  # Ctrl-C as a terminal gives it: Snakemake and its jobs
            os.killpg(child.pid, signum)
        elif child.poll() is None:  # SIGTERM: Snakemake's hooks stop the jobs (e2nas.run_control.StopSignals)
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a SIGINT between handlers: still forwarded by `forward`
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        from e2nas.run_control import stopped_note

        if code != 128 + received[0]:  # the Snakefile's onerror says it itself when its jobs had started
            print(f"e2nas: snakemake {stopped_note(received[0])}", file=sys.stderr)
        return 128 + received[0]
    return code


def _parameter_files(workdir: Path, run: str) -> tuple[list[Path], int]:
    """The stage parameter files that no remaining run uses after `run` is removed: those of `run`, and those
    of runs whose results/ folder is gone already (Snakemake writes them again when it plans a job). Returns
    them and how many stay."""
    import yaml

    from e2nas import layout

    remove, kept = [], 0
    for path in sorted((workdir / layout.PARAMETERS_DIR).glob("*.yaml")):
        try:
            experiment = (yaml.safe_load(path.read_text()) or {}).get("tracking", {}).get("experiment")
        except (OSError, yaml.YAMLError, AttributeError):
            kept += 1
            continue
        if experiment == run or (isinstance(experiment, str) and not (workdir / layout.RESULTS / experiment).is_dir()):
            remove.append(path)
        else:
            kept += 1
    return remove, kept


def _size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def clean(run: str, workdir: Path, yes: bool = False, ask=input) -> int:
    """`e2nas clean RUN`: remove results/RUN, mark its MLflow experiment deleted and remove the parameter
    files no remaining run uses; asks first unless `yes`. Refuses what is not a run of `workdir`."""
    import shutil

    from e2nas import layout, run_control
    from e2nas.config_check import RUN_NAME, reserved_run_name

    results = workdir / layout.RESULTS
    if not RUN_NAME.fullmatch(run) or reserved_run_name(run):
        sys.exit(f"e2nas clean: {run!r} is not a run name: a run is a folder results/NAME (letters, digits, '_', '.', '-'), "
                 f"not a path or a file the pipeline keeps in results/ (mlflow.db, mlartifacts, data-cache, ...)")
    folder = results / run
    if folder.is_symlink() or not folder.is_dir():
        runs = sorted(p.name for p in results.iterdir() if p.is_dir() and not p.is_symlink() and not reserved_run_name(p.name)
                      and RUN_NAME.fullmatch(p.name)) if results.is_dir() else []
        sys.exit(f"e2nas clean: there is no run {run!r} in {results} (runs there: {', '.join(runs) or 'none'})")
    lock = run_control.RunLock(folder)
    try:
        lock.acquire("e2nas clean")  # no pipeline of this run starts while it goes
    except run_control.RunLocked as error:
        sys.exit(f"e2nas clean: {error}")
    try:
        from e2nas.tracking import TrackingError, delete_experiment, experiment_runs, tracking_uri

        try:
            runs = experiment_runs(run, results)
        except TrackingError as error:
            sys.exit(f"e2nas clean: {error}")
        params, kept = _parameter_files(workdir, run)
        count, size = _size(folder)
        print(f"e2nas clean {run}:\n  - {folder}: {count:,} files, {size / 1e6:,.1f} MB\n"
              f"  - MLflow experiment {run!r} in {tracking_uri(results)}: "
              + (f"{runs} runs, marked deleted (restore: mlflow experiments restore; purge: mlflow gc)" if runs is not None
                 else "none")
              + f"\n  - {len(params)} parameter files under {workdir / layout.PARAMETERS_DIR} ({kept} other runs' stay)")
        if not yes:
            if not sys.stdin.isatty() and ask is input:
                sys.exit("e2nas clean: not removing anything without a terminal to ask; pass --yes")
            if ask("Remove these? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing removed")
                return 1
        shutil.rmtree(folder)
        if runs is not None:
            delete_experiment(run, results)
        for path in params:
            path.unlink(missing_ok=True)
        print(f"removed run {run!r}")
        return 0
    finally:
        lock.release()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="e2nas", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the pipeline (snakemake); every other argument goes to snakemake"),
                       ("check", "check a config, the run's lock and the tracking store, without running anything")):
        p = sub.add_parser(name, help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=("Every argument e2nas run does not know goes to snakemake as it is, after "
                                   "--cores and --configfile: e.g. `e2nas run --profile smoke -n` (a dry run), "
                                   "`e2nas run --forcerun pretrain_vgae`, `e2nas run --until warmup_supernet`. "
                                   "SIGTERM or Ctrl-C stops Snakemake's jobs cleanly; the same command resumes.")
                           if name == "run" else None)
        p.add_argument("--profile", help="config/NAME.yaml (default: config/config.yaml)")
        p.add_argument("--configfile", help="a config file of your own (merged over config/config.yaml)")
        if name == "run":
            p.add_argument("--cores", default="8")
    ui = sub.add_parser("ui", help="the MLflow UI on this checkout's results/mlflow.db, on 127.0.0.1 only")
    ui.add_argument("--port", default="5000")
    cl = sub.add_parser("clean", help="remove one run: results/RUN, its MLflow experiment, its parameter files",
                        description="Remove results/RUN, mark its MLflow experiment deleted (MLflow's API: mlflow gc purges "
                                    "it, mlflow experiments restore brings it back) and remove the stage parameter files "
                                    "under .snakemake/e2nas-parameters/ that no remaining run uses.")
    cl.add_argument("run", help="the run's name (its folder under results/)")
    cl.add_argument("--yes", "-y", action="store_true", help="do not ask before removing")
    cl.add_argument("--directory", "-d", type=Path, help="the working folder holding results/ (default: the checkout)")
    table = sub.add_parser("table", help="the benchmark tables: convert, build, summary")
    table.add_argument("action", choices=("convert", "build", "extend", "summary"))
    args, rest = parser.parse_known_args(argv)
    root = _checkout()
    if args.command == "clean":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return clean(args.run, args.directory or root, args.yes)
    if args.command in ("run", "check"):
        files = _profile(root, args.profile, args.configfile)
        if args.command == "check":
            if rest:
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            _check(root, files[1:], store=True)
            print("configuration OK")
            return 0
        _check(root, files[1:])
        return _run_snakemake([str(Path(sys.executable).parent / "snakemake"), "--cores", args.cores, *files, *rest], root)
    if args.command == "ui":
        binding = [a for a in rest if a.split("=", 1)[0] in UI_BINDING_OPTIONS or (a.startswith("-h") and not a.startswith("--"))]
        if binding:
            sys.exit(f"e2nas ui: {binding[0]} is not taken: e2nas ui serves on 127.0.0.1 only (MLflow has no login). To serve "
                     "beyond this machine, run mlflow ui or mlflow server yourself, behind a login (README: Run on a cluster)")
        from e2nas.tracking import relocate_artifacts

        relocate_artifacts(root / "results")  # a moved checkout's store still links its old folder
        cmd = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", "sqlite:///results/mlflow.db", *rest,
               "--port", args.port, "--host", "127.0.0.1"]  # last, so that they win
        return subprocess.call(cmd, cwd=root, env=_env(root))
    module = "e2nas.tables.nb201_convert" if args.action == "convert" else "e2nas.tables.fashion_mnist_build"
    cmd = [sys.executable, "-m", module, *([] if args.action == "convert" else [args.action]), *rest]
    return subprocess.call(cmd, cwd=root, env=_env(root))


if __name__ == "__main__":
    sys.exit(main())
