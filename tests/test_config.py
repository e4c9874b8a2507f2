"""The config: defaults documented in config.example.yaml, clear errors, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hostile_inputs import alias_bomb

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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "watch: {settle_seconds: .nan}\n",
            "'watch.settle_seconds' must be a finite number, not nan",
        ),
        (
            "watch: {settle_seconds: .inf}\n",
            "'watch.settle_seconds' must be a finite number, not inf",
        ),
        (f"watch: {{settle_seconds: {'9' * 400}}}\n", "'watch.settle_seconds' must be a finite"),
        ("watch: {settle_seconds: 86401}\n", "must be a number from 0 to 86400, not 86401"),
        ("batch_size: 0\n", "'batch_size' must be a whole number from 1 to 4096, not 0"),
        (f"batch_size: {'9' * 5000}\n", "not a usable config: Exceeds the limit"),
        ("workers: 100000\n", "'workers' must be a whole number from 1 to 256"),
        ("sidecars: {min_caption_confidence: 2}\n", "from 0 to 1, not 2"),
        ('index: "/tmp/a\\0b.db"\n', "'index' must be a path (null for the default)"),
        ("sidecars: {mirror_dir: ''}\n", "'sidecars.mirror_dir' must be a path (null for the"),
        ("hashtags: {min_tags: 5, max_tags: 2}\n", "'hashtags.min_tags' (5) is more than"),
        ("captioner: {min_length: 30}\n", "'captioner.min_length' (30) is more than"),
        (f"ray: {{address: {'a' * 300}:6379}}\n", "'ray.address' 'aaaa"),
        ("ray: {address: head:99999}\n", "is not host:port"),
        (alias_bomb(), "'sidecars.formats' must be a list of names, not [["),
    ],
)
def test_a_setting_out_of_range_is_refused_quoting_little_of_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = str(err.value)
    assert message in line and "\n" not in line
    assert len(line) < len(str(path)) + 300, line  # the value is quoted, never printed whole


def test_settings_at_the_ends_of_their_ranges_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "workers: 1\nwatch: {settle_seconds: 0}\nhashtags: {min_tags: 10, max_tags: 10}\n"
        "ray: {address: 'ray://[::1]:6379'}\n"
    )
    config = load_config(path)
    assert (config.workers, config.watch.settle_seconds) == (1, 0.0)
    assert config.ray.address == "ray://[::1]:6379"


def test_a_command_line_override_is_checked_as_the_file_is(tmp_path: Path) -> None:
    from photobatch.core.config import override

    config = load_config()
    assert override(config, "watch", "settle_seconds", 0.5, "--settle").watch.settle_seconds == 0.5
    with pytest.raises(ConfigError, match="'--settle' must be a finite number, not nan"):
        override(config, "watch", "settle_seconds", float("nan"), "--settle")
    with pytest.raises(ConfigError, match="'--ray-address' 'x' is not host:port"):
        override(config, "ray", "address", "x", "--ray-address")


def test_a_huge_config_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1 MB"):
        load_config(path)
