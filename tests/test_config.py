import pytest

from gankit import build_config
from gankit.config import DataConfig, RunConfig, config_dir, load_yaml, parse_override, shipped_configs
from gankit.errors import GankitError
from gankit.models import MODELS


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    data = load_yaml(path)
    name = data.get("name", path.stem)
    assert name in MODELS, f"{path.name}: no model named {name}"
    cfg = build_config(name, [path])
    assert cfg.name == name


@pytest.mark.parametrize("name", list(MODELS))
def test_defaults_build_for_every_model(name):
    assert build_config(name).name == name


def test_precedence_defaults_file_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.001\n  steps: 7\nmodel:\n  z_dim: 12\n")
    cfg = build_config("cgan", [f], ["train.steps=9"])
    assert cfg.train.lr == 0.001 and cfg.train.steps == 9 and cfg.model.z_dim == 12
    assert cfg.data.size == 32  # from the shipped cgan.yaml


def test_types_are_coerced():
    cfg = build_config("gan", overrides=["model.hidden=[8,16]", "train.amp=true", "train.lr=1e-3",
                                         "train.steps=1_000", "data.spec=mnist:/x"])
    assert cfg.model.hidden == [8, 16] and cfg.train.amp is True and cfg.train.lr == 1e-3
    assert cfg.train.steps == 1000 and cfg.data.spec == "mnist:/x"


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(GankitError, match=r"unknown config key 'train\.lrr'.*did you mean 'train\.lr'"):
        build_config("gan", overrides=["train.lrr=0.1"])
    with pytest.raises(GankitError, match=r"did you mean 'model\.z_dim'"):
        build_config("gan", overrides=["model.zdim=3"])
    with pytest.raises(GankitError, match=r"did you mean 'train\.batch_size'"):
        build_config("gan", overrides=["tran.batch_size=3"])


def test_unknown_key_in_yaml(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  stesp: 5\n")
    with pytest.raises(GankitError, match=r"train\.stesp.*did you mean 'train\.steps'"):
        build_config("gan", [f])


@pytest.mark.parametrize("override,word", [("train.steps=abc", "integer"), ("train.lr=fast", "number"),
                                           ("train.amp=maybe", "true/false"), ("train.steps=1.5", "integer")])
def test_wrong_type_is_an_error(override, word):
    with pytest.raises(GankitError, match=word):
        build_config("gan", overrides=[override])


@pytest.mark.parametrize("override", ["train.batch_size=0", "train.batch_size=-4", "train.steps=0",
                                      "train.ema=1.5", "data.channels=2"])
def test_invalid_values(override):
    with pytest.raises(GankitError):
        build_config("gan", overrides=[override])


def test_unknown_model_suggests():
    with pytest.raises(GankitError, match="did you mean 'dcgan'"):
        build_config("dcgn")


def test_override_syntax():
    assert parse_override("a.b=c=d") == ("a.b", "c=d")
    with pytest.raises(GankitError, match="key=value"):
        parse_override("train.lr")


def test_data_config_defaults_to_builtin_digits():
    assert DataConfig().spec == "digits"


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_configs_hold_only_differences_and_no_paths(path):
    """Each key of a shipped YAML changes the config it applies to (the dataclass defaults
    for configs/NAME.yaml, NAME.yaml for a variant), and no data path is built in: the
    user names the data with --data."""
    data = load_yaml(path)
    name = data.get("name", path.stem)
    base = (RunConfig(name=name, model=MODELS[name].Config()) if path.stem == name else build_config(name)).to_dict()
    same = [f"{section}.{key}" for section, keys in data.items() if isinstance(keys, dict)
            for key, value in keys.items() if base[section][key] == value]
    assert not same, f"{path.name} restates {same}"
    cfg = build_config(name, [path])
    assert ":" not in cfg.data.spec and not cfg.data.reference and "shared/data" not in path.read_text()


def test_a_config_without_its_data_path_asks_for_one(tmp_path, capsys):
    from gankit.cli import main
    config = str(config_dir() / "seqgan-coco.yaml")
    assert main(["train", "seqgan", "--config", config, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "error: data spec 'text' needs a path: text:FILE"
