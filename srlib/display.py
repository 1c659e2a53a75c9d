"""What notebooks show when nobody will look at them live.

A notebook run by papermill, nbconvert or nbval (a kernel that no Jupyter server session started: those
carry ``JPY_SESSION_NAME``), or with ``SRLIB_STATIC_OUTPUT=1`` in its environment as ``report`` runs
them, is read later: there progress is plain text (a widget progress bar saved in a notebook shows "0%"
to anyone who opens it without a trusted, running kernel) and the image browser is a static figure (a
saved widget is a text stub). In JupyterLab, and outside notebooks, tqdm picks what suits the front end;
``SRLIB_STATIC_OUTPUT=0`` asks for widgets anywhere.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

STATIC_OUTPUT = "SRLIB_STATIC_OUTPUT"


def static_output() -> bool:
    """True when outputs are to be read later, with no live front end (see the module docstring)."""
    chosen = os.environ.get(STATIC_OUTPUT)
    if chosen is not None:
        return chosen == "1"
    return "ipykernel" in sys.modules and "JPY_SESSION_NAME" not in os.environ


def progress(*args, **kwargs):
    """tqdm, as plain text on stdout updated at most every 30 s when ``static_output()`` (a saved
    notebook keeps every update, and shows stderr in red boxes that read as errors), else tqdm.auto's
    choice. In a saved notebook a transient bar (``leave=False``) is not shown at all: it would stay as a
    "0%" line, since a notebook cannot move its cursor back up to erase it. A process started with
    stderr closed shows none."""
    if sys.stderr is None and "file" not in kwargs:
        kwargs["disable"] = True
    if static_output():
        if kwargs.get("leave") is False:
            kwargs["disable"] = True
        return text_tqdm(*args, **{"file": sys.stdout, **kwargs,
                                   "mininterval": max(30.0, kwargs.get("mininterval", 0.1))})
    return auto_tqdm(*args, **kwargs)
