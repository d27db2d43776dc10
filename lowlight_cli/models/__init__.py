"""Models: the registry, the factories and ``create_model``.

Each family module defines its classes; the named sizes are registered here, explicitly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError, UsageError, WeightsNotFoundError
from .base import EnhancementModel, ModelInfo, PretrainedWeights
from .checkpoint import load_state_dict_file, load_weights_strict, read_config, save_checkpoint
from .classical import CLAHE, GammaCurve
from .crnet import PAPER as CRNET_PAPER
from .crnet import CRNet, CRNetConfig
from .registry import MODELS, ModelEntry, list_models, model_info, register_model

__all__ = [
    "CLAHE",
    "CRNet",
    "CRNetConfig",
    "EnhancementModel",
    "GammaCurve",
    "MODELS",
    "ModelEntry",
    "ModelInfo",
    "PretrainedWeights",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_frozen_networks",
    "model_info",
    "save_checkpoint",
]

SEED = 0  # seed of ``pretrained=False`` initialisations, so random-weight runs are reproducible

register_model(
    ModelInfo(
        name="crnet",
        listed_macs=6_941_704_192,
        family="crnet",
        description="CRNet, paper size (C=32, 4 groups x 5 blocks x 2 recurrences); GPU model",
        input_multiple=1,
        default_tile=512,
        memory_per_pixel=1600,
        paper=CRNET_PAPER,
        # the best trained CRNet weights bundled (highest LOL test PSNR in the family; a test checks
        # it): the paper-size network has had too little training for its own to be the default.
        # The LOL-v1 leaderboard checkpoint, not the photo default (crnet-curve-dn's)
        bundled_weights="crnet-curve-dn-lol-bench",
    ),
    CRNet,
)
register_model(
    ModelInfo(
        name="crnet-s",
        listed_macs=150_155_456,
        family="crnet",
        description="CRNet small: C=32, 2 groups x 3 blocks, body at 1/4 resolution, global context; CPU-friendly",
        input_multiple=4,
        default_tile=1024,
        memory_per_pixel=400,
        paper=CRNET_PAPER,
        bundled_weights="crnet-s-lol",
        # fp32 under --precision auto: with enhance's 1024-px tiles bf16 was slower on an AMX Xeon
        # (12 MP 6.85 s against 5.29 s; docs/performance.md); --precision bf16 still runs it
        cpu_bf16=False,
    ),
    CRNet,
    groups=2,
    blocks=3,
    downscale=4,
    global_context=True,
)
# the photo model's architecture; crnet-curve-dn is it plus the refinement stage
CRNET_CURVE = dict(groups=2, blocks=3, downscale=8, global_context=True, output="curve",
                   padding_mode="replicate", gate_correction=True)
register_model(
    ModelInfo(
        name="crnet-curve",
        listed_macs=46_745_792,
        family="crnet",
        description="CRNet photo model (ours): body at 1/8 resolution, global context, curve output that never darkens or clips",
        input_multiple=8,
        default_tile=2048,
        memory_per_pixel=160,
        paper=CRNET_PAPER,
        bundled_weights="crnet-curve-lol",
        cpu_bf16=True,  # LOL-v1 test 18.29 / 0.6979 in bf16 against 18.29 / 0.6981; photo sets within 0.01 dB
        enhance_auto_curve_scale=True,  # the body at 1/16 above 8 MP: the photo model's speed (README "Speed")
    ),
    CRNet,
    **CRNET_CURVE,
)
register_model(
    ModelInfo(
        name="crnet-curve-dn",
        listed_macs=55_445_696,
        family="crnet",
        description="crnet-curve + a denoising stage at 1/2 resolution on its output (ours)",
        input_multiple=8,
        default_tile=2048,
        memory_per_pixel=200,
        paper=CRNET_PAPER,
        bundled_weights="crnet-curve-dn-lol",
        cpu_bf16=True,  # LOL-v1 test and photo sets within 0.02 dB of fp32 (README "Speed")
        # 12 MP in 5.6 s instead of 7.7 s on a 2-core AVX2 CPU, 0.04-0.09 dB on 4x-enlarged photos
        enhance_auto_curve_scale=True,
        # the photo's own colour: 0.5-1.2 dB better on every photo set with references, NIQE level (LOL's casts prefer the model's)
        enhance_colour="input",
        # blacks lowered to a photo's: 0.7-1.1 dB better on the photo sets with references, NIQE level or lower
        # (scripts/black_point_trial.py --round 3; LOL's references keep lifted shadows, so evaluate keeps the model's)
        enhance_blacks="keep",
    ),
    CRNet,
    **CRNET_CURVE,
    refine_channels=16,
    refine_layers=2,
)
register_model(
    ModelInfo(
        name="crnet-tiny",
        listed_macs=61_898_752,
        family="crnet",
        description="CRNet test size (C=8, 2 groups x 2 blocks x 1 recurrence)",
        input_multiple=1,
        default_tile=256,
        memory_per_pixel=400,
        paper=CRNET_PAPER,
        tags=("test",),
    ),
    CRNet,
    channels=8,
    groups=2,
    blocks=2,
    recurrences=1,
)
register_model(
    ModelInfo(
        name="gamma",
        listed_macs=0,
        family="classical",
        description="fixed tone curve y = x^(1/2.2); no weights, per pixel",
        tile_exact=True,
        receptive_radius=0,
        default_tile=2048,
        memory_per_pixel=64,
        needs_weights=False,
        paper="power-law tone curve",
    ),
    GammaCurve,
)
register_model(
    ModelInfo(
        name="clahe",
        listed_macs=0,
        family="classical",
        description="CLAHE on CIE Lab lightness (OpenCV); no weights",
        default_tile=0,
        memory_per_pixel=64,
        needs_weights=False,
        exportable=False,
        export_note="CLAHE is an OpenCV routine, not a torch graph",
        paper="Zuiderveld, Contrast Limited Adaptive Histogram Equalization, Graphics Gems IV, 1994",
    ),
    CLAHE,
)

from . import dce  # noqa: E402,F401 - the DCE-Net family registers its own sizes (STYLE.md)
from . import mamba  # noqa: E402,F401 - Semi-LLIE's Mamba backbone registers its own sizes
from . import crnet_skf  # noqa: E402,F401 - CRNet with SKF's semantic guidance registers its own sizes


def load_frozen_networks(model: EnhancementModel, *, stand_in: bool = False) -> dict[str, str]:
    """Give ``model`` the trained weights of the frozen networks it runs (:meth:`EnhancementModel.frozen_networks`).

    Each is built by :func:`~lowlight_cli.priors.create_prior` under its registered name, so it is
    found as ``lowlight priors`` finds it (``$LOWLIGHT_NETS``, the cache, ``../shared/nets``);
    with ``stand_in`` a seeded random stand-in of the same architecture instead (tests, smoke runs).
    A model without frozen networks is left as it is.

    Returns:
        ``{network name: weights file, or "stand-in: seeded random weights"}``.

    Raises:
        WeightsNotFoundError, WeightsIntegrityError, CheckpointError: as ``create_prior``.
    """
    from ..priors import create_prior

    sources = {}
    for slot, current in model.frozen_networks().items():
        name = current.info.name
        network = create_prior(name, stand_in=stand_in)
        model.attach_frozen_network(slot, network)
        sources[name] = "stand-in: seeded random weights" if stand_in else str(network.weights_path)
    return sources


def load_checkpoint(
    folder: str | Path, *, expected_family: str | None = None, frozen_networks: dict | None = None
) -> EnhancementModel:
    """Rebuild a model from a checkpoint folder (strict, no pickle), in eval mode.

    Args:
        folder: holds ``config.json`` and ``model.safetensors``.
        expected_family: when given, the checkpoint's architecture must belong to this family.
        frozen_networks: for a model that runs frozen networks (never stored in its checkpoint),
            the networks to use by slot, e.g. another model's ``frozen_networks()``; by default
            their trained weights are found by :func:`load_frozen_networks`.

    Raises:
        CheckpointError: malformed folder, unknown architecture, family or tensor mismatch.
        WeightsIntegrityError: ``model.safetensors`` does not match the sha256 ``config.json`` records.
        WeightsNotFoundError: the model's frozen networks have no weights here.
    """
    from ..hub import verify_checkpoint  # the hub pulls in huggingface_hub; load it only when needed

    folder = Path(folder)
    verify_checkpoint(folder)  # config.json read and checked, then the weights against its sha256
    return _load_verified(folder, expected_family=expected_family, frozen_networks=frozen_networks)


def _load_verified(folder: Path, *, expected_family: str | None, frozen_networks: dict | None) -> EnhancementModel:
    """:func:`load_checkpoint` of a folder whose files were checked already (``resolve_weights``
    verifies what it returns: hashing the weights again would only cost start-up time)."""
    config = read_config(folder)
    arch = config["architecture"]
    if arch not in MODELS:
        raise CheckpointError(f"{folder}/config.json names unknown architecture {arch!r}")
    entry = MODELS.get(arch)
    if expected_family is not None and entry.info.family != expected_family:
        raise CheckpointError(
            f"{folder} holds a {arch!r} checkpoint (family {entry.info.family}), not a {expected_family} model",
            hint=f"it is a {arch}: use --model {arch}",
        )
    kwargs = config.get("kwargs", {})
    try:
        with torch.random.fork_rng(devices=[]):  # the random init the weights replace leaves the caller's seed alone
            model = entry.build(**kwargs)
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{folder}/config.json has kwargs {arch!r} does not take: {exc}") from None
    load_weights_strict(model, load_state_dict_file(folder / "model.safetensors"), str(folder))
    if frozen_networks is None:
        load_frozen_networks(model)
    else:
        for slot, network in frozen_networks.items():
            model.attach_frozen_network(slot, network)
    model.checkpoint_dir = folder  # type: ignore[attr-defined]
    model.provenance = config.get("provenance", {})  # type: ignore[attr-defined]
    return model.eval()


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | Path | None = None,
    **overrides: object,
) -> EnhancementModel:
    """Build a registered model, with trained weights unless ``pretrained=False``.

    Args:
        name: registered name (``lowlight models`` lists them). Some names run by default the
            weights of another architecture of their family: ``crnet`` (the paper-size CRNet) runs
            the family's weights with the best LOL test score, ``crnet-curve-dn-lol-bench``, so
            ``create_model("crnet")`` is a ``crnet-curve-dn`` (``.info.name`` says which), while
            ``pretrained=False`` builds the paper-size network and ``weights="crnet-lol"`` loads
            its own, partly trained weights.
        pretrained: load trained weights (explicit ``weights`` > bundled > cache > Hub), and
            those of the frozen networks the model runs (:func:`load_frozen_networks`). Models
            that need none (``gamma``, ``clahe``) ignore it. ``False`` gives a seeded random
            initialisation, frozen networks included (seeded stand-ins), reproducible but
            meaningless as an enhancer.
        weights: a checkpoint folder, a bundled weights name or ``hf-hub:org/repo@revision``, of
            ``name``'s family: the model built is the checkpoint's own architecture
            (``create_model("crnet-s", weights="crnet-curve-dn-lol")`` is a ``crnet-curve-dn``;
            ``.info.name`` says which).
        overrides: architecture kwargs for a random initialisation (not with ``weights``).

    Returns:
        The model in eval mode on the CPU.

    Raises:
        UnknownNameError, WeightsNotFoundError, WeightsIntegrityError, CheckpointError.
    """
    entry = MODELS.get(name)
    if weights is not None and not pretrained:
        raise UsageError("weights and pretrained=False (--weights and --no-pretrained) contradict each other", hint="drop one of them")
    if not entry.info.needs_weights:
        if weights is not None:
            raise UsageError(f"model {name!r} takes no weights", hint=f"drop --weights, or name the model the weights are for "
                                                                       f"(without --model, --weights picks it)")
        return entry.build(**overrides).eval()
    if not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return entry.build(**overrides).eval()
    if overrides:
        raise UsageError(f"architecture overrides ({', '.join(sorted(overrides))}) apply only to models built without trained weights",
                         hint="pass pretrained=False (--no-pretrained), or drop the overrides to load the trained weights")
    from ..hub import HubRef, resolve_weights  # the hub pulls in huggingface_hub; load it only when needed

    pre = entry.info.pretrained
    hub_ref = HubRef(pre.hub_id, pre.revision) if pre else None
    try:
        folder = resolve_weights(
            name,
            weights,
            hub_ref=hub_ref,
            expected_sha256=pre.sha256 if pre else None,
            bundled_name=entry.info.bundled_weights or None,
        )
    except WeightsNotFoundError as exc:
        if weights is None and (others := _models_with_bundled_weights()):
            exc.hint = f"{exc.hint}; models with bundled weights: {', '.join(others)}"
        from .official import importable_architectures  # the families `lowlight import` converts

        if weights is None and name in importable_architectures():
            exc.hint = f"{exc.hint}; the authors' checkpoint: lowlight import FILE.pth --arch {name} -o DIR, then --weights DIR"
        raise
    return _load_verified(folder, expected_family=entry.info.family, frozen_networks=None)  # verified by resolve_weights


def _models_with_bundled_weights() -> list[str]:
    from ..hub import bundled_weights_dir

    root = bundled_weights_dir()
    if root is None:
        return []
    return [
        n
        for n in list_models()
        if MODELS.get(n).info.needs_weights and (root / (MODELS.get(n).info.bundled_weights or n) / "config.json").is_file()
    ]
