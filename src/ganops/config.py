"""Typed, frozen configuration: one section per stage, loaded from `params.yaml`.

Loading rejects unknown keys and wrong types and names the key (`train.epcohs: unknown key`), so a typo
fails before any work starts. The library never reads `params.yaml` itself: entry points call
`load_params` and pass the sections on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ganops import metric_specs
from ganops.archs import (
    SMALL_DATA_IMAGES,
    Augmentation,
    auto_arch,
    auto_augment,
    dcgan_size_problem,
    is_convolutional,
    resnet_size_problem,
)
from ganops.errors import GanopsError


class _Section(BaseModel):
    # strict: "3" is not an int and "fast" is not a float; extra="forbid": typos are errors.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(_Section):
    source: Literal["digits", "idx", "npz", "folder", "csv"] = "digits"
    path: str | None = None  # image file or folder (relative to the working directory); unused for digits
    labels_path: str | None = None  # idx: the label file (optional)
    label_column: str | None = "label"  # csv: the label column's header; null when the table is unlabelled
    image_size: int = Field(8, ge=4, le=512)  # square side after resizing (PIL bicubic)
    channels: Literal[1, 3] = 1
    convert_mixed_channels: bool = False  # folder: convert a mix of gray and RGB files instead of failing
    skip_unreadable: bool = False  # folder: skip (and report) files that cannot be decoded instead of failing
    # Shares of the images held out: validation tunes (training monitor, sweeps), test reports (evaluate,
    # the promotion gate). Train keeps the rest.
    validation_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_images: int | None = Field(None, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _source_needs_path(self) -> DataConfig:
        if self.source != "digits" and not self.path:
            raise ValueError(f"data.path: required when data.source is {self.source!r}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"data.test_fraction: {self.test_fraction} plus data.validation_fraction "
                             f"{self.validation_fraction} leaves nothing to train on")
        if self.labels_path and self.source != "idx":
            raise ValueError(f"data.labels_path: only the idx source reads a label file, not {self.source!r}")
        return self


class ValidateConfig(_Section):
    min_rows: int = Field(100, ge=1)
    max_rows: int = Field(10_000_000, ge=1)
    max_duplicate_fraction: float = Field(0.05, ge=0.0, le=1.0)
    min_class_ratio: float = Field(0.5, ge=0.0, le=1.0)  # smallest class / largest class
    min_image_std: float = Field(1e-3, ge=0.0)  # pixel std ([-1, 1] scale) at or below this: a blank image
    min_holdout_rows: int = Field(1, ge=1)  # validation and test each need at least this many images

    @model_validator(mode="after")
    def _row_bounds_ordered(self) -> ValidateConfig:
        if self.min_rows > self.max_rows:
            raise ValueError(f"validate.min_rows: {self.min_rows} is above validate.max_rows ({self.max_rows})")
        return self


class FeaturizeConfig(_Section):
    """The feature space every distance is measured in (see `ganops.features.featurizer`)."""

    kind: Literal["auto", "inception"] = "auto"  # auto: a CNN classifier when labelled, else a CNN autoencoder
    inception_weights: str | None = None  # kind inception: a local Keras InceptionV3 no-top weights file
    feature_dim: int = Field(128, ge=16)  # width of the feature layer (auto kinds; inception has 2,048)
    epochs: int = Field(15, ge=1)
    min_steps: int = Field(1000, ge=0)  # more epochs when `epochs` would make fewer steps (small datasets)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)  # Adam's, decayed to 0 over the epochs (cosine)
    translation: float = Field(0.1, ge=0.0, lt=0.5)  # random shift in training, up to this fraction of the side
    zoom: float = Field(0.1, ge=0.0, lt=1.0)  # random zoom in training, up to this fraction in or out
    seed: int = 0

    @model_validator(mode="after")
    def _inception_needs_weights(self) -> FeaturizeConfig:
        if self.kind == "inception" and not self.inception_weights:
            raise ValueError("featurize.inception_weights: required when featurize.kind is 'inception' "
                             "(a local Keras InceptionV3 no-top weights file; nothing is downloaded)")
        if self.inception_weights and self.kind != "inception":
            raise ValueError(f"featurize.inception_weights: only read when featurize.kind is 'inception', "
                             f"not {self.kind!r}")
        return self


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """The train keys whose `null` means "this loss's default" (`LOSS_DEFAULTS`), resolved."""

    r1_weight: float
    d_dropout: float | None  # None: the arch's own (models.networks.ARCH_DROPOUT)
    d_learning_rate: float
    beta_1: float


_ADVERSARIAL = LossSettings(r1_weight=1.0, d_dropout=None, d_learning_rate=2e-4, beta_1=0.5)
# What `null` means for these keys, per loss; a value set in params.yaml wins. WGAN-GP (Gulrajani et al. 2017)
# needs a critic that is Lipschitz through its gradient penalty: no R1 on top, no dropout (it would make the
# critic a random function of its input, whose gradient the penalty cannot hold at 1), and Adam without
# momentum (β1 = 0, the paper's). The paper trains the critic 5 steps per generator step; here its D learning
# rate is 2× G's instead (TTUR, Heusel et al. 2017): one step stays one G and one D update, which the
# step-counted loop, checkpoints, lazy R1 and time budget all assume, and a step costs no more than another
# loss's.
# A null `r1_weight` under augmentation, in place of its loss's non-zero γ (`TrainConfig.loss_settings`).
AUGMENTED_R1_WEIGHT = 0.1
LOSS_DEFAULTS: dict[str, LossSettings] = {
    "nonsaturating": _ADVERSARIAL,
    "hinge": _ADVERSARIAL,
    "wgan-gp": LossSettings(r1_weight=0.0, d_dropout=0.0, d_learning_rate=4e-4, beta_1=0.0),
}


class TrainConfig(_Section):
    """The train stage. A checkpoint is resumed only when every key but `epochs`, `max_seconds` (which may
    grow) and the `monitor_*` keys matches the run that wrote it, and the data hash too."""

    # auto: by the images (`archs.auto_arch`: the dcgan for RGB from 16 px, where it measured best on small RGB
    # sets, else the mlp); dcgan: sides s·2^k (s 2–7, k ≥ 2); resnet (SNGAN/BigGAN-style): sides 4·2^k
    arch: Literal["auto", "dcgan", "mlp", "resnet"] = "auto"
    # class-conditional G (label embedding; resnet: class-conditional BatchNorm) and projection D; needs labels
    conditional: bool = False
    latent_dim: int = Field(64, ge=1)
    # dcgan width: filters of D's first conv, G's last hidden conv; resnet: G's 4×4 width is 8× this, halved
    # per block down to this, D mirrors it
    base_filters: int = Field(32, ge=1)
    loss: Literal["nonsaturating", "wgan-gp", "hinge"] = "nonsaturating"
    gp_weight: float = Field(10.0, ge=0.0)  # wgan-gp: gradient penalty weight λ
    # Keys defaulting to null take their loss's value (`LOSS_DEFAULTS`, read through `loss_settings()`).
    # R1 penalty γ on real images; 0 turns it off; null: 1 (0.1 when D's inputs are augmented), wgan-gp 0
    r1_weight: float | None = Field(None, ge=0.0)
    r1_every: int = Field(16, ge=1)  # lazy R1 (StyleGAN2): every this many steps, with γ scaled by it
    spectral_norm: bool = False  # spectral normalisation of D's conv, dense and class-embedding layers
    # ProGAN's minibatch standard deviation feature before D's head: makes a collapsed batch of fakes easy to spot
    minibatch_std: bool = False
    # null: wgan-gp 0; 0 when D's inputs are augmented; else the arch's own (dcgan 0.3, mlp and resnet 0)
    d_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    # DiffAugment on D's inputs; auto: color and translation on small data with a convolutional arch (`auto_augment`)
    augment: Literal["auto"] | list[Augmentation] = "auto"
    epochs: int = Field(600, ge=1)
    # per step, over all replicas; 16 beat 64 per CPU-second on the digits' mlp and MNIST's dcgan
    batch_size: int = Field(16, ge=1)
    g_learning_rate: float = Field(2e-4, gt=0.0)
    d_learning_rate: float | None = Field(None, gt=0.0)  # null: 2e-4, wgan-gp 4e-4
    beta_1: float | None = Field(None, ge=0.0, lt=1.0)  # Adam's, both optimizers; null: 0.5, wgan-gp 0
    beta_2: float = Field(0.999, ge=0.0, lt=1.0)
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    max_seconds: float | None = Field(150.0, gt=0.0)  # training-time budget (summed over resumes)
    checkpoint_every_steps: int = Field(200, ge=1)
    sample_every_epochs: int = Field(10, ge=1)
    # Quality monitor: Fréchet distance of the EMA generator's samples to the holdout (and its ratio to the
    # real-vs-real floor) in the featurizer's space, every this many epochs and at the end; null: off.
    monitor_every_epochs: int | None = Field(50, ge=1)
    monitor_samples: int = Field(500, ge=4)  # generated = holdout = floor sample count (capped by the splits)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"  # auto: devices.auto_precision
    jit_compile: bool | None = None  # XLA; null: on for GPUs, off for CPUs (slower there)
    # auto: multi_worker when TF_CONFIG names several tasks, else mirrored over several local devices, else one
    distribute: Literal["auto", "one_device", "mirrored", "multi_worker"] = "auto"
    seed: int = 0

    def loss_settings(self) -> LossSettings:
        """The per-loss keys, each as set or else its loss's default: the one place `null` is resolved. Under a
        resolved, non-empty `augment` (small data, a convolutional arch) D is regularised already, so two nulls
        resolve lighter:
        - `d_dropout` is 0: augmentation and dropout together left D at chance (a dcgan on 1,000 32×32×3
          shapes, 150 s, one seed: d_loss ≈ 1.35 and 97× the floor with dropout 0.3, 38× without);
        - a non-zero default R1 γ is `AUGMENTED_R1_WEIGHT`, 0.1: on the same set, 3 seeds side by side,
          median 24.5× the floor against γ = 1's 44.2× (README, "Small RGB folders")."""
        chosen = {field.name: getattr(self, field.name) for field in dataclasses.fields(LossSettings)}
        settings = dataclasses.replace(LOSS_DEFAULTS[self.loss],
                                       **{key: value for key, value in chosen.items() if value is not None})
        if isinstance(self.augment, list) and self.augment:
            if settings.d_dropout is None:
                settings = dataclasses.replace(settings, d_dropout=0.0)
            if self.r1_weight is None and settings.r1_weight:
                settings = dataclasses.replace(settings, r1_weight=AUGMENTED_R1_WEIGHT)
        return settings

    def for_data(self, train_count: int, image_shape: tuple[int, ...]) -> TrainConfig:
        """This config with `arch` chosen for images of this (height, width, channels) and then `augment` for this
        many training images, where they are `auto`: the one place they are resolved (a no-op on a resolved
        config)."""
        arch = auto_arch(image_shape[0], image_shape[2])[0] if self.arch == "auto" else self.arch
        augment = auto_augment(arch, train_count) if self.augment == "auto" else self.augment
        return self.model_copy(update={"arch": arch, "augment": augment})

    def describe_choice(self, train_count: int, image_shape: tuple[int, ...]) -> str:
        """One line on what `arch: auto` and `augment: auto` choose for this data, and why ("" when neither is
        auto)."""
        chosen = self.for_data(train_count, image_shape)
        said = []
        if self.arch == "auto":
            said.append(f"arch auto -> {chosen.arch} ({auto_arch(image_shape[0], image_shape[2])[1]})")
        if self.augment == "auto":
            why = ("auto leaves the mlp arch unaugmented" if not is_convolutional(chosen.arch) else
                   f"{'fewer' if train_count < SMALL_DATA_IMAGES else 'not fewer'} than {SMALL_DATA_IMAGES:,}")
            said.append(f"augment auto -> {', '.join(chosen.augment) or 'none'} ({train_count:,} training images; "
                        f"{why})")
        return "; ".join(said)

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_auto_or_known_once_each(cls, value: object) -> object:
        known = get_args(Augmentation)
        if value != "auto" and not (isinstance(value, list) and all(item in known for item in value)):
            raise ValueError(f"train.augment: expected auto or a list of {', '.join(known)}, got {value!r}")
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError(f"train.augment: lists a transformation twice ({value})")
        return value


class EvaluateConfig(_Section):
    # Generated = reference (test) = real-floor = baseline sample count, capped by the test and train splits.
    # Compare distances only at the same n: the Fréchet distance's bias shrinks as 1/n.
    num_samples: int = Field(10_000, ge=4)
    precision_recall_k: int = Field(3, ge=1)  # k of the k-NN manifolds (capped at num_samples − 1)
    kid_subset_size: int = Field(1000, ge=2)  # rows per side in each KID subset (capped at num_samples / 2)
    kid_subsets: int = Field(100, ge=2)  # KID is averaged over this many subsets; their spread is its error
    bootstrap_replicates: int = Field(200, ge=20)  # resamples behind every interval and the gate's paired test
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # of every interval
    # Conditional generators: the Classification Accuracy Score's two classifiers train at least this many steps
    # each (evaluation/cas.py); 0 leaves the score out.
    cas_steps: int = Field(1000, ge=0)
    seed: int = 0  # the reference draw, the baselines and the bootstrap: keep it to compare versions pairwise


class RegisterConfig(_Section):
    model_name: str = Field("gan-generator", min_length=1)
    alias: str = Field("candidate", min_length=1)  # set on every newly registered version
    champion_alias: str = Field("champion", min_length=1)  # what serving loads; moved only by the gate
    max_images_per_request: int = Field(1024, ge=1)  # images per serving request, summed over its rows

    @model_validator(mode="after")
    def _aliases_differ(self) -> RegisterConfig:
        if self.alias == self.champion_alias:
            raise ValueError(f"register.champion_alias: must differ from register.alias ({self.alias!r})")
        return self


class PromoteConfig(_Section):
    """The gate `ganops promote` applies before moving the champion alias to the candidate: a paired bootstrap
    on the same reference draws must find the candidate better with `confidence`, and its copying measure
    must not lie above the real floor's interval."""

    metric: str = Field("fd", min_length=1)  # one of metric_specs.GATE_METRICS; its direction is the registry's
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # share of paired replicates in which the candidate wins
    min_improvement: float = Field(0.0, ge=0.0)  # a replicate counts as a win only by more than this
    require_same_featurizer: bool = True  # distances from different featurizers are not comparable

    @field_validator("metric")
    @classmethod
    def _known_gate_metric(cls, value: str) -> str:
        return metric_specs.check_gate_metric(value)


class Params(_Section):
    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    featurize: FeaturizeConfig = FeaturizeConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    register_: RegisterConfig = Field(RegisterConfig(), alias="register")
    promote: PromoteConfig = PromoteConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _arch_fits_image_size(self) -> Params:
        size_problems = {"resnet": resnet_size_problem, "dcgan": dcgan_size_problem}
        check = size_problems.get(self.train.arch)
        problem = check(self.data.image_size) if check else None
        if problem:
            raise ValueError(problem)
        return self

    # `validate` and `register` would shadow pydantic methods, hence the trailing underscore.
    @property
    def validation(self) -> ValidateConfig:
        return self.validate_

    @property
    def registry(self) -> RegisterConfig:
        return self.register_


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "params"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "value_error":  # our own validators already name the key
        return str(error["ctx"]["error"])
    value = error.get("input")
    return f"{key}: {error['msg']} (got {value!r})"


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise GanopsError naming the first bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise GanopsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise GanopsError(f"{source}: {_describe(errors[0])}{more}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GanopsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise GanopsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_params(raw, source=str(path))
