"""Explore every report notebook in JupyterLab as a newcomer does: open it, Run All, save; then check
that ``git status`` shows no tracked notebook changed (``srlib lab``'s contents manager keeps them as
committed). ``--plain`` starts plain ``jupyter lab`` instead, to see what happens without it.

Run by hand (not part of the test suite; it drives a real browser):

    apt-get install -y chromium && pip install playwright
    python tools/check_lab.py [NOTEBOOK ...] [--plain] [--chromium /usr/bin/chromium]

Exit status 0 when every notebook ran and none changed on disk, 1 otherwise.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from check_rendering import PANEL, ROOT, start_lab


def explore(page, url: str, path: Path, timeout_s: float = 600) -> str | None:
    """Open ``path``, run all its cells and save it; a problem in words, or None."""
    page.goto(url.format(path=path.relative_to(ROOT).as_posix()))
    page.wait_for_selector(f"{PANEL} .jp-Cell", state="attached", timeout=60_000)
    page.wait_for_timeout(3000)  # the kernel starts
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        page.wait_for_timeout(2000)
        prompts = page.locator(f"{PANEL} .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(p.strip() not in ("[*]:", "[ ]:", "") for p in prompts):
            break
    else:
        return f"cells still running after {timeout_s:.0f} s"
    errors = page.locator(f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
    page.keyboard.press("Control+s")
    page.wait_for_timeout(3000)
    return f"{errors} error output(s)" if errors else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    ap.add_argument("--plain", action="store_true", help="plain jupyter lab, without srlib's contents manager")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    args = ap.parse_args()
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    command = None if args.plain else [sys.executable, "-m", "srlib", "lab"]
    from playwright.sync_api import sync_playwright

    failed = 0
    with tempfile.TemporaryDirectory() as settings:
        lab, url = start_lab(Path(settings), command)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                for nb in notebooks:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    start = time.monotonic()
                    problem = explore(page, url, nb)
                    page.close()
                    failed += problem is not None
                    print(f"{'FAIL' if problem else 'ok  '} {nb.relative_to(ROOT)}: ran all and saved in "
                          f"{time.monotonic() - start:.0f} s" + (f"; {problem}" if problem else ""), flush=True)
                browser.close()
        finally:
            lab.terminate()
            lab.wait(timeout=30)
    changed = subprocess.run(["git", "status", "--porcelain", "--", *map(str, notebooks)], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
    print("git status: " + (f"changed\n{changed}" if changed else "no tracked notebook changed"))
    return 1 if failed or changed else 0


if __name__ == "__main__":
    sys.exit(main())
