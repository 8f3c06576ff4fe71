"""The Identity Aware Mask GAN (paper §4.1, eqs. 1-7) as a CycleGAN-style model class.

``IAMGANModel`` owns its options, networks and optimisers; a training step is
``set_input(f, labels, m)`` then ``optimize_parameters(step)``. The loss terms are small
functions so tests can check them against the equations.

Paper conventions kept here:

- ``S(x)`` is the frozen segmenter's binary map, **0 on the mask, 1 elsewhere** (no gradient,
  eval mode, in no optimiser).
- The identity classifier C is updated only by ``L_cls^C = CE(C(f ⊙ S(f_m)), l_f)`` (eq. 4);
  the generator step uses ``L_cls^G = CE(C(f_m ⊙ S(f_m)), l_f)`` (eq. 5) with C frozen and in
  eval mode, so a generator step leaves C's parameters and buffers unchanged.
- ``L_rec = ‖f ⊙ S(f_m) − f_m ⊙ S(f_m)‖₁`` (eq. 6), averaged over elements like the cycle loss.
- ``L_G = L_adv(G_FM, D_M) + L_adv(G_MF, D_F) + λ1 L_cyc + λ2 (L_cls^G + L_rec)`` (eqs. 1, 7),
  least-squares adversarial terms, λ1 = 10, λ2 ramped linearly 0 → 1 over the first
  ``ramp_fraction`` of training; the learning rate is constant, then decays linearly to 0
  over the last ``decay_fraction`` (paper: 100K and 350K of 500K steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mfr.errors import ConfigError
from mfr.nets.cyclegan import PatchDiscriminator, ResnetGenerator, init_weights
from mfr.nets.unet import MaskSegmenter
from mfr.train.image_pool import ImagePool
from mfr.train.precision import use_bf16

GAN_FORMAT = "mfr-iamgan"
GAN_VERSION = 1
VARIANTS = ("full", "no_ip", "no_rec", "no_cls")


@dataclass
class GanOptions:
    """IAMGAN options (``mfr/configs/gan-*.yaml``)."""

    variant: str = "full"  # full | no_ip (plain CycleGAN) | no_rec | no_cls
    size: int = 64
    ngf: int = 32
    n_blocks: int = 6
    n_down: int = 2
    ndf: int = 32
    d_layers: int = 3
    steps: int = 4000
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cyc: float = 10.0
    lambda_ip: float = 1.0  # the final value of λ2
    ramp_fraction: float = 0.2  # λ2 reaches lambda_ip after this fraction of the steps
    decay_fraction: float = 0.3  # the lr decays linearly to 0 over this last fraction
    pool_size: int = 50
    segmenter: str = "runs/seg-cpu/best.pt"
    classifier: str = "small"  # "small" (a compact convnet) or a mfr.nets.backbones name
    classifier_dim: int = 128
    classifier_width: int = 32
    f_root: str = ""  # aligned full faces ROOT/<id>/<img>; "" = runs/data/lfw-112 or LFW crops
    f_crop: float = 1.0  # centre crop fraction for F (e.g. 0.55 for raw 250x250 LFW)
    f_exclude: str = "lfw/exclude-mfr2-overlap.txt"
    f_min_images: int = 2  # C's classes: F identities with at least this many images
    f_max_identities: int = 0  # 0 = all
    m_root: str = "masked-real"
    m_max_images: int = 0
    flip: bool = True
    seed: int = 0
    threads: int = 0
    bf16: bool = False  # bf16 autocast for the forward passes (~2x on AMX CPUs); losses in fp32
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 500
    num_samples: int = 6
    out: str = "runs/gan"

    def validate(self, source: str) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"{source}: variant must be one of {', '.join(VARIANTS)}")
        if self.size % 2 ** max(self.n_down, 1):
            raise ConfigError(f"{source}: size {self.size} must be divisible by 2**n_down")
        for name in ("size", "ngf", "ndf", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: option '{name}' must be >= 1")
        for name in ("ramp_fraction", "decay_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{source}: option '{name}' must be in [0, 1]")

    @property
    def uses_ip(self) -> bool:
        return self.variant != "no_ip"

    @property
    def uses_cls(self) -> bool:
        return self.variant in ("full", "no_rec")

    @property
    def uses_rec(self) -> bool:
        return self.variant in ("full", "no_cls")


# --------------------------------------------------------------------------- loss terms


def lsgan_d_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: ½[(D(real) − 1)² + D(fake)²], averaged."""
    return 0.5 * ((pred_real.float() - 1).pow(2).mean() + pred_fake.float().pow(2).mean())


def lsgan_g_loss(pred_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: (D(G(x)) − 1)², averaged (L_adv for G)."""
    return (pred_fake.float() - 1).pow(2).mean()


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 cycle-consistency term ‖G'(G(x)) − x‖₁ (mean over elements)."""
    return (reconstructed - real).abs().mean()


def rec_loss(full: torch.Tensor, generated: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ‖f ⊙ S(f_m) − f_m ⊙ S(f_m)‖₁ (mean over elements)."""
    return (full * keep - generated * keep).abs().mean()


def cls_loss(classifier: nn.Module, images: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor):
    """Eqs. 4/5: cross-entropy of C on the out-of-mask region ``images ⊙ keep``."""
    return F.cross_entropy(classifier(images * keep).float(), labels)


def lambda_ip_at(step: int, opts: GanOptions) -> float:
    """λ2 at ``step`` (0-based): linear 0 → lambda_ip over the first ramp_fraction, then flat."""
    ramp = opts.ramp_fraction * opts.steps
    if ramp <= 0:
        return opts.lambda_ip
    return opts.lambda_ip * min(1.0, step / ramp)


def lr_at(step: int, opts: GanOptions, base: float | None = None) -> float:
    """Learning rate at ``step``: constant, then linear to 0 over the last decay_fraction."""
    base = opts.lr if base is None else base
    decay_start = (1.0 - opts.decay_fraction) * opts.steps
    if step < decay_start:
        return base
    return base * max(0.0, (opts.steps - step) / max(opts.steps - decay_start, 1e-12))


# --------------------------------------------------------------------------- identity classifier


class SmallClassifier(nn.Module):
    """A compact convnet + linear identity head (CPU scale and tests; no batch norm)."""

    def __init__(self, num_classes: int, width: int = 32, dim: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(8, cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed = nn.Linear(cin, dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.leaky_relu(self.embed(self.features(x)), 0.2))


class BackboneClassifier(nn.Module):
    """A recognizer backbone (``mfr.nets.backbones``) + a linear layer over the F identities."""

    def __init__(self, name: str, num_classes: int, dim: int, size: int):
        super().__init__()
        from mfr.nets.backbones import build_backbone

        self.backbone = build_backbone(name, dim, size)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


def build_classifier(opts: GanOptions, num_classes: int) -> nn.Module:
    if opts.classifier == "small":
        return SmallClassifier(num_classes, opts.classifier_width, opts.classifier_dim)
    try:
        return BackboneClassifier(opts.classifier, num_classes, opts.classifier_dim, opts.size)
    except ImportError:
        raise ConfigError(
            f"classifier '{opts.classifier}': mfr.nets.backbones is not available"
        ) from None


# --------------------------------------------------------------------------- the model


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def freeze_segmenter(segmenter: MaskSegmenter) -> MaskSegmenter:
    """S is fixed: eval mode, no gradients (and it is never given to an optimiser)."""
    segmenter.eval()
    _set_requires_grad([segmenter], False)
    return segmenter


class IAMGANModel:
    """G_F→M, G_M→F, D_F, D_M (+ S frozen and C for the identity-preserve variants)."""

    def __init__(self, opts: GanOptions, num_classes: int, segmenter: MaskSegmenter | None):
        self.opts = opts
        self._bf16: bool | None = None
        self.num_classes = num_classes
        if opts.uses_ip and segmenter is None:
            raise ConfigError(f"variant '{opts.variant}' needs a segmenter (option 'segmenter')")
        self.G_FM = ResnetGenerator(3, opts.ngf, opts.n_blocks, opts.n_down)
        self.G_MF = ResnetGenerator(3, opts.ngf, opts.n_blocks, opts.n_down)
        self.D_F = PatchDiscriminator(3, opts.ndf, opts.d_layers)
        self.D_M = PatchDiscriminator(3, opts.ndf, opts.d_layers)
        for net in (self.G_FM, self.G_MF, self.D_F, self.D_M):
            init_weights(net)
        self.S = freeze_segmenter(segmenter) if segmenter is not None else None
        self.C = build_classifier(opts, num_classes) if opts.uses_cls else None
        betas = (opts.beta1, opts.beta2)
        self.optimizer_G = torch.optim.Adam(
            list(self.G_FM.parameters()) + list(self.G_MF.parameters()), lr=opts.lr, betas=betas
        )
        self.optimizer_D = torch.optim.Adam(
            list(self.D_F.parameters()) + list(self.D_M.parameters()), lr=opts.lr, betas=betas
        )
        self.optimizer_C = (
            torch.optim.Adam(self.C.parameters(), lr=opts.lr, betas=betas) if self.C else None
        )
        self.pool_fake_M = ImagePool(opts.pool_size, seed=opts.seed + 1)
        self.pool_fake_F = ImagePool(opts.pool_size, seed=opts.seed + 2)
        self.losses: dict[str, float] = {}

    # -- inputs and forward
    def set_input(self, full: torch.Tensor, labels: torch.Tensor, masked: torch.Tensor) -> None:
        """``full`` (f, N x 3 x H x W in [-1, 1]), its identity ``labels``, unpaired ``masked``."""
        self.real_F, self.labels, self.real_M = full, labels, masked

    def autocast(self) -> torch.autocast:
        """bf16 autocast for the forward passes when ``bf16`` is set (a no-op otherwise)."""
        device = self.real_F.device.type
        if self._bf16 is None:  # decided once, on the first forward pass's device
            self._bf16 = use_bf16(self.opts.bf16, device)
        return torch.autocast(device, torch.bfloat16, enabled=self._bf16)

    def forward(self) -> None:
        # Images stay fp32 between the networks (the pools and the losses see fp32).
        with self.autocast():
            self.fake_M = self.G_FM(self.real_F).float()  # f_m
            self.rec_F = self.G_MF(self.fake_M).float()
            self.fake_F = self.G_MF(self.real_M).float()
            self.rec_M = self.G_FM(self.fake_F).float()
            self.keep = self.S.keep_map(self.fake_M.detach()) if self.opts.uses_ip else None
        if self.keep is not None:
            self.keep = self.keep.float()

    # -- the three updates
    def generator_loss(self, lambda_ip: float) -> torch.Tensor:
        o = self.opts
        adv = lsgan_g_loss(self.D_M(self.fake_M)) + lsgan_g_loss(self.D_F(self.fake_F))
        cyc = cycle_loss(self.rec_F, self.real_F) + cycle_loss(self.rec_M, self.real_M)
        total = adv + o.lambda_cyc * cyc
        self.losses.update(G_adv=adv.item(), cyc=cyc.item())
        ip = torch.zeros(())
        if o.uses_cls:
            cls_g = cls_loss(self.C, self.fake_M, self.keep, self.labels)
            ip = ip + cls_g
            self.losses["cls_G"] = cls_g.item()
        if o.uses_rec:
            rec = rec_loss(self.real_F, self.fake_M, self.keep)
            ip = ip + rec
            self.losses["rec"] = rec.item()
        return total + lambda_ip * ip if o.uses_ip else total

    def optimize_generators(self, lambda_ip: float) -> None:
        frozen = [self.D_F, self.D_M] + ([self.C] if self.C is not None else [])
        _set_requires_grad(frozen, False)
        if self.C is not None:
            self.C.eval()  # no buffer updates from the generator's pass through C
        self.optimizer_G.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.generator_loss(lambda_ip)
        loss.backward()
        self.optimizer_G.step()
        self.losses["G"] = loss.item()
        _set_requires_grad(frozen, True)

    def optimize_classifier(self) -> None:
        """C learns from L_cls^C only (eq. 4) on f ⊙ S(f_m); nothing else reaches it.

        With batch size 1 (the paper's) batch-norm statistics cannot be estimated, so C then
        trains with its normalisation layers in eval mode.
        """
        self.C.train(self.real_F.shape[0] > 1)
        self.optimizer_C.zero_grad(set_to_none=True)
        with self.autocast():
            loss = cls_loss(self.C, self.real_F, self.keep, self.labels)
        loss.backward()
        self.optimizer_C.step()
        self.losses["cls_C"] = loss.item()

    def optimize_discriminators(self) -> None:
        self.optimizer_D.zero_grad(set_to_none=True)
        fake_M = self.pool_fake_M.query(self.fake_M.detach())
        fake_F = self.pool_fake_F.query(self.fake_F.detach())
        with self.autocast():
            loss_M = lsgan_d_loss(self.D_M(self.real_M), self.D_M(fake_M))
            loss_F = lsgan_d_loss(self.D_F(self.real_F), self.D_F(fake_F))
        (loss_M + loss_F).backward()
        self.optimizer_D.step()
        self.losses.update(D_M=loss_M.item(), D_F=loss_F.item())

    def set_learning_rate(self, step: int) -> float:
        lr = lr_at(step, self.opts)
        for optimizer in (self.optimizer_G, self.optimizer_D, self.optimizer_C):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr
        return lr

    def optimize_parameters(self, step: int) -> dict[str, float]:
        """One training step (0-based ``step`` sets λ2 and the learning rate)."""
        self.losses = {"lr": self.set_learning_rate(step)}
        lambda_ip = lambda_ip_at(step, self.opts)
        self.losses["lambda_ip"] = lambda_ip
        self.forward()
        self.optimize_generators(lambda_ip)
        if self.C is not None:
            self.optimize_classifier()
        self.optimize_discriminators()
        return self.losses

    # -- persistence
    def networks(self) -> dict[str, nn.Module]:
        nets = {"G_FM": self.G_FM, "G_MF": self.G_MF, "D_F": self.D_F, "D_M": self.D_M}
        if self.C is not None:
            nets["C"] = self.C
        return nets

    def state_dict(self) -> dict:
        state = {name: net.state_dict() for name, net in self.networks().items()}
        state["optimizer_G"] = self.optimizer_G.state_dict()
        state["optimizer_D"] = self.optimizer_D.state_dict()
        if self.optimizer_C is not None:
            state["optimizer_C"] = self.optimizer_C.state_dict()
        state["pool_fake_M"] = self.pool_fake_M.state_dict()
        state["pool_fake_F"] = self.pool_fake_F.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.optimizer_G.load_state_dict(state["optimizer_G"])
        self.optimizer_D.load_state_dict(state["optimizer_D"])
        if self.optimizer_C is not None:
            self.optimizer_C.load_state_dict(state["optimizer_C"])
        self.pool_fake_M.load_state_dict(state["pool_fake_M"])
        self.pool_fake_F.load_state_dict(state["pool_fake_F"])
