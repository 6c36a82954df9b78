"""`e2nas`: the common jobs without remembering Snakemake's or the table tools' flags.

    e2nas run [--profile NAME] [--cores N] [SNAKEMAKE_ARGS ...]   # the pipeline (default profile: config/config.yaml)
    e2nas check [--profile NAME | --configfile FILE]              # the config check alone, before a long run
    e2nas ui [--port 5000]                                        # the MLflow UI on results/mlflow.db (127.0.0.1)
    e2nas table convert PATH --out CSV                            # NB201 table from the official benchmark files
    e2nas table build [--cells 200] [--worker K/N]                # grow the Fashion-MNIST ground-truth table
    e2nas table summary                                           # its size, noise ceiling, agreement with NB201

Run from the checkout (the folder holding the Snakefile). Each subcommand runs the tool it names
(snakemake, mlflow, the table modules) with the arguments it is given after its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


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


def _check(root: Path, files: list[str]) -> None:
    """The Snakefile's config check, on the default config merged with the given files, naming an empty one."""
    import yaml

    from e2nas.config_check import ConfigError, check

    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    for f in files:
        doc = yaml.safe_load(Path(f).read_text()) if Path(f).is_file() else None
        for key, value in (doc or {}).items() if isinstance(doc, dict) else ():
            config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    try:
        check(config, root / "workflow" / "schemas" / "config.schema.yaml", files)
    except ConfigError as error:
        sys.exit(str(error))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="e2nas", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the pipeline (snakemake)"), ("check", "check a config without running anything")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", help="config/NAME.yaml (default: config/config.yaml)")
        p.add_argument("--configfile", help="a config file of your own (merged over config/config.yaml)")
        if name == "run":
            p.add_argument("--cores", default="8")
    ui = sub.add_parser("ui", help="the MLflow UI on this checkout's results/mlflow.db, on 127.0.0.1")
    ui.add_argument("--port", default="5000")
    table = sub.add_parser("table", help="the benchmark tables: convert, build, summary")
    table.add_argument("action", choices=("convert", "build", "summary"))
    args, rest = parser.parse_known_args(argv)
    root = _checkout()
    if args.command in ("run", "check"):
        files = _profile(root, args.profile, args.configfile)
        _check(root, files[1:])
        if args.command == "check":
            print("configuration OK")
            return 0
        cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", args.cores, *files, *rest]
    elif args.command == "ui":
        from e2nas.tracking import relocate_artifacts

        relocate_artifacts(root / "results")  # a moved checkout's store still links its old folder
        cmd = [str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port", args.port,
               "--backend-store-uri", "sqlite:///results/mlflow.db", *rest]
    else:
        module = "e2nas.tables.nb201_convert" if args.action == "convert" else "e2nas.tables.fashion_mnist_build"
        cmd = [sys.executable, "-m", module, *([] if args.action == "convert" else [args.action]), *rest]
    return subprocess.call(cmd, cwd=root, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])})


if __name__ == "__main__":
    sys.exit(main())
