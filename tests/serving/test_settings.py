"""Settings: flags beat `SERVING_*` variables beat defaults; bad values exit with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.settings import Settings, parse_settings


def test_flags_beat_env_beat_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_PORT", "9001")
    monkeypatch.setenv("SERVING_MAX_RECORDS", "7")
    monkeypatch.setenv("SERVING_ACCESS_LOG", "yes")
    monkeypatch.setenv("SERVING_MODELS_DIR", "from-env")
    settings = parse_settings(["--port", "9002", "--receive-timeout-s", "2.5"])
    assert settings.port == 9002 and settings.max_records == 7 and settings.access_log is True
    assert settings.models_dir == Path("from-env") and settings.receive_timeout_s == 2.5
    assert parse_settings(["--models", "elsewhere"]).models_dir == Path("elsewhere")
    assert parse_settings(["--no-access-log"]).access_log is False


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SERVING_"):
            monkeypatch.delenv(name)
    settings = parse_settings([])
    assert settings == Settings()
    assert settings.host == "127.0.0.1" and settings.loopback and settings.api_key is None
    assert not Settings(host="0.0.0.0").loopback and Settings(host="localhost").loopback
    monkeypatch.setenv("SERVING_API_KEY", "s3cret-token")
    assert parse_settings([]).api_key is not None
    assert "s3cret" not in repr(parse_settings([]))  # the key never shows in logs or reprs


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "x"],
        ["--max-records", "0"],
        ["--log-level", "LOUD"],
        ["--intra-op-threads", str((os.cpu_count() or 1) + 1)],
        ["--no-such-flag", "1"],
    ],
)
def test_bad_settings_exit_with_status_2_and_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv)
    assert exc.value.code == 2
    assert "python -m serving: error:" in capsys.readouterr().err
