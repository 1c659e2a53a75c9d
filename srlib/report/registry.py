"""The report's notebooks, one entry each: its experiment folder, the module that plans its runs and
writes its findings, and its parameters in every preset. Adding a notebook: the notebook, its module,
one entry here.

Kept free of NumPy and pandas: the command line reads it to list the notebooks and presets.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

#: What each preset is for, in the order the command line lists them.
PRESETS = {
    "quick": "the embedded sample: checks that everything runs (its time is in the README)",
    "medium": "a few thousand real CelebA images (a development subset)",
    "full": "the study's iteration counts and more seeds on all of CelebA, for a bigger machine or a Dask cluster "
            "(--scheduler)",
    "study": "the study's iteration counts on celeba-mini with the seeds the comparisons need: the published report "
             "in conclusion/; run it in slices with --resume --budget MINUTES (--dry-run says how long is left)",
}


@dataclass(frozen=True)
class Notebook:
    """One notebook of the report: ``notebooks/<name>.ipynb``, publishing into ``conclusion/<folder>/``."""

    name: str
    folder: str                     # the study's folder name where it had one
    module: str                     # its experiment module: plan(params, folders), findings(...), limitations(...)
    presets: dict[str, dict]        # preset -> the parameters it sets (the rest stay at the notebook's defaults)

    def experiment(self) -> ModuleType:
        """The notebook's experiment module (imported on first use: it needs NumPy and pandas)."""
        return importlib.import_module(self.module)


#: Where each optimizer's learning-rate grid starts (half-decade steps between the first and last rate,
#: and the library default); the sweep grows a grid while its best rate sits at an end.
_GRID_START = {"sgd": [1e-5, 1e-2], "momentum": [1e-5, 1e-2], "nesterov": [1e-5, 1e-2],
               "adagrad": [1e-3, 1e-1], "rmsprop": [1e-4, 1e-2], "adam": [1e-4, 1e-2]}
#: The quick preset checks that everything runs: one rate per optimizer to start from (its grid still
#: takes in the library default and the study's rate, and widens once).
_GRID_QUICK = {"sgd": [1e-2], "momentum": [1e-2], "nesterov": [1e-2], "adagrad": [1e-2], "rmsprop": [1e-3], "adam": [1e-3]}

_ENTRIES = [
    Notebook("01_optimizer_comparison", "optimizer_compare", "srlib.report.optimizer_compare", {
        "quick": {"RUNGS": [4, 8], "KEEP": [1], "LEARNING_RATES": _GRID_QUICK, "SEARCH_SEEDS": [0],
                  "FINAL_SEEDS": [0, 1], "WIDEN": 1, "IMAGES": 5, "VAL_IMAGES": 9, "RECHECK": True,
                  "HELD_OUT_SEEDS": [2], "HELD_OUT_IMAGES": 11},
        "medium": {"RUNGS": [40, 100], "KEEP": [2], "LEARNING_RATES": _GRID_START, "SEARCH_SEEDS": [0, 1, 2],
                   "FINAL_SEEDS": [0, 1, 2], "WIDEN": 2, "VAL_IMAGES": 100, "RECHECK": False,
                   "HELD_OUT_SEEDS": []},  # a development subset may lack a test partition
        "full": {"RUNGS": [50, 200, 1000], "KEEP": [4, 1], "LEARNING_RATES": _GRID_START, "SEARCH_SEEDS": [0, 1],
                 "FINAL_SEEDS": [0, 1, 2, 3, 4], "WIDEN": 3, "VAL_IMAGES": 300, "RECHECK": True,
                 "HELD_OUT_SEEDS": [5, 6, 7, 8, 9], "HELD_OUT_IMAGES": 1000},
        "study": {"RUNGS": [40, 200, 1000], "KEEP": [4, 1], "LEARNING_RATES": _GRID_START, "SEARCH_SEEDS": [0, 1],
                  "FINAL_SEEDS": [0, 1, 2, 3, 4], "WIDEN": 3, "VAL_IMAGES": 300, "RECHECK": True,
                  # seeds that choose nothing, on the 330 test faces: with the final seeds, 10 per best rate
                  "HELD_OUT_SEEDS": [5, 6, 7, 8, 9], "HELD_OUT_IMAGES": 330},
    }),
    Notebook("02_hard_training", "hard_train", "srlib.report.hard_train", {
        "quick": {"ITERATIONS": 100, "VALIDATE_EVERY": 20, "IMAGES": 5, "VAL_IMAGES": 9, "EVAL_IMAGES": 9,
                  "HELD_OUT_IMAGES": 11},
        # a development subset may lack a test partition
        "medium": {"ITERATIONS": 4000, "VALIDATE_EVERY": 250, "VAL_IMAGES": 100, "EVAL_IMAGES": 300,
                   "HELD_OUT_IMAGES": 0},
        "full": {"ITERATIONS": 43114, "VALIDATE_EVERY": 1000, "VAL_IMAGES": 300, "EVAL_IMAGES": 1000,
                 "HELD_OUT_IMAGES": 1000, "SEEDS": [0, 1, 2]},
        "study": {"ITERATIONS": 43114, "VALIDATE_EVERY": 1000, "VAL_IMAGES": 300, "EVAL_IMAGES": 780,
                  "HELD_OUT_IMAGES": 330, "SEEDS": [0, 1, 2]},
    }),
    Notebook("03_three_colour_networks", "3_colors_network", "srlib.report.colour_networks", {
        "quick": {"ITERATIONS": 40, "VALIDATE_EVERY": 10, "IMAGES": 5, "VAL_IMAGES": 9, "EVAL_IMAGES": 9,
                  "HELD_OUT_IMAGES": 11, "SEEDS": [0, 1]},
        "medium": {"ITERATIONS": 800, "VALIDATE_EVERY": 50, "VAL_IMAGES": 100, "EVAL_IMAGES": 300,
                   "HELD_OUT_IMAGES": 0, "SEEDS": [0, 1]},
        "full": {"ITERATIONS": 25000, "VALIDATE_EVERY": 500, "VAL_IMAGES": 300, "EVAL_IMAGES": 1000,
                 "HELD_OUT_IMAGES": 1000, "SEEDS": [0, 1, 2]},
        "study": {"ITERATIONS": 25000, "VALIDATE_EVERY": 500, "VAL_IMAGES": 300, "EVAL_IMAGES": 780,
                  "HELD_OUT_IMAGES": 330, "SEEDS": [0, 1, 2]},
    }),
    Notebook("04_beyond_the_study", "beyond_the_study", "srlib.report.beyond_the_study", {
        "quick": {"LENGTH": 12, "SEEDS": [0, 1], "LADDER_LENGTHS": [12], "VAL_IMAGES": 9, "HELD_OUT_IMAGES": 11},
        "medium": {"LENGTH": 600, "SEEDS": [0, 1], "LADDER_LENGTHS": [150, 600], "VAL_IMAGES": 300,
                   "HELD_OUT_IMAGES": 0},
        "full": {"LENGTH": 3000, "SEEDS": [0, 1, 2, 3, 4], "CONTESTED_LENGTH": 12000, "LADDER_LENGTHS": [1000],
                 "VAL_IMAGES": 1000, "HELD_OUT_IMAGES": 1000},
        "study": {"LENGTH": 3000, "SEEDS": [0, 1, 2, 3, 4], "CONTESTED_LENGTH": 12000, "CONTESTED_SEEDS": [0, 1, 2],
                  "LADDER_LENGTHS": [150, 600], "VAL_IMAGES": 780, "HELD_OUT_IMAGES": 330},
    }),
]
NOTEBOOKS: dict[str, Notebook] = {nb.name: nb for nb in _ENTRIES}
