"""Settings read from the environment (``SRLIB_THREADS``, ``SRLIB_CACHE_MB``, ``SRLIB_CONV_PATHS``;
``SRLIB_DEADLINE``, which
``report --budget`` sets for its notebooks and their workers), checked when first used:
a value that is not a whole number in range is one clear error naming the variable, never a traceback
from wherever it happened to be read."""
from __future__ import annotations

import os

from .errors import SrlibError


def env_int(name: str, default: int, lowest: int, highest: int) -> int:
    """The integer in ``$name`` (``default`` when unset or empty), refused unless lowest..highest."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        raise SrlibError(f"{name}={text[:40]!r} is not a whole number {lowest}..{highest}; fix it or unset it")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """The word in ``$name`` (``default`` when unset or empty), refused unless one of ``choices``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if text not in choices:
        raise SrlibError(f"{name}={text[:40]!r} is not one of {', '.join(choices)}; fix it or unset it")
    return text


#: the end of the time budget of a report run, as seconds since the epoch (set by ``report --budget``)
DEADLINE = "SRLIB_DEADLINE"


def budget_deadline() -> float | None:
    """When training runs must checkpoint and stop (``time.time()`` seconds), or None for no budget."""
    text = os.environ.get(DEADLINE, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise SrlibError(f"{DEADLINE}={text[:40]!r} is not a time in seconds; unset it") from None
