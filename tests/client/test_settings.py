"""cli.md §1.2-§1.3 and issue 5: URL rule (with ::1), flag/env precedence, config directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega.client.settings import DEFAULT_URL, config_dir, load_settings, normalise_url
from vega.errors import ConfigError

ENV = {"HOME": "/home/u"}


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://vega-cache.dev/", "https://vega-cache.dev"),
        ("HTTPS://Vega-Cache.DEV:443/a/./b/../c/", "https://vega-cache.dev/a/c"),
        ("https://user:pw@x.test/p?q=1#f", "https://x.test/p"),
        ("https://vega-cache.dev/tenant/o/r", "https://vega-cache.dev/tenant/o/r"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost", "http://localhost"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("https://x.test:8443", "https://x.test:8443"),
    ],
)
def test_normalise_valid_urls(url: str, want: str) -> None:
    assert normalise_url(url) == want


@pytest.mark.parametrize(
    "url",
    [
        "http://vega-cache.dev",
        "vega-cache.dev",
        "",
        "https://",
        "http://127.0.0.2",
        "http://[::2]",
        "https://x:99999",
    ],
)
def test_invalid_urls_fail_with_the_spec_text(url: str) -> None:
    with pytest.raises(ConfigError) as e:
        normalise_url(url)
    assert e.value.message.startswith("control plane must be a valid https URL: ")
    assert e.value.message.endswith("; refusing to send credentials over plaintext.")
    assert (url.split("//")[-1] or "\0") not in e.value.message


def test_url_precedence() -> None:
    env = {**ENV, "VEGA_URL": "https://env.test/"}
    assert load_settings(env).url is None  # only login consults VEGA_URL
    assert load_settings(env, use_env_url=True).url == "https://env.test"
    assert load_settings(env, use_env_url=True, control_plane="https://cp.test").url == "https://cp.test"
    both = load_settings(env, use_env_url=True, url="https://flag.test", control_plane="https://cp.test")
    assert both.url == "https://flag.test"
    assert load_settings(ENV, use_env_url=True).login_url == DEFAULT_URL
    with pytest.raises(ConfigError):
        load_settings({**ENV, "VEGA_URL": "http://plain.test"}, use_env_url=True)


def test_config_dir_honours_xdg_then_home() -> None:
    assert config_dir({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}) == Path("/x/vega")
    assert config_dir({"HOME": "/h", "XDG_CONFIG_HOME": "relative"}) == Path("/h/.config/vega")
    assert config_dir({"HOME": "/h", "XDG_CONFIG_HOME": ""}) == Path("/h/.config/vega")
    assert load_settings({"HOME": "/h"}).credential_path == Path("/h/.config/vega/credential")
    with pytest.raises(ConfigError, match="HOME is not set"):
        config_dir({})


def test_settings_are_frozen() -> None:
    s = load_settings(ENV)
    with pytest.raises(AttributeError):
        s.url = "x"  # type: ignore[misc]
