"""ServerSettings: defaults, TOML, VEGA_SERVER_* and flags; secrets only from env or files; URL rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega.errors import ConfigError
from vega.server.settings import ServerSettings, is_loopback_host, load_settings, resolve_settings


def resolve(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    config: dict[str, object] | None = None,
    **overrides: object,
) -> ServerSettings:
    return resolve_settings(environ=env or {}, config=config, overrides=overrides, default_data_dir=tmp_path)


def test_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    s = resolve(tmp_path)
    assert s.data_dir == tmp_path
    assert s.resolved_public_url == "http://127.0.0.1:8080"
    assert s.resolved_database_url == f"sqlite:///{tmp_path}/server.db"
    assert s.resolved_nar_dir == tmp_path / "nars"
    assert s.resolved_signing_key_file == tmp_path / "keys" / "shared.key"
    assert s.resolved_log_key_file == tmp_path / "keys" / "log.key"
    assert s.resolved_log_origin == "127.0.0.1:8080/log"
    assert s.shared_key_name == "vega-cache-1"
    assert "secret-text" not in repr(ServerSettings(data_dir=tmp_path, signing_key="secret-text"))


def test_order_config_then_env_then_flags(tmp_path: Path) -> None:
    wf = "o/r/.github/workflows/r.yml@refs/heads/main"
    config = {"port": 9000, "quorum": 3, "reproducer_workflows": [wf], "dev": True}
    s = resolve(tmp_path, config=config)
    assert (s.port, s.quorum, s.dev) == (9000, 3, True)
    assert s.reproducer_workflows == (wf,)
    s = resolve(
        tmp_path, {"VEGA_SERVER_PORT": "9100", "VEGA_SERVER_OIDC_ISSUERS": "https://a, https://b"}, config
    )
    assert s.port == 9100
    assert s.oidc_issuers == ("https://a", "https://b")
    s = resolve(tmp_path, {"VEGA_SERVER_PORT": "9100"}, config, port=9200, host=None)
    assert s.port == 9200
    assert s.host == "127.0.0.1"


def test_secrets_never_come_from_the_config_file(tmp_path: Path) -> None:
    for key in ("signing_key", "log_key", "database_url"):
        with pytest.raises(ConfigError, match="is a secret"):
            resolve(tmp_path, config={key: "x"})
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://u:p@db/vega\n")
    s = resolve(tmp_path, config={"database_url_file": str(secret)})
    assert s.resolved_database_url == "postgresql://u:p@db/vega"
    key_file = tmp_path / "key"
    key_file.write_text("vega-cache-1:abc\n")
    s = resolve(tmp_path, {"VEGA_SERVER_SIGNING_KEY_FILE": str(key_file), "VEGA_SERVER_LOG_KEY": "inline"})
    assert s.signing_key == "vega-cache-1:abc"
    assert s.log_key == "inline"
    with pytest.raises(ConfigError, match="cannot read"):
        resolve(tmp_path, {"VEGA_SERVER_LOG_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve(tmp_path, {"VEGA_SERVER_LOG_KEY_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public_url": "http://cache.example.com"}, "must be https"),
        ({"public_url": "ftp://x"}, "absolute http"),
        ({"public_url": "https://u:p@cache.example.com"}, "credentials"),
        ({"public_url": "https://cache.example.com", "dev": True}, "loopback only"),
        ({"host": "0.0.0.0", "public_url": "http://127.0.0.1:8080", "dev": True}, "loopback only"),  # noqa: S104
        ({"quorum": 0}, "quorum must be positive"),
        ({"settling_s": -1}, "settling_s must be non-negative"),
        ({"port": 70000}, "port out of range"),
    ],
)
def test_rules(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerSettings(data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_rules_that_pass(tmp_path: Path) -> None:
    assert ServerSettings(data_dir=tmp_path, public_url="https://cache.example.com/").resolved_public_url == (
        "https://cache.example.com"
    )
    ServerSettings(data_dir=tmp_path, public_url="https://cache.example.com", dev=True, dev_force=True)
    assert ServerSettings(data_dir=tmp_path, host="::1").resolved_public_url == "http://[::1]:8080"
    assert is_loopback_host("localhost")
    assert is_loopback_host("[::1]")
    assert is_loopback_host("127.9.9.9")
    assert not is_loopback_host("example.com")
    assert not is_loopback_host("10.0.0.1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nope": 1}, "unknown setting"),
        ({"port": "x"}, "must be an integer"),
        ({"port": True}, "must be an integer"),
        ({"dev": "maybe"}, "must be a boolean"),
        ({"data_dir": 5}, "must be a path"),
        ({"oidc_issuers": [1]}, "list of strings"),
        ({"github_url": 5}, "must be a string"),
    ],
)
def test_bad_values(tmp_path: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(tmp_path, config=config)


def test_load_settings_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f'data_dir = "{tmp_path}/data"\nport = 8123\nshared_key_name = "my-cache-1"\n')
    s = load_settings({"host": None}, path)
    assert s.port == 8123
    assert s.data_dir == tmp_path / "data"
    assert s.shared_key_name == "my-cache-1"
    path.write_text("port = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({}, tmp_path / "missing.toml")


def test_github_client_secret_only_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert resolve(tmp_path).github_client_secret is None
    assert resolve(tmp_path, {"VEGA_SERVER_GITHUB_CLIENT_SECRET": "s3"}).github_client_secret == "s3"
    secret_file = tmp_path / "gh-secret"
    secret_file.write_text("from-file\n")
    env = {"VEGA_SERVER_GITHUB_CLIENT_SECRET_FILE": str(secret_file)}
    assert resolve(tmp_path, env).github_client_secret == "from-file"
    config: dict[str, object] = {"github_client_secret_file": str(secret_file)}
    assert resolve(tmp_path, config=config).github_client_secret == "from-file"
    with pytest.raises(ConfigError, match="github_client_secret is a secret"):
        resolve(tmp_path, config={"github_client_secret": "inline"})
    with pytest.raises(ConfigError, match="github_client_secret is empty"):
        resolve(tmp_path, {"VEGA_SERVER_GITHUB_CLIENT_SECRET": " "})
    assert "s3cr3t" not in repr(ServerSettings(data_dir=tmp_path, github_client_secret="s3cr3t"))


def test_reproducer_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names no ref"):
        resolve(tmp_path, {"VEGA_SERVER_REPRODUCER_WORKFLOWS": "o/r/.github/workflows/r.yml"})
    with pytest.raises(ConfigError, match="min_reproductions must be at least 1"):
        resolve(tmp_path, {"VEGA_SERVER_MIN_REPRODUCTIONS": "0"})
    with pytest.raises(ConfigError, match="reproducer_self_hosted"):
        resolve(tmp_path, {"VEGA_SERVER_REPRODUCER_SELF_HOSTED": "not-a-repo"})
    s = resolve(tmp_path, {"VEGA_SERVER_REPRODUCER_SELF_HOSTED": "vega-org/repro, o/r"})
    assert s.reproducer_self_hosted == ("vega-org/repro", "o/r")
