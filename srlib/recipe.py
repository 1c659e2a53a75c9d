"""Recipes: everything that decides how a model is trained (its network, optimizer, schedule, batch and
degradation), the named recipes srlib ships, and the limits a run may ask for. Below ``checkpoint``
(which checks a stored recipe) and ``train`` (which runs one): loading a model never imports training.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, fields, replace

from .data import photo
from .errors import SrlibError
from .nn.network import NetConfig
from .nn.optimizers import OPTIMIZERS

#: the longest run a checkpoint may record, in iterations
MAX_ITERATION = 100_000_000
#: the most shards a training step is split into (``train.train_step``)
MAX_SHARDS = 256

#: what a recipe may ask for (see ``Recipe.__post_init__``)
MAX_IMAGES = 64  # the study's iteration: 10; a training batch of 64 colour images costs about 2 GB
DEGRADATIONS = tuple(photo.TRAINING)
RANGES = {"name": "1..64 characters", "lr": "a number in (0, 10]", "output_scale": "1..255",
          "images": f"1..{MAX_IMAGES}", "warmup": f"0..{MAX_ITERATION:,}",
          "degradation": " or ".join(DEGRADATIONS)}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a model is trained, its network's shape (``net``) included."""

    name: str = "study"
    net: NetConfig = NetConfig()
    residual: bool = False          # predict the detail over the phase-aligned bicubic
    output_scale: float = 1.0       # 1: targets on 0..255 (study); 255: targets on 0..1
    optimizer: str = "adam"
    lr: float = 1e-3
    optimizer_args: tuple[tuple[str, float], ...] = ()
    images: int = 10                # images per iteration (x 3 channels)
    stack_channels: bool = False    # one step on 3*images examples instead of one step per channel
    warmup: int = 0                 # iterations of linear learning-rate warm-up
    cosine: bool = False            # cosine decay of the learning rate to 0 at the last iteration
    flips: bool = False             # random horizontal flips (LR re-made from the flipped HR)
    degradation: str = "study"      # a name in photo.TRAINING: "study" (the study's LR, study grid), "photo", ...

    def to_dict(self) -> dict:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        d["optimizer_args"] = dict(self.optimizer_args)
        return d

    def __post_init__(self):
        """Every field typed and in range, so a recipe read from a checkpoint cannot train on nonsense."""
        for f in fields(self):
            default, value = f.default, getattr(self, f.name)
            if f.name in ("net", "optimizer_args"):
                continue
            kind = (int, float) if isinstance(default, float) else type(default)
            if not isinstance(value, kind) or isinstance(value, bool) != isinstance(default, bool):
                raise TypeError(f"Recipe: {f.name} is {type(value).__name__}, expected {type(default).__name__}")
        if not isinstance(self.net, NetConfig):
            raise TypeError(f"Recipe: net is {type(self.net).__name__}, expected NetConfig")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Recipe: optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        accepted = set(inspect.signature(OPTIMIZERS[self.optimizer]).parameters) - {"params", "lr"}
        for key, value in self.optimizer_args:
            if key not in accepted or isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"Recipe: optimizer argument {key}={value!r} is not a finite number that "
                                 f"{self.optimizer} takes ({', '.join(sorted(accepted)) or 'none'})")
        checks = {"name": 1 <= len(self.name) <= 64, "lr": math.isfinite(self.lr) and 0 < self.lr <= 10,
                  "output_scale": math.isfinite(self.output_scale) and 1 <= self.output_scale <= 255,
                  "images": 1 <= self.images <= MAX_IMAGES, "warmup": 0 <= self.warmup <= MAX_ITERATION,
                  "degradation": self.degradation in DEGRADATIONS}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Recipe: {name} {getattr(self, name)!r} is out of range ({RANGES[name]})")

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Inverse of ``to_dict``; raises TypeError or ValueError for unknown fields, wrong types or values
        out of range."""
        if not isinstance(d, dict):
            raise TypeError(f"Recipe: expected a mapping, got {type(d).__name__}")
        d = dict(d)
        d["net"] = NetConfig.from_dict(d["net"])
        args = d.get("optimizer_args", {})
        if not isinstance(args, dict):
            raise TypeError(f"Recipe: optimizer_args must map names to numbers, got {args!r:.100}")
        d["optimizer_args"] = tuple(sorted(args.items()))
        return cls(**d)

    def with_(self, **changes) -> "Recipe":
        """A copy with some fields changed: a whole ``net``, and a network's fields (``bias``, ``init``,
        ``res_blocks``, ...) changed in it."""
        net_fields = {k: changes.pop(k) for k in list(changes) if k in NetConfig.__dataclass_fields__}
        net = changes.pop("net", self.net)
        net = replace(net, **net_fields) if net_fields else net
        if "optimizer_args" in changes:
            changes["optimizer_args"] = tuple(sorted(dict(changes["optimizer_args"]).items()))
        return replace(self, net=net, **changes)

    def learning_rate(self, iteration: int, total: int) -> float:
        """Learning rate for 0-based ``iteration`` of a ``total``-iteration run."""
        lr = self.lr
        if self.warmup and iteration < self.warmup:
            lr *= (iteration + 1) / self.warmup
        if self.cosine and total > self.warmup:
            progress = (iteration - self.warmup) / (total - self.warmup)
            lr *= 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return lr


_IMPROVED = Recipe(
    name="improved",
    net=NetConfig(bias=True, init="he", final_relu=False, final_init_scale=0.01),
    residual=True, output_scale=255.0, lr=2e-3, stack_channels=True,
    warmup=200, cosine=True, flips=True,
)
RECIPES: dict[str, Recipe] = {
    "study": Recipe(),
    "improved": _IMPROVED,
    # The improved recipe on photo degradations (centre grid), drawn afresh for every image drawn, for a
    # network that sees B, G and R together, is told each input's JPEG quality, and is two layers deeper
    # than the study's (conv 5x5 3->64, three 3x3 64->64, 3x3 64->32, 3x3 32->48; benchmarks/photo_models.py
    # measures what that costs, the model card what it gains).
    "photo": replace(_IMPROVED, name="photo", degradation="photo", stack_channels=False,
                     net=replace(_IMPROVED.net, channels=(64, 64, 64, 64, 32, 48), kernels=(5, 3, 3, 3, 3, 3),
                                 image_channels=3, jpeg_aware=True)),
}
# The photo network and recipe on the wider mix of how photos get small (``photo.random_wide_degradation``:
# antialiased and aliased resizes of Pillow and OpenCV, blur sampled off the block centre, sharpening).
RECIPES["photo-wide"] = replace(RECIPES["photo"], name="photo-wide", degradation="photo-wide")
# The photo model's version 5: that network 1.5x wider (96 channels where it had 64, 48 where 32).
RECIPES["photo-wide-96"] = replace(RECIPES["photo-wide"], name="photo-wide-96",
                                   net=replace(RECIPES["photo-wide"].net, channels=(96, 96, 96, 96, 48, 48)))
# The fast tier: the same recipe for a network one layer deeper than the study's and under a third of the
# photo network's work per pixel (conv 5x5 3->32, three 3x3 32->32, 3x3 32->48), within 1.5x OpenCV's
# ESPCN's time to upscale (benchmarks/photo_models.py --opencv-models).
RECIPES["photo-fast"] = replace(RECIPES["photo-wide"], name="photo-fast",
                                net=replace(RECIPES["photo"].net, channels=(32, 32, 32, 32, 48),
                                            kernels=(5, 3, 3, 3, 3)))
# The fast tier's version 3: 40 channels instead of 32 and a 3x3 first layer instead of 5x5 (a 5x5 kernel
# over 3 input channels is the engine's least efficient product: the change pays for the width).
RECIPES["photo-fast-40"] = replace(RECIPES["photo-fast"], name="photo-fast-40",
                                   net=replace(RECIPES["photo-fast"].net, channels=(40, 40, 40, 40, 48),
                                               kernels=(3, 3, 3, 3, 3)))
# A deeper network for general photographs, measured as the super-resolution papers measure: EDSR's
# baseline shape at 8 blocks (conv 3x3 3->64, 8 residual blocks of two 3x3 64->64, 3x3 64->64, 3x3
# 64->48; 657k weights, 2x the photo model's work per pixel) trained, as SRCNN, FSRCNN and VDSR were, on
# MATLAB's antialiased bicubic; half the improved recipe's rate, as a network three times as deep needs.
RECIPES["bicubic-res8"] = replace(RECIPES["photo"], name="bicubic-res8", degradation="bicubic", lr=1e-3,
                                  net=replace(RECIPES["photo"].net, channels=(64, 64, 48), kernels=(3, 3, 3),
                                              res_blocks=8, jpeg_aware=False))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise SrlibError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]



def check_shards(shards: object) -> int:
    """``shards`` (``train.train_step``) as a whole number 1..MAX_SHARDS; raises ValueError."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {shards!r:.20}")
    return shards
