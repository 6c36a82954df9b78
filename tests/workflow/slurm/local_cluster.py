"""A real single-node Slurm for tests, from Debian's packages, torn down completely afterwards.

munged, MariaDB, slurmdbd, slurmctld and slurmd run as root from one temporary folder (keys,
sockets, state, logs), every one on 127.0.0.1 and a free port (nothing binds every interface),
without cgroups (`proctrack/linuxproc`, `task/none`: see slurm.conf.in). Accounting through
slurmdbd is part of it because the Snakemake executor plugin polls job states with `sacct`.
Clients (sbatch, sacct, snakemake) reach it through `SLURM_CONF`; nothing under /etc is read or
written.

Needs root and the packages in PACKAGES. `stop()` ends every process the cluster started,
running jobs included, and is safe to call after a failed `start()`.

By hand: `python tests/slurm/local_cluster.py [FOLDER]` starts it (in FOLDER, kept, or in a
fresh folder under /tmp, removed), prints what to export, and tears it down on Ctrl-C.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
PACKAGES = ("munge", "mariadb-server", "slurmctld", "slurmd", "slurmdbd", "slurm-client")
PROGRAMS = (
    "munged", "mungekey", "mariadb-install-db", "mariadbd", "mariadb", "mariadb-admin",
    "slurmdbd", "slurmctld", "slurmd", "slurmstepd", "sbatch", "srun", "sacct", "sacctmgr",
    "squeue", "scancel", "scontrol", "sinfo",
)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Daemons live in /usr/sbin, which a non-login PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])


class ClusterError(RuntimeError):
    """The cluster did not come up; the message names the step and quotes its log."""


def which(program: str) -> str | None:
    return shutil.which(program, path=SEARCH_PATH)


def unavailable_reason() -> str | None:
    """Why a local Slurm cannot start here (not root, packages missing), or None."""
    if os.geteuid() != 0:
        return "a local Slurm needs root: its daemons run as root (SlurmUser=root) and jobs run as the submitting user"
    missing = [p for p in PROGRAMS if which(p) is None]
    if missing:
        return f"Slurm packages missing ({', '.join(missing)}): apt-get install {' '.join(PACKAGES)}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """One single-node cluster under `root`; `with LocalSlurm(folder) as cluster:` starts and stops it."""

    def __init__(self, root: str | os.PathLike | None = None, cpus: int = 8, cluster: str = "e2nas-test",
                 account: str = "e2nas", partition: str = "debug"):
        # munged wants every folder above its socket open to all (pytest's tmp folders are not):
        # by default a fresh folder in the system temp dir, removed again by stop().
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="e2nas-slurm-") if root is None else root).resolve()
        self.cpus, self.cluster, self.account, self.partition = cpus, cluster, account, partition
        self.hostname = socket.gethostname().split(".")[0]
        self.conf = self.root / "etc" / "slurm.conf"
        self.bin = self.root / "bin"
        path = os.pathsep.join([str(self.bin), SEARCH_PATH])
        self.env = {**os.environ, "PATH": path, "SLURM_CONF": str(self.conf)}
        self.daemons: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    # ------------------------------------------------------------------ start

    def start(self) -> LocalSlurm:
        try:
            self._write_configs()
            self._start_munge()
            self._start_mariadb()
            self._start_slurmdbd()
            self._add_accounting()
            self._start("slurmctld", [which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
            self._wait("slurmctld", lambda: self.run("scontrol", "ping").stdout.count("UP") > 0)
            self._start("slurmd", [which("slurmd"), "-D", "-f", str(self.conf)])
            self._wait("slurmd", lambda: self.run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _write_configs(self) -> None:
        for sub in ("etc", "bin", "munge", "mysql", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses a socket folder others cannot enter; the key stays readable by root only.
        for folder in (self.root, self.root / "munge"):
            folder.chmod(0o755)
        self.ports = {name: free_port() for name in ("ctld_port", "slurmd_port", "dbd_port", "db_port")}
        self.db_password = secrets.token_hex(12)
        values = {
            **self.ports, "root": str(self.root), "cluster": self.cluster, "hostname": self.hostname,
            "cpus": self.cpus, "memory_mb": psutil.virtual_memory().total // 2**20,
            "partition": self.partition, "db_password": self.db_password,
        }
        for name in ("slurm.conf", "slurmdbd.conf"):
            text = string.Template((HERE / f"{name}.in").read_text()).substitute(values)
            path = self.root / "etc" / name
            path.write_text(text)
            path.chmod(0o600 if name == "slurmdbd.conf" else 0o644)  # slurmdbd insists on 600
        self._write_srun_shim()

    def _write_srun_shim(self) -> None:
        """`srun` that finds this cluster's config: the jobstep plugin (0.6.1) drops SLURM_CONF from
        the environment of the `srun` it starts inside each job, which a cluster whose config is
        at the default /etc/slurm/slurm.conf never notices, but this one (in a temporary folder) does."""
        self.bin.mkdir(parents=True, exist_ok=True)
        shim = self.bin / "srun"
        shim.write_text(f"#!/bin/sh\nSLURM_CONF={shlex.quote(str(self.conf))} exec {shlex.quote(which('srun'))} \"$@\"\n")
        shim.chmod(0o755)

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        self._check("mungekey", [which("mungekey"), "--create", "--keyfile", str(munge / "munge.key")])
        self._start("munged", [
            which("munged"), "--foreground", f"--socket={munge / 'munge.sock'}", f"--key-file={munge / 'munge.key'}",
            f"--log-file={munge / 'munged.log'}", f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
        ])
        self._wait("munged", lambda: (munge / "munge.sock").exists())

    def _start_mariadb(self) -> None:
        mysql = self.root / "mysql"
        self._check("mariadb-install-db", [
            which("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={mysql / 'data'}",
            "--skip-test-db", "--auth-root-authentication-method=socket",
        ])
        self._start("mariadbd", [
            which("mariadbd"), "--no-defaults", "--user=root", f"--datadir={mysql / 'data'}",
            f"--socket={mysql / 'mysql.sock'}", f"--pid-file={mysql / 'mysql.pid'}",
            f"--port={self.ports['db_port']}", "--bind-address=127.0.0.1", f"--log-error={self.root / 'log' / 'mariadb.log'}",
            "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-lock-wait-timeout=900",
        ])
        self._wait("mariadbd", lambda: self._sql("SELECT 1").returncode == 0)
        grants = "".join(
            f"CREATE USER 'slurm'@'{host}' IDENTIFIED BY '{self.db_password}'; "
            f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}'; "
            for host in ("127.0.0.1", "localhost")
        )
        out = self._sql("CREATE DATABASE slurm_acct_db; " + grants)
        if out.returncode != 0:
            raise ClusterError(f"MariaDB setup failed: {out.stderr}")

    def _sql(self, statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [which("mariadb"), "--no-defaults", f"--socket={self.root / 'mysql' / 'mysql.sock'}", "-u", "root", "-e", statement],
            capture_output=True, text=True, timeout=30,
        )

    def _start_slurmdbd(self) -> None:
        self._start("slurmdbd", [which("slurmdbd"), "-D"])
        self._wait("slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster").returncode == 0)

    def _add_accounting(self) -> None:
        """The cluster, one account and root as its user: sacct then reports every job."""
        for args in (
            ("add", "cluster", self.cluster),
            ("add", "account", self.account, f"Cluster={self.cluster}", "Description=tests", "Organization=tests"),
            ("add", "user", "root", f"Account={self.account}", f"DefaultAccount={self.account}", f"Cluster={self.cluster}"),
        ):
            out = self.run("sacctmgr", "-i", *args)
            if out.returncode != 0:
                raise ClusterError(f"sacctmgr {' '.join(args)} failed: {out.stderr}")

    def _start(self, name: str, cmd: list) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self._logs.append(log)
        self.daemons[name] = subprocess.Popen(
            [str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _check(self, name: str, cmd: list) -> None:
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=self.env, timeout=120)
        if out.returncode != 0:
            raise ClusterError(f"{name} failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def _wait(self, name: str, ready, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.daemons.get(name)
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} not ready after {timeout:.0f} s:\n{self.log_tail(name)}")
            time.sleep(0.5)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        text = ""
        for path in (self.root / "log" / f"{name}.out", self.root / "log" / f"{name}.log", self.root / "munge" / "munged.log"):
            if path.exists() and (name in path.name):
                text += f"--- {path}\n{path.read_text(errors='replace')[-chars:]}\n"
        return text

    # ------------------------------------------------------------------ use

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run([which(cmd[0]) or cmd[0], *cmd[1:]], capture_output=True, text=True, env=self.env, timeout=timeout)

    def sacct(self, *fields: str) -> list[dict[str, str]]:
        """Every job of this cluster (allocations only, no steps) with the given fields."""
        out = self.run("sacct", "-X", "-a", "--parsable2", "--noheader", "--starttime", "now-1days",
                       f"--format={','.join(fields)}")
        if out.returncode != 0:
            raise ClusterError(f"sacct failed: {out.stderr}")
        return [dict(zip(fields, line.split("|"))) for line in out.stdout.splitlines() if line]

    def listening(self) -> dict[str, list[str]]:
        """The TCP addresses each daemon listens on."""
        found = {}
        for name, proc in self.daemons.items():
            try:
                conns = psutil.Process(proc.pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            found[name] = sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN})
        return found

    def wildcard_or_outside(self) -> dict[str, list[str]]:
        """Listening addresses that are neither loopback nor this host name's own address (should be none)."""
        own = set()
        try:
            own = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
        bad = {}
        for name, addrs in self.listening().items():
            wrong = [a for a in addrs if not ipaddress.ip_address(a).is_loopback and a not in own]
            if wrong:
                bad[name] = wrong
        return bad

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Cancel every job, stop every daemon (SIGTERM, then SIGKILL), then any process left with our SLURM_CONF."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--user=root", timeout=30)
                deadline = time.monotonic() + 30
                while self.run("squeue", "-h", timeout=30).stdout.strip() and time.monotonic() < deadline:
                    time.sleep(1)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            proc = self.daemons.get(name)
            if proc is not None:
                _terminate(proc)
        self._sweep()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _sweep(self) -> None:
        """Kill what the cluster started beyond its daemons (slurmstepd, job processes): found by our SLURM_CONF."""
        marker = f"SLURM_CONF={self.conf}".encode()
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            try:
                environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                try:
                    proc.kill()
                except psutil.Error:
                    pass

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def die_with_parent() -> None:
    """In the daemon, before exec: SIGTERM when the process that started it dies (a killed
    pytest never runs stop(); its daemons must not outlive it)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _terminate(proc: subprocess.Popen, grace: float = 20) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def main(argv: list[str]) -> int:
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    with LocalSlurm(argv[0] if argv else None) as cluster:
        print(f"Slurm is up (cluster {cluster.cluster}, account {cluster.account}, {cluster.cpus} CPUs); in another shell:")
        print(f"  export SLURM_CONF={cluster.conf}")
        print("Ctrl-C stops every daemon and job.")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
