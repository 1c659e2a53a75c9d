"""Open the published notebooks as a reader does, untrusted, in JupyterLab in headless Chromium, and
check that every figure and table stored in them is shown, that no widget stub or "0%" progress bar is,
that no figure is shrunk so far that its text becomes unreadable, and that opening a notebook does not
mark it modified. Saves a full-page screenshot of each.

First, without a browser (``static_problems``, also run alone with ``--static``): no output on stderr
(JupyterLab draws it in red boxes that read as errors), no table cell showing NaN or None, no figure
without a title, and every relative link in the notebook's text leads to a file that exists.

Run by hand (not part of the test suite, which tests the static checks on notebooks it builds):

    apt-get install -y chromium && pip install playwright
    python tools/check_rendering.py [NOTEBOOK ...] [--out runs/rendering] [--chromium /usr/bin/chromium] [--static]

With no NOTEBOOK it checks every notebook in conclusion/. Exit status 0 when all pass, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: text a reader must never see in place of an output
#: the notebook on screen (JupyterLab keeps other panels in the page, hidden)
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: a figure shown at less than 1 / SHRINK of its pixel width: its 8-10 pt text, drawn at 120 dpi (13-17
#: pixels), ends up under 8 pixels tall
SHRINK = 1.7
STUBS = [re.compile(p) for p in (r"VBox\(children=", r"HBox\(children=", r"IntSlider\(", "Error displaying widget",
                                  "Loading widget", r"(^|\s)0%\|")]


def expected_outputs(path: Path) -> tuple[int, int]:
    """(images, tables) stored in the notebook's outputs."""
    nb = json.loads(path.read_text())
    images = tables = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            images += "image/png" in data
            tables += "<table" in "".join(data.get("text/html", []))
    return images, tables


def static_problems(path: Path) -> list[str]:
    """What a reader would trip over in the stored notebook itself, without rendering it."""
    nb = json.loads(path.read_text())
    problems = []
    for i, cell in enumerate(nb["cells"], start=1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"cell {i}: output on stderr (shown in a red box)")
            html = "".join(out.get("data", {}).get("text/html", []))
            if re.search(r"<td>\s*(NaN|nan|None|<NA>)\s*</td>", html):
                problems.append(f"cell {i}: a table cell shows NaN or None")
        if cell["cell_type"] == "markdown":
            for link in re.findall(r"\]\(([^)\s]+)\)", "".join(cell["source"])):
                target = link.split("#")[0]
                if target and "://" not in target and not target.startswith("mailto:") \
                        and not (path.parent / target).exists():
                    problems.append(f"cell {i}: link {link!r} leads nowhere")
    return list(dict.fromkeys(problems))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(settings: Path, command: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """JupyterLab on the checkout (``command``: how to start it, default ``python -m jupyter lab``) with a
    settings folder of its own; returns the process and the URL of a notebook, ``{path}`` to fill in."""
    # cells drawn only when scrolled into view (JupyterLab 4's default) cannot be counted: draw them all
    plugin = settings / "@jupyterlab" / "notebook-extension"
    plugin.mkdir(parents=True)
    (plugin / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    lab = subprocess.Popen([*(command or [sys.executable, "-m", "jupyter", "lab"]), "--no-browser", "--allow-root",
                            f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            # "reset": a fresh workspace each time, not the notebooks left open by the previous page
            return lab, f"{url}/lab/tree/{{path}}?reset&token={token}"
        except OSError:
            time.sleep(0.5)
    lab.kill()
    raise SystemExit("JupyterLab did not start within 60 s")


def check(page, url: str, path: Path, out: Path) -> list[str]:
    """Problems found in one notebook (empty when it renders as it should)."""
    images, tables = expected_outputs(path)
    page.goto(url.format(path=path.relative_to(ROOT).as_posix()))
    page.wait_for_selector(f"{PANEL} .jp-Cell", state="attached", timeout=60_000)
    page.wait_for_timeout(4000)  # images decode, the kernel starts; a notebook that marks itself modified has by now
    shown = page.evaluate(f"""() => Array.from(document.querySelectorAll('{PANEL} .jp-OutputArea-output img'))
                                  .filter(i => i.complete && i.naturalWidth > 0).length""")
    shown_tables = page.locator(f"{PANEL} .jp-OutputArea-output table").count()
    shrunk = page.evaluate(f"""() => Array.from(document.querySelectorAll('{PANEL} .jp-OutputArea-output img'))
                                   .filter(i => i.clientWidth > 0 && i.naturalWidth / i.clientWidth > {SHRINK}).length""")
    text = page.locator(f"{PANEL} .jp-Notebook").inner_text()
    dirty = page.locator(".jp-mod-current.jp-mod-dirty, .lm-TabBar-tab.lm-mod-current.jp-mod-dirty").count()
    page.screenshot(path=str(out / f"{path.stem}.png"), full_page=True)
    problems = []
    if shown < images:
        problems.append(f"{shown} of {images} figures shown")
    if shown_tables < tables:
        problems.append(f"{shown_tables} of {tables} tables shown")
    if shrunk:
        problems.append(f"{shrunk} figures shrunk below 1/{SHRINK} of their width (text under ~8 px)")
    problems += [f"shows {m.group(0).strip()!r}" for m in (stub.search(text) for stub in STUBS) if m]
    if dirty:
        problems.append("opening it marked it modified")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in conclusion/")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "rendering", help="where screenshots go")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    ap.add_argument("--static", action="store_true", help="only the checks that need no browser")
    args = ap.parse_args()
    notebooks = [p.resolve() for p in args.notebooks] or sorted(
        p for p in (ROOT / "conclusion").glob("*/*.ipynb") if not p.parent.name.startswith("."))  # not a run's staging
    failed = 0
    for nb in notebooks:
        problems = static_problems(nb)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {nb.relative_to(ROOT)} (stored)" + (f": {'; '.join(problems)}" if problems else ""))
    if args.static:
        return 1 if failed else 0
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as settings:
        lab, url = start_lab(Path(settings))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                for nb in notebooks:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    problems = check(page, url, nb, args.out)
                    page.close()
                    failed += bool(problems)
                    images, tables = expected_outputs(nb)
                    print(f"{'FAIL' if problems else 'ok  '} {nb.relative_to(ROOT)}: {images} figures, {tables} tables"
                          + (f"; {'; '.join(problems)}" if problems else ""), flush=True)
                browser.close()
        finally:
            lab.terminate()
            lab.wait(timeout=30)
    print(f"screenshots in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
