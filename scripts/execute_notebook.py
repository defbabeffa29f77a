"""Executes one notebook with Jupyter's nbclient and writes the executed copy, outputs included.

Called by scripts/run-notebooks.ts (not meant to be run by hand):
    python3 execute_notebook.py SOURCE.ipynb OUTPUT.ipynb KERNEL_NAME CELL_TIMEOUT_SECONDS

Prints one line per cell as it runs. On the first failing cell it still writes the executed copy (outputs up to
the failure), prints the failing cell's source and error, and exits with status 1.
"""

import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


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


def main():
    source, target, kernel_name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    nb = nbformat.read(source, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    name = source.rsplit("/", 1)[-1].removesuffix(".ipynb")
    started = {}

    def on_cell_start(cell, cell_index, **_):
        started[cell_index] = time.time()

    def on_cell_executed(cell, cell_index, **_):
        number = code_cells.index(cell) + 1 if cell in code_cells else 0
        seconds = time.time() - started.get(cell_index, time.time())
        print(f"[{name}] cell {number}/{len(code_cells)} done in {seconds:.1f} s", flush=True)
        for output in cell.get("outputs", []):
            text = text_of(output).rstrip()
            if text:
                lines = text.splitlines()
                shown = lines[:12] + ([f"… ({len(lines) - 12} more lines)"] if len(lines) > 12 else [])
                print("    " + "\n    ".join(shown), flush=True)

    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=None if timeout <= 0 else int(timeout),
        startup_timeout=120,
        resources={"metadata": {"path": "."}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as error:
        status = 1
        print(f"\n[{name}] FAILED. The cell and its error:\n{error}", file=sys.stderr, flush=True)
    except (CellTimeoutError, DeadKernelError) as error:
        status = 1
        print(f"\n[{name}] FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    finally:
        nbformat.write(nb, target)
    sys.exit(status)


if __name__ == "__main__":
    main()
