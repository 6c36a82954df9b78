"""Run one stage notebook with papermill: the rule's shell step (then finish_stage_run.py logs it to MLflow).

Usage: run_notebook.py NOTEBOOK EXECUTED_NOTEBOOK PARAMETERS_FILE

papermill's API, not its CLI, so that the kernel runs over IPC sockets (papermill's default TCP transport
makes every kernel warn that it is unencrypted) and is shut down without the SIGINT jupyter_client sends
first (the kernel logged it as "KeyboardInterrupt caught in kernel" after every job that succeeded). The
executed notebook is written also when a cell fails, with the error marked; the exit status is 1 then.
"""

import os
import sys
import tempfile
from pathlib import Path

import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager


class QuietKernelManager(AsyncKernelManager):
    """IPC sockets in a private folder; at shutdown, no interrupt of a kernel that has finished its cells."""

    transport = "ipc"

    async def _async_interrupt_kernel(self):
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


def main(notebook: str, executed: str, parameters_file: str) -> int:
    parameters = yaml.safe_load(Path(parameters_file).read_text())
    tracking = parameters.get("tracking") or {}
    if tracking:  # the kernel's progress lines name the job (e2nas.progress): `[e2nas seed0 · search] ...`
        from e2nas.tracking import run_name

        os.environ["E2NAS_JOB"] = run_name(tracking["stage"], tracking.get("tags") or {})
    with tempfile.TemporaryDirectory(prefix="e2nas-kernel-") as sockets:
        QuietKernelManager.ip = str(Path(sockets) / "kernel")  # ipc: a path prefix of the socket files
        try:
            papermill.execute_notebook(notebook, executed, parameters=parameters, kernel_name="python3", log_output=True,
                                       progress_bar=False, kernel_manager_class=QuietKernelManager)
        except papermill.PapermillExecutionError as error:
            print(f"{notebook} failed in cell {error.exec_count}: {error.ename}: {error.evalue} "
                  f"(the executed notebook, with the error marked: {executed})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
