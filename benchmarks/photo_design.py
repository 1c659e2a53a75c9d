"""How the photo model's network was chosen: short PyTorch runs of candidate networks, scored on the photo
benchmark's degradations. PyTorch only for speed (srlib trains the shipped model; see its model card).

Every candidate is trained with the photo recipe (residual on centre-grid bicubic, He init with the last
layer x0.01, Adam 2e-3 with 200 warm-up iterations and cosine decay, 10 images per iteration, horizontal
flips, ``photo.random_degradation``, or with ``--mix wide`` the shipped models' ``photo.random_wide_degradation``,
drawn afresh for every image) for the same number of iterations and seed, then scored on the first
--images faces of ``evaluation_subset(validation, N)``: mean PSNR RGB minus centre-grid bicubic, per
degradation. These faces take part in the choice, so a report on the
validation split should leave them out (``photo-benchmark --exclude-subset N``).

    python benchmarks/photo_design.py --data ../shared/celeba-mini [--iterations 3000] [--images 200]
                                      [--mix narrow|wide] [--threads 2] [NAME ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srlib.data import photo  # noqa: E402
from srlib.data.celeba import CelebA, evaluation_subset, load_pairs  # noqa: E402
from srlib.data.degrade import upscale_bicubic_centred  # noqa: E402
from srlib.evaluation.metrics import psnr_each  # noqa: E402
from srlib.recipe import RECIPES  # noqa: E402

PHOTO = RECIPES["photo"]  # its learning rate and schedule; the networks are the candidates below

# name: (image channels, hidden widths, the first kernel 5x5 and the rest 3x3; JPEG probability in training;
#        extra: "" | "jpeg" (told the JPEG strength: a learned shift per hidden channel, as NetConfig.jpeg_aware)
#        | "jpeg-scale" (and a learned scale: h (1 + s a) + s v, FiLM-like)
#        | "phase" (a learned bias per channel and position mod 16 after conv1: where JPEG blocks fall))
CANDIDATES = {
    "one channel at a time, study size": (1, (64, 32, 32), 0.5, ""),
    "colour, study widths": (3, (64, 32, 32), 0.5, ""),
    "colour, 1 layer deeper": (3, (64, 64, 32, 32), 0.5, ""),
    "colour, 1 layer deeper, JPEG 70% of the time": (3, (64, 64, 32, 32), 0.7, ""),
    "colour, 2 layers deeper": (3, (64, 64, 64, 64, 32), 0.5, ""),
    "colour, 2 layers deeper and wider": (3, (128, 96, 64, 32), 0.5, ""),
    "colour, 2 layers deeper, block phase": (3, (64, 64, 64, 64, 32), 0.5, "phase"),
    "colour, 2 layers deeper, JPEG-aware (the photo model)": (3, (64, 64, 64, 64, 32), 0.5, "jpeg"),
    "colour, 2 layers deeper, JPEG-aware with a scale": (3, (64, 64, 64, 64, 32), 0.5, "jpeg-scale"),
    "colour, 2 layers deeper, 1.5x wider, JPEG-aware": (3, (96, 96, 96, 96, 48), 0.5, "jpeg"),
}
#: How the training LR images are drawn: version 2's narrow mix (its JPEG probability the candidate's) or the
#: shipped models' wide mix (``photo.random_wide_degradation``, JPEG on 1 image in 2 whatever the candidate says)
MIXES = {"narrow": photo.random_degradation, "wide": lambda hr, rng, jpeg_probability: photo.random_wide_degradation(hr, rng)}


def build(torch, channels: int, widths: tuple[int, ...], extra: str):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [channels, *widths, channels * 16]
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 5 if i == 0 else 3, padding=2 if i == 0 else 1)
                                       for i, (a, b) in enumerate(zip(sizes, sizes[1:])))
            for c in self.convs:
                nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
                nn.init.zeros_(c.bias)
            with torch.no_grad():
                self.convs[-1].weight *= 0.01
            told = extra in ("jpeg", "jpeg-scale")
            self.shift = nn.ParameterList(nn.Parameter(torch.zeros(w)) for w in widths) if told else None
            self.scale = nn.ParameterList(nn.Parameter(torch.zeros(w)) for w in widths) if extra == "jpeg-scale" else None
            self.phase = nn.Parameter(torch.zeros(widths[0], 16, 16)) if extra == "phase" else None

        def forward(self, x, strength):
            h = x
            for i, conv in enumerate(self.convs[:-1]):
                h = conv(h)
                s = strength[:, None, None, None]
                if self.scale is not None:
                    h = h * (1 + s * self.scale[i][None, :, None, None])
                if self.shift is not None:
                    h = h + s * self.shift[i][None, :, None, None]
                if self.phase is not None and i == 0:
                    rows, cols = -(-h.shape[2] // 16), -(-h.shape[3] // 16)
                    h = h + self.phase.repeat(1, rows, cols)[:, :h.shape[2], :h.shape[3]]
                h = torch.relu(h)
            return nn.functional.pixel_shuffle(self.convs[-1](h), 4)

    return Net()


def to_net(torch, lr: np.ndarray, channels: int):
    """uint8 LR (n, h, w, 3) -> (n*3/channels, channels, h, w) float in [0, 1], and the centre-grid bicubic."""
    base = np.stack([upscale_bicubic_centred(img) for img in lr])
    x = lr.astype(np.float32).transpose(0, 3, 1, 2) / 255
    return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, channels, *x.shape[2:]))), base


def from_net(y, n: int) -> np.ndarray:
    """Network output (n*3/channels, channels, H, W) -> (n, H, W, 3) on 0..255."""
    return y.detach().numpy().reshape(n, 3, *y.shape[2:]).transpose(0, 2, 3, 1) * 255


def run(torch, name: str, train_hr: np.ndarray, val_hr: np.ndarray, iterations: int, seed: int = 0,
        mix: str = "narrow") -> dict:
    channels, widths, jpeg_probability, extra = CANDIDATES[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build(torch, channels, widths, extra)
    opt = torch.optim.Adam(net.parameters(), lr=PHOTO.lr)
    t0 = time.perf_counter()
    for it in range(iterations):
        for group in opt.param_groups:
            group["lr"] = PHOTO.learning_rate(it, iterations)
        hr = train_hr[rng.integers(0, len(train_hr), 10)].copy()
        flip = rng.random(10) < 0.5
        hr[flip] = hr[flip][:, :, ::-1]
        drawn = [MIXES[mix](h, rng, jpeg_probability) for h in hr]
        lr = np.stack([d[0] for d in drawn])
        strength = torch.tensor([photo.jpeg_strength(q) for _, q in drawn], dtype=torch.float32)
        x, base = to_net(torch, lr, channels)
        target = (hr.astype(np.float32) - base).transpose(0, 3, 1, 2) / 255
        t = torch.from_numpy(np.ascontiguousarray(target.reshape(-1, channels, *target.shape[2:])))
        loss = ((net(x, strength.repeat_interleave(len(x) // 10)) - t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    gains = {"seconds": time.perf_counter() - t0, "weights": sum(p.numel() for p in net.parameters())}
    with torch.no_grad():
        for deg, degrade in photo.BENCHMARK.items():
            lr = np.stack([degrade(h) for h in val_hr])
            x, base = to_net(torch, lr, channels)
            strength = torch.full((len(x),), photo.jpeg_strength(degrade.jpeg_quality))
            out = np.clip(np.rint(from_net(net(x, strength), len(lr)) + base), 0, 255)
            bicubic = np.clip(np.rint(base), 0, 255)
            gains[deg] = float(np.mean(psnr_each(out, val_hr) - psnr_each(bicubic, val_hr)))
    return gains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CelebA-layout folder with train and validation partitions")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--images", type=int, default=200, help="validation faces scored (default 200)")
    ap.add_argument("--mix", choices=list(MIXES), default="narrow", help="the training mix (default: narrow, version 2's)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch's threads (default 2)")
    ap.add_argument("names", nargs="*", help=f"candidates (default: all): {'; '.join(CANDIDATES)}".replace("%", "%%"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = CelebA.open(args.data)
    train_hr = load_pairs(data.split("train")).hr
    val_hr = load_pairs(evaluation_subset(data.split("validation"), args.images)).hr
    print(f"{args.iterations} iterations, {args.mix} mix, {args.images} validation faces; PSNR RGB minus bicubic, dB")
    for name in args.names or CANDIDATES:
        g = run(torch, name, train_hr, val_hr, args.iterations, mix=args.mix)
        print(f"{name}: {g.pop('weights'):,} weights, {g.pop('seconds'):.0f} s; "
              + ", ".join(f"{deg} {v:+.2f}" for deg, v in g.items()), flush=True)


if __name__ == "__main__":
    main()
