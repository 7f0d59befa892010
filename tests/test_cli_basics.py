"""The CLI shell: version, help, settings precedence, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from fewshotv2v import __version__
from fewshotv2v.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fsv2v {__version__}"


def test_help_lists_options():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--version" in result.stdout and "--config" in result.stdout


def test_python_dash_m_and_fast_import():
    """`python -m fewshotv2v --version` works and does not import torch."""
    code = (
        "import sys, runpy; sys.argv=['fsv2v','--version'];\n"
        "try:\n    runpy.run_module('fewshotv2v', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"fsv2v {__version__}"
    assert lines[-1] == "False"


def test_settings_precedence(tmp_path, monkeypatch):
    from fewshotv2v.settings import load_settings

    toml = tmp_path / "s.toml"
    toml.write_text('device = "cpu"\ndtype = "bf16"\n[hub]\nendpoint = "http://file"\n')
    s = load_settings(toml)
    assert (s.device, s.dtype, s.hub.endpoint) == ("cpu", "bf16", "http://file")
    monkeypatch.setenv("FSV2V_DTYPE", "fp16")
    monkeypatch.setenv("FSV2V_HUB__ENDPOINT", "http://env")
    s = load_settings(toml)
    assert (s.dtype, s.hub.endpoint) == ("fp16", "http://env")
    s = load_settings(toml, dtype="fp32", device=None)  # None = flag not given: env/file still win
    assert (s.dtype, s.device) == ("fp32", "cpu")


def test_missing_settings_file_is_an_error(tmp_path):
    import pytest

    from fewshotv2v.errors import ConfigError
    from fewshotv2v.settings import load_settings

    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(tmp_path / "missing.toml")


def test_invalid_setting_is_one_line(monkeypatch):
    import pytest

    from fewshotv2v.errors import ConfigError
    from fewshotv2v.settings import load_settings

    monkeypatch.setenv("FSV2V_DTYPE", "fp8")
    with pytest.raises(ConfigError, match="dtype"):
        load_settings()
