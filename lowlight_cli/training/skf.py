"""SKF (Wu et al., CVPR 2023): semantic-aware knowledge guidance of CRNet; registers the method ``skf``.

The model side is :mod:`lowlight_cli.models.crnet_skf` (``crnet-s-skf``: CRNet with SKF's semantic
embedding, guided by a frozen segmentation network run on the low-light input). This module is
the training side: CRNet's supervised loss plus SKF's two semantic losses, and the discriminator
the adversarial one needs, trained by the step with its own optimiser inside the one fit loop.

Per step (:class:`SkfStep`), on a batch of labeled patches:

1. the enhancer runs once on the low patches (its segmentation network with it);
2. regions: the argmax class of the enhancer's own segmentation of the *low-light input*
   (``skf.regions=model``), or Felzenszwalb regions of the reference (``felzenszwalb``);
3. generator loss = CRNet's progressive loss (``lambda_ms``, ``lambda_final_l1``, as the ``crnet``
   method) + ``histogram`` x semantic colour histogram loss + ``adversarial`` x the LSGAN
   generator term (global + worst region), judged by the current discriminator without
   accumulating gradient in it;
4. before the enhancer's update the loop calls :meth:`SkfStep.before_update`, which
   back-propagates the LSGAN discriminator loss of this batch's (detached) output and references
   into the discriminator (under torchrun its gradients are all-reduced there, outside the
   section where interrupts are held); the loop then steps the enhancer's optimiser and calls
   :meth:`SkfStep.after_step`, which steps the discriminator's own Adam. Its weights and optimiser state are saved in the run's resumable state and
   restored on resume (the engine's step-state hook), so resume is exact.

Under torchrun every process keeps its own discriminator wrapped in DDP: its gradients are
averaged across processes, so all processes hold the same discriminator (the run log's
``ddp_checksums`` record shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError
from ..inference.precision import resolve_precision
from ..losses import discriminator_loss, generator_loss, progressive_loss, semantic_histogram_loss
from ..losses.adversarial import CANDIDATES, LOCAL_SHARE
from ..losses.histogram import RECOMMENDED_WEIGHT
from ..models.discriminator import PatchDiscriminator
from ..priors import FelzenszwalbRegions
from .methods import Method, StepContext, register_method
from .steps import StepOutput

REGION_SOURCES = ("model", "felzenszwalb")


@dataclass
class SkfLosses:
    """SKF's loss section (``skf``): CRNet's supervised loss, the two semantic losses, the discriminator.

    Attributes:
        lambda_ms: weight of the stage L1 of CRNet's progressive loss (as ``loss.lambda_ms``).
        lambda_final_l1: L1 on the final image (ours, as ``loss.lambda_final_l1``; 0 = the paper's).
        histogram: weight of the semantic colour histogram loss; 0.05 makes it 12-40% of an L1
            image loss in value (:data:`~lowlight_cli.losses.histogram.RECOMMENDED_WEIGHT`).
        histogram_stride: take the histograms over every ``n``-th pixel in each direction (1 = all):
            a histogram is a mean over pixels, so a regular subsample estimates it at ``1/n^2``
            of the cost (the term costs seconds per 256 px patch on a CPU).
        adversarial: weight of the generator's LSGAN term (see the method's doc for the choice).
        local_share: share of the worst-region term in both adversarial losses (authors: 0.1).
        candidates: largest regions per image among which the worst is taken (authors: 2).
        regions: ``model`` (the enhancer's own segmentation of the low input) or ``felzenszwalb``
            (unsupervised regions of the reference: the best-exposed view of the scene; the
            losses compare with it anyway, so nothing leaks into the enhancer's input).
        felzenszwalb_scale, felzenszwalb_sigma, felzenszwalb_min_size: of ``felzenszwalb`` regions.
        discriminator_width: channels of the patch discriminator's first conv.
        discriminator_lr, discriminator_betas: its Adam (constant learning rate).
    """

    lambda_ms: float = 1.0
    lambda_final_l1: float = 0.0
    histogram: float = RECOMMENDED_WEIGHT
    histogram_stride: int = 1
    adversarial: float = 0.01
    local_share: float = LOCAL_SHARE
    candidates: int = CANDIDATES
    regions: str = "model"
    felzenszwalb_scale: float = 100.0
    felzenszwalb_sigma: float = 0.5
    felzenszwalb_min_size: int = 300
    discriminator_width: int = 32
    discriminator_lr: float = 1e-4
    discriminator_betas: tuple = (0.5, 0.999)

    def validate(self, section: str) -> None:
        """Raise :class:`ConfigError` naming ``section.key`` for a value out of range."""
        for name in ("lambda_ms", "lambda_final_l1", "histogram", "adversarial"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name} must be >= 0")
        checks = [
            (self.histogram_stride >= 1, "histogram_stride must be >= 1"),
            (0.0 <= self.local_share <= 1.0, "local_share must be in [0, 1]"),
            (self.candidates >= 1, "candidates must be >= 1"),
            (self.regions in REGION_SOURCES, f"regions must be one of {', '.join(REGION_SOURCES)}, got {self.regions!r}"),
            (self.discriminator_width >= 1, "discriminator_width must be >= 1"),
            (self.discriminator_lr > 0, "discriminator_lr must be > 0"),
            (len(self.discriminator_betas) == 2 and all(0 <= b < 1 for b in self.discriminator_betas),
             "discriminator_betas must be two numbers in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{section}.{message}")


class SkfStep:
    """One SKF step: the enhancer's losses now, the discriminator's update in :meth:`after_step`.

    Args:
        losses: the validated ``skf`` section.
        context: the device, the run's seed and precision, whether under DDP.

    Attributes:
        discriminator: the :class:`~lowlight_cli.models.discriminator.PatchDiscriminator`
            (plain module; under DDP :attr:`trained` is its DDP wrapper).
        optimizer: its Adam.
    """

    def __init__(self, losses: SkfLosses, context: StepContext) -> None:
        self.losses = losses
        device = context.device
        with torch.random.fork_rng(devices=[]):  # initialised on the CPU from run.seed: the same on every process
            torch.manual_seed(context.config.run.seed)
            self.discriminator = PatchDiscriminator(width=losses.discriminator_width)
        self.discriminator = self.discriminator.to(device).train()
        self.trained: nn.Module = self.discriminator
        if context.distributed:  # gradients averaged over processes: one discriminator for the job
            self.trained = DistributedDataParallel(self.discriminator, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=losses.discriminator_lr,
                                          betas=tuple(losses.discriminator_betas))
        fp16 = resolve_precision(context.config.run.precision, device) == "fp16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        self.felzenszwalb = (FelzenszwalbRegions(losses.felzenszwalb_scale, losses.felzenszwalb_sigma, losses.felzenszwalb_min_size)
                             if losses.regions == "felzenszwalb" else None)
        self._pending: Tensor | None = None  # the discriminator's loss of the batch, until before_update
        self._stepping = False  # its gradients are in, until after_step steps it

    def region_labels(self, out: dict[str, Any], high: Tensor) -> Tensor:
        """``(B, H, W)`` int64 regions of the batch, as ``skf.regions`` says (no gradient).

        Args:
            out: the enhancer's ``forward_train`` output (``"probabilities"``: its segmentation of the input).
            high: ``(B, 3, H, W)`` the references.

        Raises:
            ConfigError: ``regions=model`` with an enhancer that runs no segmentation network.
        """
        if self.felzenszwalb is not None:
            return self.felzenszwalb(high)
        if "probabilities" not in out:
            raise ConfigError("skf.regions=model reads the enhancer's own segmentation, and this model runs none",
                              hint="train a model with SKF's plug-in (crnet-s-skf), or set skf.regions=felzenszwalb")
        return out["probabilities"].detach().argmax(dim=1)

    def __call__(self, student: nn.Module, batch: dict[str, Tensor]) -> StepOutput:
        w = self.losses
        mask = batch["labeled"]
        low, high = batch["low"][mask], batch["high"][mask]
        out = student(low)
        output = out["output"]
        total, terms = progressive_loss(output, out["stages"], high, lambda_ms=w.lambda_ms, lambda_final_l1=w.lambda_final_l1)
        if w.histogram or w.adversarial:
            regions = self.region_labels(out, high)
            if w.histogram:
                s = w.histogram_stride
                histogram = semantic_histogram_loss(output[..., ::s, ::s].float(), high[..., ::s, ::s].float(), regions[:, ::s, ::s])
                total = total + w.histogram * histogram
                terms["histogram"] = float(histogram.detach())
            if w.adversarial:
                adversarial = generator_loss(self.discriminator, output, regions, candidates=w.candidates, local_share=w.local_share)
                total = total + w.adversarial * adversarial
                terms["adversarial"] = float(adversarial.detach())
                # the discriminator's loss on this batch, back-propagated in before_update (its graph is its own)
                self._pending = discriminator_loss(self.trained, output.detach(), high, regions,
                                                   candidates=w.candidates, local_share=w.local_share)
                terms["discriminator"] = float(self._pending.detach())
        return StepOutput(total, {"loss": float(total.detach()), **terms})

    def before_update(self) -> None:
        """Back-propagate the discriminator's loss on this batch (its gradients, all-reduced under
        DDP); the output it judges is detached, so the enhancer's update does not change them."""
        if self._pending is None:
            return
        loss, self._pending = self._pending, None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._stepping = True

    def after_step(self) -> None:
        """Step the discriminator on the gradients :meth:`before_update` left (the batch the enhancer
        has just been updated on)."""
        if not self._stepping:
            return
        self._stepping = False
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The discriminator's weights and its optimiser's and scaler's state (saved with the run)."""
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave (strict)."""
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


SKF_DOC = """\
SKF (Wu et al., CVPR 2023), semantic-aware knowledge guidance, on CRNet: the model (crnet-s-skf; --model crnet-s trains it)
runs a frozen segmentation network (espnetv2-voc, for the paper's HRNet-W48) on the low-light
input, never the reference, and feeds its class probabilities and encoder features to semantic
embedding modules after CRNet's groups (zero-initialised: model.init_from=weights/crnet-s-lol
starts it as crnet-s-lol). Loss: CRNet's progressive loss (skf.lambda_ms, skf.lambda_final_l1,
as the crnet method) + skf.histogram (0.05) x semantic colour histogram loss (per region and
channel, soft 256-bin, total variation distance in [0, 1]; skf.histogram_stride=2 takes it over
every 2nd pixel, 4x cheaper) + skf.adversarial (0.01) x LSGAN generator loss, global + worst of
the 2 largest regions (local share 0.1). Regions: the argmax of the model's segmentation of the
low input (skf.regions=model), or unsupervised regions of the reference (felzenszwalb). The patch
discriminator trains with its own Adam (skf.discriminator_lr 1e-4, betas 0.5/0.999) after every
enhancer step, on the same batch; it is saved with the run's resumable state and resumes
exactly; under torchrun its gradients are averaged across processes. Neither it nor the
segmentation network is part of the exported weights.
Fixed from the authors' code: (a) their two region masks were one tensor (max_2_seg =
max_1_seg), so both "regions" were the second-largest class: ours are distinct regions; (b) the
generator was judged through a 62-channel input conv (image + segmentation) that the
discriminator never trained (it only saw 3-channel images): ours judges exactly the 3-channel
images the discriminator trains on. Also ours: the generator gets the local term too (theirs:
global only); raw LSGAN scores (theirs: through a sigmoid); their discriminator's learning rate
was the enhancer's / 1000, ours is its own setting; the adversarial weight (authors: 0.1 next
to three SSIM terms, ~0.03 per term) is 0.01 here: the runs are short fine-tunes scored by PSNR.
"""

register_method(Method(
    name="skf", summary="SKF: CRNet + semantic guidance, semantic histogram and adversarial losses, paired", doc=SKF_DOC,
    families=("crnet-skf",), default_model="crnet-s-skf", data="paired", teacher=False, losses=SkfLosses,
    build_step=lambda ctx: SkfStep(ctx.losses, ctx),
    # --model crnet-s means CRNet-s with the plug-in: the SKF variants are their own family, so that
    # plain crnet never picks weights that need a segmentation network
    variants={"crnet-s": "crnet-s-skf", "crnet-tiny": "crnet-tiny-skf"},
))
