"""A trained super-resolution model: a network plus the conventions that map pixels to and from it.

- input: one LR colour channel / 255, shape (N, 1, h, w)
- output: ``output_scale`` * network output on the 0..255 scale (1 for the study, which regressed
  0..255 values directly; 255 for a recipe that trains on 0..1 targets), plus, for a ``residual`` model, the phase-aligned
  bicubic upscale of the same channel (the network then only predicts the detail bicubic misses).

Every colour channel goes through the same network (the study's "shared" model), or each channel
through its own network (the 3-colour experiment: ``per_channel``).
"""
from __future__ import annotations

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .degrade import SCALE, upscale_bicubic
from .network import SRNet

# Tile size (LR pixels) for images larger than the training crops: bounds the im2col memory
# (a 1000x1000 LR channel in one piece would need ~2.3 GB of patches), and a halo of 8 pixels
# exceeds the network's receptive-field radius (2 + 1 + 1 + 1 = 5), so tiles join without seams.
TILE = 128
HALO = 8


class SRModel:
    """``nets``: one network for all channels, or three (B, G, R) for per-channel models."""

    def __init__(self, nets: SRNet | list[SRNet], residual: bool = False, output_scale: float = 1.0):
        self.nets = nets if isinstance(nets, list) else [nets]
        if len(self.nets) not in (1, 3):
            raise ValueError(f"SRModel takes one network or three (B, G, R), got {len(self.nets)}")
        self.residual = residual
        self.output_scale = float(output_scale)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint | str) -> "SRModel":
        ckpt = load_checkpoint(ckpt) if not isinstance(ckpt, Checkpoint) else ckpt
        m = ckpt.meta.get("model", {})
        return cls(ckpt.networks(), residual=bool(m.get("residual", False)),
                   output_scale=float(m.get("output_scale", 1.0)))

    def model_meta(self) -> dict:
        return {"residual": self.residual, "output_scale": self.output_scale}

    def targets(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        """What the network must output for uint8 LR (N, h, w) and HR (N, 4h, 4w): (N, 1, 4h, 4w) float32."""
        t = hr.astype(np.float32)
        if self.residual:
            t -= self._bicubic(lr)
        return (t / self.output_scale)[:, None]

    @staticmethod
    def inputs(lr: np.ndarray) -> np.ndarray:
        """uint8 LR channels (N, h, w) -> network input (N, 1, h, w) float32 in [0, 1]."""
        return (lr.astype(np.float32) / 255.0)[:, None]

    @staticmethod
    def _bicubic(lr: np.ndarray) -> np.ndarray:
        return np.stack([upscale_bicubic(c) for c in lr])

    def predict_channels(self, lr: np.ndarray, net: SRNet | None = None) -> np.ndarray:
        """uint8 LR channels (N, h, w) -> float HR estimate (N, 4h, 4w) on the 0..255 scale, unclipped."""
        net = net or self.nets[0]
        n, h, w = lr.shape
        if h <= TILE + 2 * HALO and w <= TILE + 2 * HALO:
            y = net.forward(self.inputs(lr))[:, 0].astype(np.float32) * self.output_scale
        else:
            y = np.empty((n, h * SCALE, w * SCALE), np.float32)
            for r in range(0, h, TILE):
                for c in range(0, w, TILE):
                    r0, c0 = max(r - HALO, 0), max(c - HALO, 0)
                    r1, c1 = min(r + TILE + HALO, h), min(c + TILE + HALO, w)
                    out = net.forward(self.inputs(lr[:, r0:r1, c0:c1]))[:, 0] * self.output_scale
                    rr, cc = (r - r0) * SCALE, (c - c0) * SCALE
                    th, tw = (min(r + TILE, h) - r) * SCALE, (min(c + TILE, w) - c) * SCALE
                    y[:, r * SCALE:r * SCALE + th, c * SCALE:c * SCALE + tw] = out[:, rr:rr + th, cc:cc + tw]
        if self.residual:
            y += self._bicubic(lr)
        return y

    def predict(self, lr: np.ndarray, batch: int = 16) -> np.ndarray:
        """uint8 LR images (N, h, w, 3) BGR -> float (N, 4h, 4w, 3) on 0..255, unclipped.
        Runs ``batch`` images at a time so memory stays bounded for any N."""
        n, h, w, c = lr.shape
        if c != 3:
            raise ValueError(f"SRModel.predict expects (N, h, w, 3) BGR images, got shape {lr.shape}")
        out = np.empty((n, h * SCALE, w * SCALE, c), np.float32)
        for s in range(0, n, batch):
            part = lr[s:s + batch]
            if len(self.nets) == 1:
                chans = part.transpose(0, 3, 1, 2).reshape(-1, h, w)
                y = self.predict_channels(chans).reshape(len(part), c, h * SCALE, w * SCALE)
                out[s:s + batch] = y.transpose(0, 2, 3, 1)
            else:
                for i, net in enumerate(self.nets):
                    out[s:s + batch, ..., i] = self.predict_channels(part[..., i], net)
        return out
