"""Semi-LLIE: the semantic mean teacher of the Mamba backbone; registers method ``semi-llie``.

Li et al., "Semi-LLIE: Semi-supervised Contrastive Learning with Mamba-based Low-light Image
Enhancement" (arXiv 2409.16604; SPEC-systems.md). One step, on a batch of labeled pairs and
unlabeled low-light patches (``data: paired+unlabeled``):

- the student (:mod:`lowlight_cli.models.mamba`) runs once on the labeled patches and the
  *strong* views of the unlabeled ones (:mod:`lowlight_cli.data.views`);
- the EMA teacher (the one :class:`~lowlight_cli.training.ema.EMA`, decay up to 0.996) runs
  without gradient on the *weak* views, the unlabeled patches as they are;
- supervised: ``0.8 L1 + 0.2 MSE + 0.3 perceptual + 0.1 gradient-map L1`` against the references;
- unsupervised: ``L1(S(strong), T(weak))`` plus the semantic-aware contrastive loss
  (:mod:`lowlight_cli.losses.semantic_contrastive`): anchor ``S(strong)``, positive ``T(weak)``,
  negative the strong view itself (the authors' code: the image the student enhanced), in the
  embedding and class probabilities of a frozen recogniser;
- ``L = L_sup + w(t) L_unsup``, ``w(t) = 0.2 * exp(-5 (1 - t/T)^2)`` (MCMT's sigmoid ramp-up over
  ``consistency_rampup`` teacher updates).

Frozen networks: RAM (Swin-L, 5.6 GB) is not available offline, so the recogniser defaults to
SqueezeNet v1.0 (pooled fire9 features, 1000 ImageNet classes); the perceptual loss uses
vgg19-normalised (relu1_2, relu2_2, relu3_1 for the authors' VGG16 relu1_2, relu2_2, relu3_3).
Both take another registered network and weights by path or ``hf-hub:``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.views import StrongView, strong_view
from ..errors import ConfigError, UnknownNameError
from ..losses import gradient_map_l1_loss
from ..losses.features import PerceptualLoss
from ..losses.semantic_contrastive import CONTRAST_EPS, SemanticContrastiveLoss
from ..priors import prior_info
from .methods import Method, StepContext, register_method
from .steps import StepOutput, sigmoid_rampup

SUPERVISED = ("l1", "mse", "perceptual", "gradient")
UNSUPERVISED = ("unsupervised_l1", "semantic")


@dataclass
class SemiLLIELosses:
    """Semi-LLIE's loss section (``semi_llie``).

    Attributes:
        l1, mse, perceptual, gradient: supervised weights (paper: 0.8, 0.2, 0.3, 0.1).
        consistency: weight of the unsupervised part after the ramp-up (paper 0.2; 0: supervised
            only, the teacher and the recogniser are then not run).
        consistency_rampup: teacher updates (optimiser steps) over which the consistency weight
            rises along ``exp(-5 (1 - t/T)^2)`` (0: constant).
        unsupervised_l1: weight of ``L1(S(strong), T(weak))`` inside the unsupervised part, 1.
        semantic: weight of the semantic-aware contrastive loss inside it, 1.
        contrast_eps: ``eps`` of ``d(a, p) / (d(a, n) + eps)`` (the authors' 1e-7).
        recogniser: frozen recognition network (``lowlight priors``) of the semantic loss;
            ``squeezenet`` stands in for the paper's RAM.
        recogniser_weights: its weights (file, folder or ``hf-hub:``); empty: the default lookup.
        recogniser_size: side the recogniser's inputs are resized to (RAM: 384); 0: as they are.
        perceptual_net, perceptual_weights, perceptual_layers: the frozen feature network of the
            perceptual loss (mean over layers of the feature MSE of output and reference).
    A weight of 0 drops its term, and with it any frozen network only that term needs.
    """

    l1: float = 0.8
    mse: float = 0.2
    perceptual: float = 0.3
    gradient: float = 0.1
    consistency: float = 0.2
    consistency_rampup: int = 1000
    unsupervised_l1: float = 1.0
    semantic: float = 1.0
    contrast_eps: float = CONTRAST_EPS
    recogniser: str = "squeezenet"
    recogniser_weights: str = ""
    recogniser_size: int = 0
    perceptual_net: str = "vgg19-normalised"
    perceptual_weights: str = ""
    perceptual_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_1")

    @property
    def uses_recogniser(self) -> bool:
        return bool(self.consistency and self.semantic)

    def validate(self, section: str) -> None:
        """Raise :class:`ConfigError` naming ``section.key`` for a value that cannot train."""
        for name in (*SUPERVISED, "consistency", *UNSUPERVISED, "consistency_rampup", "recogniser_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name} must be >= 0, got {getattr(self, name)}")
        if not self.contrast_eps > 0:
            raise ConfigError(f"{section}.contrast_eps must be > 0, got {self.contrast_eps}")
        if not any(getattr(self, name) for name in SUPERVISED):
            raise ConfigError(f"{section}: every supervised weight ({', '.join(SUPERVISED)}) is 0",
                              hint="the mean teacher learns from the labeled pairs; keep at least one")
        if self.consistency and not any(getattr(self, name) for name in UNSUPERVISED):
            raise ConfigError(f"{section}.consistency is {self.consistency} but {section}.unsupervised_l1 and "
                              f"{section}.semantic are both 0", hint=f"set {section}.consistency=0 to train supervised only")
        if 0 < self.recogniser_size < 32:
            raise ConfigError(f"{section}.recogniser_size must be 0 (as is) or at least 32 px, got {self.recogniser_size}")
        if self.uses_recogniser:
            kind = _network_kind(section, "recogniser", self.recogniser)
            if kind != "recognition":
                raise ConfigError(f"{section}.recogniser {self.recogniser!r} is a {kind} network, not a recognition network",
                                  hint="lowlight priors lists them (squeezenet; RAM by path when you have it)")
        if self.perceptual:
            _network_kind(section, "perceptual_net", self.perceptual_net)
            layers = prior_info(self.perceptual_net).layers
            unknown = [name for name in self.perceptual_layers if name not in layers]
            if not self.perceptual_layers or unknown:
                what = f"has no layer {unknown[0]!r}" if unknown else "is empty"
                raise ConfigError(f"{section}.perceptual_layers {what} ({self.perceptual_net} has {', '.join(layers)})")


def _network_kind(section: str, key: str, name: str) -> str:
    try:
        return prior_info(name).kind
    except UnknownNameError as exc:
        raise ConfigError(f"{section}.{key}: {exc.message}", hint=exc.hint) from None


class SemiLLIEStep:
    """One Semi-LLIE step (see the module docstring) on a batch ``{"low", "high", "labeled"}``.

    Args:
        losses: the validated loss section.
        context: the EMA teacher, its forward and the frozen networks on the training device.
        view: the strong view's strengths (default: Semi-LLIE's).

    (The patch size is a multiple of the model's input multiple: ``TrainConfig.validate`` checks it.)
    """

    def __init__(self, losses: SemiLLIELosses, context: StepContext, view: StrongView = StrongView()) -> None:
        if context.ema is None:
            raise ValueError("semi-llie needs the EMA teacher the fit loop keeps for teacher methods")
        self.losses, self.ema, self.view = losses, context.ema, view
        self.teacher_forward = context.teacher_forward or context.ema.teacher.forward_train
        self.perceptual = None
        if losses.perceptual:
            network = context.frozen_network(losses.perceptual_net, losses.perceptual_weights)
            self.perceptual = PerceptualLoss(network, losses.perceptual_layers)
        self.semantic = None
        if losses.uses_recogniser:
            network = context.frozen_network(losses.recogniser, losses.recogniser_weights)
            self.semantic = SemanticContrastiveLoss(network, size=losses.recogniser_size, eps=losses.contrast_eps)

    def consistency_weight(self) -> float:
        """``consistency`` times the sigmoid ramp-up at the teacher's update count."""
        return self.losses.consistency * sigmoid_rampup(self.ema.updates, self.losses.consistency_rampup)

    def loss_terms(self, student: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The unweighted terms with a non-zero weight, by name, each differentiable in the student.

        Supervised (when the batch has labeled patches): ``l1``, ``mse``, ``perceptual``,
        ``gradient``. Unsupervised (when it has unlabeled ones and ``consistency`` > 0):
        ``unsupervised_l1`` and ``semantic`` (``semantic_embedding`` + ``semantic_probabilities``,
        also returned).
        """
        w = self.losses
        low, labeled = batch["low"], batch["labeled"]
        weak = low[~labeled] if w.consistency else low[:0]
        strong = strong_view(weak, self.view) if weak.shape[0] else weak
        count = int(labeled.sum())
        enhanced = student(torch.cat([low[labeled], strong]))["output"]
        terms: dict[str, Tensor] = {}
        if count:
            output, target = enhanced[:count].float(), batch["high"][labeled].float()
            if w.l1:
                terms["l1"] = F.l1_loss(output, target)
            if w.mse:
                terms["mse"] = F.mse_loss(output, target)
            if self.perceptual is not None:
                terms["perceptual"] = self.perceptual(output, target)
            if w.gradient:
                terms["gradient"] = gradient_map_l1_loss(output, target)
        if weak.shape[0]:
            anchor = enhanced[count:]
            with torch.no_grad():
                positive = self.teacher_forward(weak)["output"]
            if w.unsupervised_l1:
                terms["unsupervised_l1"] = F.l1_loss(anchor.float(), positive.float())
            if self.semantic is not None:
                parts = self.semantic.terms(anchor, positive, strong)
                terms["semantic_embedding"], terms["semantic_probabilities"] = parts["embedding"], parts["probabilities"]
                terms["semantic"] = parts["embedding"] + parts["probabilities"]
        return terms

    def __call__(self, student: nn.Module, batch: dict[str, Tensor]) -> StepOutput:
        terms = self.loss_terms(student, batch)
        if not terms:
            raise ValueError("a semi-llie batch needs labeled patches, or unlabeled ones with semi_llie.consistency > 0")
        w = self.losses
        weight = self.consistency_weight()
        supervised = sum(getattr(w, n) * terms[n] for n in SUPERVISED if n in terms)
        unsupervised = sum(getattr(w, n) * terms[n] for n in UNSUPERVISED if n in terms)
        total = supervised + weight * unsupervised
        logged = {k: float(v.detach()) for k, v in terms.items()}
        logged.update(unlabeled=float((~batch["labeled"]).sum()), consistency_weight=weight)
        return StepOutput(total, {"loss": float(total.detach()), **logged})


SEMI_LLIE_DOC = """\
Semi-LLIE (Li et al., arXiv 2409.16604): the Mamba backbone trained as a mean teacher with
semantic-aware contrast, on a labeled share of the pairs (--labeled-frac, 0.1 here) and the other
training images without their references. Each step runs the student once on data.batch_size
labeled patches and the strong views of data.unlabeled_batch_size unlabeled ones (colour jitter
0.5/0.5/0.5/0.25 with p 0.8, grayscale p 0.2, Gaussian blur p 0.5, drawn per image); the EMA
teacher (teacher.ema_decay 0.996) sees the unlabeled patches as they are (the weak view).
Loss: supervised 0.8 L1 + 0.2 MSE + 0.3 perceptual + 0.1 gradient-map L1 on the labeled patches,
plus w(t) [L1(S(strong), T(weak)) + semantic], w rising to semi_llie.consistency (0.2) along
the sigmoid ramp-up over semi_llie.consistency_rampup steps. semantic = d(a,p)/(d(a,n)+eps) with
anchor S(strong), positive T(weak), negative the strong view, d the mean absolute difference,
summed over the recogniser's embedding and class probabilities; it back-propagates into the
student (the authors' release computes it under no_grad and trains nothing through it).
Frozen networks: the paper's RAM (Swin-L, 5.6 GB) is replaced by squeezenet (SqueezeNet v1.0
ImageNet: pooled fire9 features, 1000 class probabilities; semi_llie.recogniser and
.recogniser_weights take RAM or another recognition network by path); the perceptual loss reads
vgg19-normalised relu1_2, relu2_2, relu3_1 (the authors' VGG16 relu3_3 becomes relu3_1). They are
never saved with the model. semi_llie.consistency=0 with data.unlabeled_batch_size=0 trains the
same recipe supervised only. The exported weights are the teacher's.
"""

register_method(Method(
    name="semi-llie",
    title="Semi-LLIE",
    summary="Semi-LLIE: Mamba backbone, mean teacher with strong/weak views and a semantic contrastive loss",
    doc=SEMI_LLIE_DOC, families=("semi-llie",), default_model="semi-llie-s", data="paired+unlabeled", teacher=True,
    losses=SemiLLIELosses, build_step=lambda context: SemiLLIEStep(context.losses, context),
    defaults={"data.labeled_frac": 0.1, "teacher.ema_decay": 0.996, "optim.lr": 2e-4,
              "data.batch_size": 8, "data.unlabeled_batch_size": 8, "data.patch_size": 128,
              "optim.milestones": (50, 75), "optim.gamma": 0.1},
))
