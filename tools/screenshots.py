"""Screenshots of what users look at: a run's report page and its MLflow experiment page.

Renders `results/{run}/report/report.html` and the MLflow UI's page of experiment {run} (served from
`results/mlflow.db` on a free local port for the moment of the shot) with headless Chromium
(Debian's `chromium`), into PNG files to open and look at.

    python tools/screenshots.py --run default [--out results/default/screenshots]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no headless browser: install Debian's chromium (apt-get install chromium)")


def shoot(url: str, png: Path, size: str = "1400,2400", wait_ms: int = 8000) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile; no background connections on a closed network
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--window-size={size}", f"--virtual-time-budget={wait_ms}",
                        f"--screenshot={png}", url], check=True, capture_output=True, timeout=180)
    print(f"{png}  <- {url}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def experiment_id(store: Path, name: str) -> str:
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(f"sqlite:///{store}").get_experiment_by_name(name)
    if exp is None:
        sys.exit(f"no MLflow experiment {name!r} in {store}")
    return exp.experiment_id


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="default", help="the profile's run name (results/{run}/)")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: results/{run}/screenshots)")
    parser.add_argument("--widths", type=int, nargs="+", default=[800, 1400], help="window widths of the report's shots")
    parser.add_argument("--height", type=int, default=9000, help="window height of the report's shots (the whole page)")
    parser.add_argument("--no-mlflow", action="store_true", help="the report only")
    args = parser.parse_args(argv)
    out = args.out or args.results / args.run / "screenshots"
    report = args.results / args.run / "report" / "report.html"
    if not report.is_file():
        sys.exit(f"{report} does not exist: run the pipeline's report stage first")
    for width in args.widths:  # nothing may be cut at a narrow or a wide window
        shoot(report.resolve().as_uri(), out / f"report-{width}.png", size=f"{width},{args.height}")
    if args.no_mlflow:
        return
    store = args.results / "mlflow.db"
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{store.resolve()}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=args.results.parent)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        eid = experiment_id(store, args.run)
        shoot(f"http://127.0.0.1:{port}/#/experiments/{eid}/runs", out / "mlflow_experiment.png", size="1600,1000", wait_ms=15000)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
