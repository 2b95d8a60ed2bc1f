import pytest
import yaml

from ganops.archs import CONVOLUTIONAL_FROM_SIDE, SMALL_DATA_IMAGES
from ganops.config import AUGMENTED_R1_WEIGHT, Params, TrainConfig, load_params, parse_params
from ganops.errors import GanopsError


def test_repository_params_load_and_match_defaults(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params == Params()  # params.yaml documents the defaults; keep them in step


@pytest.mark.parametrize("raw, message", [
    ({"train": {"epcohs": 3}}, "train.epcohs: unknown key"),
    ({"trian": {"epochs": 3}}, "trian: unknown key"),
    ({"train": {"g_learning_rate": "fast"}}, "train.g_learning_rate: Input should be a valid number"),
    ({"train": {"epochs": "3"}}, "train.epochs: Input should be a valid integer"),
    ({"train": {"epochs": 0}}, "train.epochs: Input should be greater than or equal to 1"),
    ({"train": {"arch": "stylegan"}}, "train.arch: Input should be 'auto', 'dcgan', 'mlp' or 'resnet'"),
    ({"data": {"image_size": 28}, "train": {"arch": "resnet"}}, "train.arch: resnet needs data.image_size"),
    ({"data": {"image_size": 44}, "train": {"arch": "dcgan"}}, "train.arch: dcgan needs data.image_size"),
    ({"train": {"augment": ["blur"]}}, "train.augment: expected auto or a list of color, translation, cutout"),
    ({"train": {"augment": "cutout"}}, "train.augment: expected auto or a list of color, translation, cutout"),
    ({"train": {"augment": ["cutout", "cutout"]}}, "train.augment: lists a transformation twice"),
    ({"data": {"source": "idx"}}, "data.path: required when data.source is 'idx'"),
    ({"data": {"validation_fraction": 1.5}}, "data.validation_fraction: Input should be less than 1"),
    ({"data": {"test_fraction": 0.0}}, "data.test_fraction: Input should be greater than 0"),
    ({"data": {"validation_fraction": 0.4, "test_fraction": 0.6}},
     "data.test_fraction: 0.6 plus data.validation_fraction 0.4 leaves nothing to train on"),
    ({"data": {"holdout_fraction": 0.2}}, "data.holdout_fraction: unknown key"),  # the two-split key is gone
])
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(GanopsError) as caught:
        parse_params(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_data_fractions_default_to_15_and_20_percent():
    data = parse_params({}).data
    assert (data.validation_fraction, data.test_fraction) == (0.15, 0.2)
    assert parse_params({"data": {"validation_fraction": 0.3, "test_fraction": 0.6}}).data.test_fraction == 0.6


def test_params_are_frozen():
    params = Params()
    with pytest.raises(Exception):
        params.train.epochs = 5


def test_load_params_reports_file_problems(tmp_path):
    with pytest.raises(GanopsError, match="missing.yaml: file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(GanopsError, match="params.yaml: not valid YAML"):
        load_params(broken)
    broken.write_text(yaml.safe_dump({"train": {"epochs": 2, "typo": 1}}))
    with pytest.raises(GanopsError, match="train.typo: unknown key"):
        load_params(broken)


def test_per_loss_defaults_resolve_and_explicit_values_win():
    adversarial = parse_params({}).train.loss_settings()
    assert (adversarial.r1_weight, adversarial.d_dropout, adversarial.d_learning_rate, adversarial.beta_1) == (
        1.0, None, 2e-4, 0.5)  # d_dropout None: the arch's own
    assert parse_params({"train": {"loss": "hinge"}}).train.loss_settings() == adversarial
    wgan = parse_params({"train": {"loss": "wgan-gp"}}).train
    assert (wgan.r1_weight, wgan.beta_1) == (None, None)  # unset stays unset: a loss change re-resolves
    resolved = wgan.loss_settings()
    assert (resolved.r1_weight, resolved.d_dropout, resolved.d_learning_rate, resolved.beta_1) == (
        0.0, 0.0, 4e-4, 0.0)
    assert resolved.d_learning_rate > wgan.g_learning_rate  # TTUR in place of several critic steps
    explicit = parse_params({"train": {"loss": "wgan-gp", "r1_weight": 0.5, "d_dropout": 0.2,
                                       "d_learning_rate": 1e-4, "beta_1": 0.5}}).train.loss_settings()
    assert (explicit.r1_weight, explicit.d_dropout, explicit.d_learning_rate, explicit.beta_1) == (
        0.5, 0.2, 1e-4, 0.5)
    # An explicit value equal to another loss's default still wins, and 0 is a value, not "unset".
    assert parse_params({"train": {"r1_weight": 0.0}}).train.loss_settings().r1_weight == 0.0
    assert parse_params({"train": {"loss": "wgan-gp", "beta_1": 0.0}}).train.loss_settings().beta_1 == 0.0


@pytest.mark.parametrize("raw, message", [
    ({"train": {"r1_every": 0}}, "train.r1_every: Input should be greater than or equal to 1"),
    ({"train": {"r1_weight": -1.0}}, "train.r1_weight: Input should be greater than or equal to 0"),
    ({"train": {"d_learning_rate": 0.0}}, "train.d_learning_rate: Input should be greater than 0"),
    ({"train": {"beta_1": 1.0}}, "train.beta_1: Input should be less than 1"),
])
def test_per_loss_keys_keep_their_bounds(raw, message):
    with pytest.raises(GanopsError, match=message):
        parse_params(raw)


def test_auto_arch_is_the_dcgan_for_rgb_from_16_px_where_it_can_make_the_side_else_the_mlp():
    auto = TrainConfig()
    assert auto.arch == "auto"
    assert auto.for_data(1_000, (8, 8, 1)).arch == "mlp"  # the built-in digits
    assert auto.for_data(1_000, (28, 28, 1)).arch == "mlp"  # MNIST: gray
    assert auto.for_data(1_000, (12, 12, 3)).arch == "mlp"
    assert auto.for_data(1_000, (CONVOLUTIONAL_FROM_SIDE,) * 2 + (3,)).arch == "dcgan"
    assert auto.for_data(1_000, (32, 32, 3)).arch == "dcgan"  # a small RGB folder
    assert auto.for_data(1_000, (64, 64, 3)).arch == "dcgan"
    assert auto.for_data(1_000, (17, 17, 3)).arch == "mlp"  # a side the dcgan cannot make: still trains
    assert TrainConfig(arch="resnet").for_data(1_000, (32, 32, 3)).arch == "resnet"  # a set arch wins
    assert TrainConfig(arch="dcgan").for_data(1_000, (28, 28, 1)).arch == "dcgan"
    # The augmentation follows the resolved arch: none for the mlp, color + translation for a small RGB folder.
    assert auto.for_data(1_000, (8, 8, 1)).augment == []
    assert auto.for_data(1_000, (32, 32, 3)).augment == ["color", "translation"]
    assert auto.for_data(1_000, (32, 32, 3)).loss_settings().d_dropout == 0.0
    assert auto.describe_choice(1_000, (32, 32, 3)) == (
        "arch auto -> dcgan (RGB at 16 px or more); augment auto -> color, translation (1,000 training images; "
        "fewer than 5,000)")
    assert auto.describe_choice(1_000, (8, 8, 1)).startswith("arch auto -> mlp (gray images); augment auto -> none")
    assert auto.describe_choice(1_000, (8, 8, 3)).startswith("arch auto -> mlp (RGB, but 8 px is under 16 px)")
    assert TrainConfig(arch="dcgan", augment=[]).describe_choice(1_000, (32, 32, 3)) == ""


def test_auto_augmentation_is_on_for_small_data_with_a_convolutional_arch():
    for arch in ("dcgan", "resnet"):
        auto = TrainConfig(arch=arch)
        assert auto.augment == "auto"
        assert auto.for_data(SMALL_DATA_IMAGES - 1, (32, 32, 3)).augment == ["color", "translation"]
        assert auto.for_data(SMALL_DATA_IMAGES, (32, 32, 3)).augment == []
    assert TrainConfig(arch="mlp").for_data(100, (32, 32, 3)).augment == []
    # A list set by hand wins, and resolving twice changes nothing.
    assert TrainConfig(arch="dcgan", augment=["cutout"]).for_data(100, (32, 32, 3)).augment == ["cutout"]
    resolved = TrainConfig(arch="dcgan").for_data(100, (32, 32, 3))
    assert resolved.for_data(100_000, (8, 8, 1)) == resolved


def test_augmentation_replaces_the_discriminators_dropout_unless_dropout_is_set():
    small, large = TrainConfig(arch="dcgan").for_data(100, (32, 32, 3)), TrainConfig(arch="dcgan").for_data(100_000, (32, 32, 3))
    assert small.augment and small.loss_settings().d_dropout == 0.0
    assert large.augment == [] and large.loss_settings().d_dropout is None  # the arch's own (dcgan 0.3)
    assert TrainConfig(arch="dcgan").loss_settings().d_dropout is None  # auto, unresolved: no choice yet
    assert TrainConfig(arch="dcgan", augment=["color"]).loss_settings().d_dropout == 0.0
    assert TrainConfig(arch="dcgan", d_dropout=0.3).for_data(100, (32, 32, 3)).loss_settings().d_dropout == 0.3


def test_augmentation_lightens_the_default_r1_unless_r1_is_set():
    small, large = TrainConfig(arch="dcgan").for_data(100, (32, 32, 3)), TrainConfig(arch="dcgan").for_data(100_000, (32, 32, 3))
    assert small.loss_settings().r1_weight == AUGMENTED_R1_WEIGHT == 0.1
    assert large.loss_settings().r1_weight == 1.0
    assert TrainConfig(arch="mlp").for_data(100, (8, 8, 1)).loss_settings().r1_weight == 1.0  # the digits: no change
    assert TrainConfig(arch="dcgan", r1_weight=1.0).for_data(100, (32, 32, 3)).loss_settings().r1_weight == 1.0
    assert TrainConfig(arch="dcgan", r1_weight=0.0, augment=["color"]).loss_settings().r1_weight == 0.0
    # wgan-gp's default is no R1 at all, augmented or not.
    assert TrainConfig(arch="dcgan", loss="wgan-gp").for_data(100, (32, 32, 3)).loss_settings().r1_weight == 0.0
