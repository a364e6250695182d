"""Issue 13, finding 7: ``Settings.region`` resolves like boto3 (the environment's region, then
the profile's region in the AWS config file), so DynamoDB (pynamodb, bound to it) and boto3's
clients agree. Values are passed to Settings; the process environment is not changed."""
from __future__ import annotations

import botocore.session
import pytest
from pydantic import ValidationError

from chalicelib.settings import Settings

CONFIG = """\
[default]
region = eu-west-1

[profile ops]
region = ap-southeast-2

[profile bare]
output = json
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return str(path)


def test_region_from_the_config_file_when_the_environment_has_none(config_file) -> None:
    assert Settings(region="", aws_config_file=config_file).region == "eu-west-1"
    assert Settings(region="", aws_config_file=config_file, aws_profile="ops").region == "ap-southeast-2"


def test_the_same_region_botocore_resolves_from_that_file(config_file) -> None:
    session = botocore.session.Session(profile="ops")
    session.set_config_variable("config_file", config_file)
    assert Settings(region="", aws_config_file=config_file, aws_profile="ops").region == session.get_scoped_config()["region"]


def test_an_explicit_or_environment_region_wins_over_the_file(config_file) -> None:
    assert Settings(region="sa-east-1", aws_config_file=config_file).region == "sa-east-1"


def test_no_region_anywhere_is_us_east_1(config_file, tmp_path) -> None:
    assert Settings(region="", aws_config_file=config_file, aws_profile="bare").region == "us-east-1"
    assert Settings(region="", aws_config_file=str(tmp_path / "absent")).region == "us-east-1"


def test_an_unknown_profile_is_a_clear_error(config_file) -> None:
    with pytest.raises(ValidationError, match="'nope' is not in the AWS config file"):
        Settings(region="", aws_config_file=config_file, aws_profile="nope")


def test_copies_keep_the_resolved_region(config_file) -> None:
    settings = Settings(region="", aws_config_file=config_file, aws_profile="ops")
    assert settings.with_values(stage="x").region == "ap-southeast-2"
