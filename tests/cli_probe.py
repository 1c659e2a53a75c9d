"""Run srlib commands in this one process and report, for each: exit code, stderr lines, seconds and
peak memory (Linux: the high-water mark is reset before each command through /proc/self/clear_refs).

    python tests/cli_probe.py CASES.json   ->  one JSON result per case on stdout
CASES.json: a list of argv lists for ``srlib.cli.main``.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    from srlib.cli import main as srlib_main

    for argv in json.loads(Path(sys.argv[1]).read_text()):
        Path("/proc/self/clear_refs").write_text("5")
        err = io.StringIO()
        t0 = time.process_time()  # CPU seconds: what a refusal costs, whatever else the machine runs
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = srlib_main(argv)
            except SystemExit as e:
                rc = e.code
            except BaseException as e:  # a traceback is what the probe exists to catch
                rc, err = "exception", io.StringIO(f"{type(e).__name__}: {e}")
        print(json.dumps({"argv": argv, "rc": rc, "stderr": err.getvalue().strip().splitlines(),
                          "cpu_seconds": time.process_time() - t0, "peak_mib": peak_mib()}), flush=True)


if __name__ == "__main__":
    main()
