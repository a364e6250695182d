"""Issue 13, finding 6: CDK is the one deploy path. ``chalice deploy`` and ``chalice package``
are refused with a message pointing to infra/ (what they would build is not what the stack
deploys), other Chalice commands still work, and ``.chalice/config.json`` names the API
Gateway stage the stack serves (``/{stage}``, not ``/api``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.deploy_guard import refused_chalice_command

ROOT = Path(__file__).resolve().parents[2]
CHALICE = Path(sys.executable).with_name("chalice")


@pytest.mark.parametrize("argv", [
    ["/v/bin/chalice", "deploy"], ["/v/bin/chalice", "package", "out"], ["chalice", "--debug", "deploy", "--stage", "prod"],
    ["chalice", "--project-dir", "/repo", "package", "/tmp/out"],
])
def test_chalice_deploy_and_package_are_refused(argv):
    assert "infra/README.md" in refused_chalice_command(argv) and "CDK" in refused_chalice_command(argv)


@pytest.mark.parametrize("argv", [
    ["chalice", "local"], ["chalice", "--project-dir", "package", "local"], ["cdk.py"], ["/usr/bin/python", "deploy"], [],
])
def test_other_commands_are_not_refused(argv):
    assert refused_chalice_command(argv) == ""


def test_the_chalice_cli_refuses_to_package(tmp_path):
    done = subprocess.run([str(CHALICE), "--project-dir", str(ROOT), "package", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "infra/README.md" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_chalice_config_stages_are_the_stacks_stage_paths():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    # The stack's REST API serves stage `{stage}` (infra/kilele_infra/api.py: StageOptions(stage_name=stage)).
    assert config["stages"] and all(s.get("api_gateway_stage") == name for name, s in config["stages"].items())
