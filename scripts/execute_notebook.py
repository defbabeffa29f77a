"""Executes one notebook with Jupyter's nbclient and writes the executed copy, outputs included.

Called by scripts/run-notebooks.ts (not meant to be run by hand):
    python3 execute_notebook.py SOURCE.ipynb OUTPUT.ipynb KERNEL_NAME CELL_TIMEOUT_SECONDS

Prints one line per cell as it runs. On the first failing cell it still writes the executed copy (outputs up to
the failure), prints the failing cell's error (name and message) and source, and exits with status 1.

It never leaves its kernel behind: on SIGINT, SIGTERM or SIGHUP it shuts the kernel's process group down, writes the
executed copy so far and exits with 128 + the signal's number; when its parent (the runner) dies, even by SIGKILL,
Linux sends it SIGTERM (prctl PR_SET_PDEATHSIG), and elsewhere a watchdog thread notices the new parent pid. The
kernel itself (scripts/tslab-kernel.cjs) exits when this process is gone. (nbclient sets SIGINT and SIGTERM handlers
of its own that shut the kernel down asynchronously, which can hang or fail half-way; ours take over again as soon as
nbclient has set them, before the kernel starts.)
"""

import asyncio
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def text_of(output):
    """The printable text of one cell output (stream text, error, or the text/plain of display data)."""
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", [])) or f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get("data", {})
    shown = [m for m in data if m != "text/plain"]
    plain = data.get("text/plain", "")
    return (plain if plain else "") + (f"[{', '.join(shown)}]" if shown else "")


STACK_LINE = re.compile(r"^\s+at ")
ERROR_LINE = re.compile(r"^([A-Za-z_$][\w$.]*(?:Error|Exception)): (.*)$")
NAMED_LINE = re.compile(r"^([A-Za-z_$][\w$.]*): (.*)$")


def error_of(cell):
    """The (name, message) of a failed cell's error.

    From its error output (ename, evalue) when the kernel sends one; tslab instead prints the error on stderr, as
    Node does: a source excerpt, a blank line, "Name: message" and the stack. The message is then the block before
    the stack ("" as name when it is not "Name: message", e.g. a thrown string or a compile error).
    """
    outputs = cell.get("outputs", [])
    for output in outputs:
        if output.get("output_type") == "error":
            return output.get("ename") or "Error", output.get("evalue") or ""
    stderr = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr")
    lines = stderr.rstrip().splitlines()
    while lines and STACK_LINE.match(lines[-1]):
        lines.pop()
    block = "\n".join(lines).split("\n\n")[-1].strip().splitlines()
    # "SomethingError: …" is the error even after other stderr lines; else "Name: …" (a custom name) on the first line.
    for i, line in enumerate(block):
        named = ERROR_LINE.match(line)
        if named:
            return named.group(1), "\n".join([named.group(2)] + block[i + 1 :])
    named = NAMED_LINE.match(block[0]) if block else None
    if named:
        return named.group(1), "\n".join([named.group(2)] + block[1:])
    return "", "\n".join(block)


def describe_error(name, message):
    text = f"{name}: {message}" if name else message
    lines = text.splitlines() or ["(the kernel gave no message)"]
    return "\n".join(lines[:10] + ([f"… ({len(lines) - 10} more lines)"] if len(lines) > 10 else []))


def kernel_process(client):
    """The kernel's Popen (jupyter_client's local provisioner), or None before it starts."""
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    return getattr(provisioner, "process", None)


def stop_kernel(client):
    """Ends the kernel and its process group (jupyter_client starts it in a session of its own): TERM, then KILL."""
    process = kernel_process(client)
    if process is None or process.poll() is not None:
        return
    try:
        group = os.getpgid(process.pid)
        kill = (lambda sig: os.killpg(group, sig)) if group == process.pid else (lambda sig: os.kill(process.pid, sig))
        kill(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            kill(signal.SIGKILL)
            process.wait(timeout=3)
    except (ProcessLookupError, ChildProcessError, subprocess.TimeoutExpired):
        pass
    connection_file = getattr(getattr(client, "km", None), "connection_file", None)
    if connection_file and os.path.exists(connection_file):
        os.remove(connection_file)


def die_with_parent():
    """SIGTERM to this process when its parent dies (Linux); elsewhere a thread watching the parent pid does it."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main():
    source, target, kernel_name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    nb = nbformat.read(source, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    name = source.rsplit("/", 1)[-1].removesuffix(".ipynb")
    started = {}
    failed = {}

    def number_of(cell):
        return code_cells.index(cell) + 1 if cell in code_cells else 0

    def on_cell_start(cell, cell_index, **_):
        started[cell_index] = time.time()

    def on_cell_executed(cell, cell_index, **_):
        seconds = time.time() - started.get(cell_index, time.time())
        print(f"[{name}] cell {number_of(cell)}/{len(code_cells)} done in {seconds:.1f} s", flush=True)
        for output in cell.get("outputs", []):
            text = text_of(output).rstrip()
            if text:
                lines = text.splitlines()
                shown = lines[:12] + ([f"… ({len(lines) - 12} more lines)"] if len(lines) > 12 else [])
                print("    " + "\n    ".join(shown), flush=True)

    def on_cell_error(cell, **_):
        failed["cell"] = cell

    def stop(signum):
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        try:
            try:
                print(f"\n[{name}] stopped by {signal.Signals(signum).name}: shutting the kernel down", file=sys.stderr, flush=True)
            except OSError:
                pass  # no terminal any more: the kernel still has to go
            stop_kernel(client)
            nbformat.write(nb, target)
        finally:
            os._exit(128 + signum)

    class Client(NotebookClient):
        async def async_start_new_kernel(self, **kwargs):
            loop = asyncio.get_running_loop()
            for s in STOP_SIGNALS:
                loop.add_signal_handler(s, stop, s)
            return await super().async_start_new_kernel(**kwargs)

    client = Client(
        nb,
        kernel_name=kernel_name,
        timeout=None if timeout <= 0 else int(timeout),
        startup_timeout=120,
        resources={"metadata": {"path": "."}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
        on_cell_error=on_cell_error,
    )

    for s in STOP_SIGNALS:
        signal.signal(s, lambda signum, _frame: stop(signum))
    die_with_parent()

    status = 0
    try:
        client.execute()
    except CellExecutionError as error:
        status = 1
        cell = failed.get("cell")
        error_name, message = error_of(cell) if cell is not None else ("", "")
        if not (error_name or message):
            error_name, message = ("" if error.ename == "<Error>" else error.ename), error.evalue
        where = f"cell {number_of(cell)}/{len(code_cells)}" if cell is not None else "a cell"
        source_text = cell.source if cell is not None else ""
        print(
            f"\n[{name}] FAILED at {where}: {describe_error(error_name, message)}\n"
            f"The cell:\n------------------\n{source_text}\n------------------",
            file=sys.stderr,
            flush=True,
        )
    except (CellTimeoutError, DeadKernelError) as error:
        status = 1
        print(f"\n[{name}] FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    finally:
        nbformat.write(nb, target)
    sys.exit(status)


if __name__ == "__main__":
    main()
