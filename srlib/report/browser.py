"""An ipywidgets image browser for JupyterLab: a slider over test images showing the LR input (at its
true size, 4x smaller), the aligned bicubic, each model's output and the ANSWER, with per-image PSNR.
Where no live front end will see it (``display.static_output()``), it is a static figure instead."""
from __future__ import annotations

import io

import cv2
import IPython.display
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from ..data.celeba import Pairs
from ..data.degrade import to_uint8
from ..display import static_output
from ..evaluation.evaluate import BASELINES
from ..evaluation.metrics import psnr
from ..model import SRModel
from .notebook import BICUBIC
from .plots import comparison_grid


def _png(img_bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img_bgr)
    return buf.tobytes()


def _panel(title: str, img: np.ndarray, caption: str, width: int) -> widgets.VBox:
    # flex "none": a panel keeps its size however many there are (the row wraps instead of shrinking them)
    return widgets.VBox([widgets.HTML(f"<b>{title}</b>"),
                         widgets.Image(value=_png(img), format="png", width=width, height=width,
                                       layout=widgets.Layout(width=f"{width}px", height=f"{width}px")),
                         widgets.HTML(caption)],
                        layout=widgets.Layout(align_items="center", margin="0 6px", flex="none"))


class ImageBrowser:
    """``ImageBrowser(pairs, {"model name": model, ...}).widget`` is the widget to display.

    Outputs are computed once for all images (uint8, clipped), so moving the slider is instant. Columns
    come in the order of ``experiments.sample_outputs`` (the notebooks' sample figures): the aligned
    bicubic, the models as given, then the shipped study model unless given already (``shipped=False``
    to leave it out), so a short run's output sits beside a well-trained one. The slider counts images
    from 1, as the caption beside it does.
    """

    def __init__(self, pairs: Pairs, models: dict[str, SRModel], shipped: bool = True):
        if len(pairs) == 0:
            raise ValueError("ImageBrowser needs at least one image")
        self.pairs = pairs
        self.columns = {BICUBIC: to_uint8(BASELINES["bicubic_aligned"](pairs.lr))}
        self.columns.update({name: to_uint8(m.predict(pairs.lr)) for name, m in models.items()})
        if shipped and "shipped model" not in self.columns:
            self.columns["shipped model"] = to_uint8(SRModel.shipped("study").predict(pairs.lr))
        self.slider = widgets.IntSlider(value=1, min=1, max=len(pairs), description="image",
                                        continuous_update=False)
        self.position = widgets.HTML()
        self.row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.slider.observe(lambda change: self.show(change["new"] - 1), names="value")
        self.show(0)
        self.widget = self.figure() if static_output() else widgets.VBox([widgets.HBox([self.slider, self.position]),
                                                                           self.row])

    def figure(self, n: int = 4) -> IPython.display.Image:
        """The first ``n`` images and every column as one static PNG (``plots.comparison_grid``)."""
        hr = self.pairs.hr[:n]
        columns = {name: list(out[:n]) for name, out in self.columns.items()}
        psnrs = {name: [psnr(o, h) for o, h in zip(out, hr)] for name, out in columns.items()}
        fig = comparison_grid(list(self.pairs.lr[:n]), {**columns, "ANSWER (HR)": list(hr)},
                              f"The first {len(hr)} of {len(self.pairs)} images (static view of the image browser)",
                              psnrs=psnrs)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return IPython.display.Image(data=buf.getvalue(), format="png")

    def show(self, i: int) -> None:
        hr = self.pairs.hr[i]
        self.position.value = f"image {i + 1} of {len(self.pairs)} &mdash; {self.pairs.paths[i].name}"
        panels = [_panel("LR input", self.pairs.lr[i], "44x44, shown at true size<br>(4x smaller)", 44)]
        for name, out in self.columns.items():
            panels.append(_panel(name, out[i], f"PSNR {psnr(out[i], hr):.2f} dB", 176))
        panels.append(_panel("ANSWER (HR)", hr, f"{self.pairs.paths[i].name}", 176))
        self.row.children = panels
