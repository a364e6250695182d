"""CDK entry point: `cdk deploy -c stage=prod` deploys the stack `kilele-prod`.

`-c sagemaker_serverless=true` serves CPU inference jobs on SageMaker serverless endpoints.
"""
import sys
from pathlib import Path

INFRA_DIR = Path(__file__).resolve().parent
# chalicelib.resources holds the one definition of tables/buckets/queues; kilele_infra is here.
sys.path[:0] = [str(INFRA_DIR.parent), str(INFRA_DIR)]

import aws_cdk as cdk  # noqa: E402

from kilele_infra import KileleStack  # noqa: E402

app = cdk.App()
stage = app.node.try_get_context("stage") or "dev"
serverless = str(app.node.try_get_context("sagemaker_serverless") or "false").lower() in ("1", "true", "yes")
KileleStack(app, f"kilele-{stage}", stage=stage, sagemaker_serverless=serverless)
app.synth()
