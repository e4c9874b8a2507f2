"""The config: defaults documented in config.example.yaml, clear errors, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from photobatch.core.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).parents[1] / "config.example.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("PHOTOBATCH_CONFIG", "PHOTOBATCH_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def test_example_documents_every_key_with_its_default(tmp_path: Path) -> None:
    example = load_config(EXAMPLE)
    defaults = Config()
    assert example.index.name == defaults.index.name
    assert {k: v for k, v in vars(example).items() if k != "index"} == {
        k: v for k, v in vars(defaults).items() if k != "index"
    }
    documented = yaml.safe_load(EXAMPLE.read_text())
    for section, value in vars(defaults).items():
        assert section in documented, f"{section} is not documented in config.example.yaml"
        if hasattr(value, "__dataclass_fields__"):
            assert set(documented[section]) == set(value.__dataclass_fields__)


def test_defaults_put_the_index_under_xdg_data(tmp_path: Path) -> None:
    assert load_config().index == tmp_path / "xdg-data" / "photobatch" / "index.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_sise: 8\n", "unknown key 'batch_sise'"),
        ("sidecars:\n  nameing: basename\n", "unknown key 'sidecars.nameing'"),
        ("device: gpu\n", "'device' must be one of"),
        ("batch_size: many\n", "'batch_size' must be a whole number"),
        ("hashtags: 3\n", "'hashtags' must be a mapping"),
        ("- just a list\n", "expected a mapping"),
        ("index: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # the command line prints it as one line


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"index: {tmp_path / 'from-file.db'}\nbatch_size: 4\n")
    assert load_config(path).index == tmp_path / "from-file.db"
    monkeypatch.setenv("PHOTOBATCH_CONFIG", str(path))
    assert load_config().batch_size == 4
    monkeypatch.setenv("PHOTOBATCH_INDEX", str(tmp_path / "from-env.db"))
    assert load_config().index == tmp_path / "from-env.db"
    assert load_config(index=tmp_path / "from-cli.db").index == tmp_path / "from-cli.db"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
