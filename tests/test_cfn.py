"""deploy/aws/: the CloudFormation templates linted (cfn-lint), checked for least privilege
(checkov, with the skip list in deploy/aws/.checkov.yaml) and deployed into moto's
CloudFormation (server mode, tests/fargate_fixtures.py).

moto is a stand-in: it creates the resources it models (VPC, subnets, security groups, IAM roles,
ECS cluster, task definitions and services, log groups, load balancer ...) without running
anything, and refuses some templates outright. The test prints which resources it created and
what it could not, and pins the latter, so a moto that learns more (or a template that moto
stops accepting) shows up here. A first deploy into real AWS must confirm the rest (README).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fargate_fixtures import Moto
from tests.fargate_fixtures import moto_fixture as moto_fixture  # (the fixture)

ROOT = Path(__file__).resolve().parent.parent
AWS_DIR = ROOT / "deploy" / "aws"
TEMPLATES = ["network", "data", "services"]
ENVS = ["dev", "staging", "prod"]
sys.path.insert(0, str(AWS_DIR))
from params import declared, overrides  # noqa: E402

# What moto (5.2) cannot deploy of ours, and why; the test fails when this changes.
MOTO_CANNOT = {
    "data": "does not support attribute type Endpoint in Fn::GetAtt",
}


def tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else (shutil.which(name) or pytest.fail(f"{name} missing"))


def test_templates_are_cfn_lint_clean() -> None:
    files = [str(AWS_DIR / f"{t}.yaml") for t in TEMPLATES]
    out = subprocess.run([tool("cfn-lint"), *files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def checkov() -> str | None:
    local = ROOT / ".venv-checkov" / "bin" / "checkov"
    return str(local) if local.exists() else shutil.which("checkov")


def test_checkov_finds_nothing_beyond_the_justified_skips() -> None:
    if checkov() is None:  # it pins older boto3 than sipflow's: a virtualenv of its own
        if os.environ.get("CI") == "true":
            pytest.fail("checkov must run in CI (.ci/run makes .venv-checkov)")
        pytest.skip("checkov not installed (.ci/run makes .venv-checkov)")
    out = subprocess.run(
        [str(checkov()), "--config-file", str(AWS_DIR / ".checkov.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Failed checks: 0" in out.stdout


def required(template: str) -> set[str]:
    """Parameters without a Default."""
    text = (AWS_DIR / f"{template}.yaml").read_text()
    section = text.split("\nParameters:\n", 1)[1].split("\nResources:\n", 1)[0]
    missing_default: set[str] = set()
    for name in declared(text):
        body = section.split(f"  {name}:\n", 1)[1]
        lines = []
        for line in body.splitlines():
            if line and not line.startswith("    "):
                break
            lines.append(line)
        if not any(line.strip().startswith("Default:") for line in lines):
            missing_default.add(name)
    return missing_default


@pytest.mark.parametrize("env", ENVS)
def test_each_environment_gives_every_parameter_without_default(env: str) -> None:
    values = json.loads((AWS_DIR / "params" / f"{env}.json").read_text())["Parameters"]
    known = {n for t in TEMPLATES for n in declared((AWS_DIR / f"{t}.yaml").read_text())}
    assert set(values) <= known, set(values) - known
    for t in TEMPLATES:
        assert required(t) <= set(values), (t, required(t) - set(values))
    assert values["EnvName"] == env


def self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sipflow.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


# Stands in for data.yaml's exports where moto cannot create its stack.
DATA_STAND_IN = """\
Resources:
  StandIn:
    Type: AWS::CloudFormation::WaitConditionHandle
Outputs:
  Host: {Value: db.stand-in.internal, Export: {Name: dev-sipflow-DatabaseHost}}
  Port: {Value: "5432", Export: {Name: dev-sipflow-DatabasePort}}
  Secret: {Value: "%s", Export: {Name: dev-sipflow-DatabaseSecretArn}}
"""


# Resources moto's CloudFormation does not model (a reference to one fails the whole stack):
# taken out of the template for the deploy into moto, and reported.
MOTO_UNMODELLED = {"services": ["ApiDiscovery", "BrokerDiscovery"]}


def without(template: str, resources: list[str]) -> str:
    """The template without these resources and without references to them (lines naming
    them: ServiceRegistries)."""
    out: list[str] = []
    skipping = False
    for line in template.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.strip().endswith(":"):
            skipping = line.strip()[:-1] in resources
        elif line and not line.startswith(" "):
            skipping = False
        if skipping or any(r in line for r in resources):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def deploy(moto: Moto, stack: str, params: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """(status or moto's refusal, the stack's resources)."""
    cfn = moto.client("cloudformation")
    name = f"sipflow-dev-{stack}"
    template = (AWS_DIR / f"{stack}.yaml").read_text()
    try:
        cfn.create_stack(
            StackName=name,
            TemplateBody=without(template, MOTO_UNMODELLED.get(stack, [])),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
    except cfn.exceptions.ClientError as exc:
        return f"refused: {exc.response['Error']['Message']}", []
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    return status, cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]


def test_the_stacks_deploy_into_motos_cloudformation(moto: Moto) -> None:
    sm = moto.client("secretsmanager")
    app_secret = sm.create_secret(
        Name="sipflow/dev/app",
        SecretString=json.dumps({"runner_token_secret": "x" * 32, "encryption_keys": "k1:AA=="}),
    )["ARN"]
    db_secret = sm.create_secret(Name="rds-stand-in", SecretString="{}")["ARN"]
    cert, key = self_signed()
    cert_arn = moto.client("acm").import_certificate(Certificate=cert, PrivateKey=key)[
        "CertificateArn"
    ]
    env_file = AWS_DIR / "params" / "dev.json"
    report: dict[str, str] = {}
    created: dict[str, list[str]] = {}
    for stack in TEMPLATES:
        params = overrides(env_file, AWS_DIR / f"{stack}.yaml")
        if stack == "services":
            params.update(AppSecretArn=app_secret, CertificateArn=cert_arn)
        status, resources = deploy(moto, stack, params)
        report[stack] = status
        created[stack] = sorted(
            f"{r['ResourceType']} {r['LogicalResourceId']}: {r['ResourceStatus']}"
            for r in resources
        )
        if stack == "data" and status.startswith("refused"):
            moto.client("cloudformation").create_stack(
                StackName="sipflow-dev-data-stand-in", TemplateBody=DATA_STAND_IN % db_secret
            )

    print("\nmoto CloudFormation, environment dev:")
    for stack in TEMPLATES:
        print(f"  {stack}: {report[stack]}")
        for logical in MOTO_UNMODELLED.get(stack, []):
            print(f"    {logical}: not modelled by moto, left out")
        for line in created[stack]:
            print(f"    {line}")
    refused = {s: r for s, r in report.items() if r.startswith("refused")}
    assert set(refused) == set(MOTO_CANNOT), report
    for stack, why in MOTO_CANNOT.items():
        assert why in refused[stack]
    assert report["network"] == report["services"] == "CREATE_COMPLETE"
    assert all(line.endswith("CREATE_COMPLETE") for s in created for line in created[s])

    # What was made, looked at through moto's own APIs.
    ec2, ecs, iam = moto.client("ec2"), moto.client("ecs"), moto.client("iam")
    (vpc,) = [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.60.0.0/16"]
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
        )["SecurityGroups"]
    }
    (runner_sg,) = [g for n, g in groups.items() if "RunnerSecurityGroup" in n]

    def rules(key: str) -> set[tuple[Any, ...]]:
        return {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in runner_sg[key]}

    print("  runner security group in moto: ingress", sorted(map(str, rules("IpPermissions"))))
    # moto's CloudFormation does not apply egress rules (property or AWS::EC2::SecurityGroupEgress):
    # it keeps the default allow-all, so the runners' egress is checked by cfn-lint/checkov only.
    print("  runner security group in moto: egress", sorted(map(str, rules("IpPermissionsEgress"))))
    assert ("udp", 5060, 5061) in rules("IpPermissions")
    assert ("udp", 10000, 20000) in rules("IpPermissions")
    cluster = ecs.describe_clusters(clusters=["sipflow-dev"])["clusters"][0]
    assert cluster["status"] == "ACTIVE"
    services = ecs.list_services(cluster="sipflow-dev")["serviceArns"]
    assert sorted(s.rsplit("/", 1)[-1] for s in services) == ["api", "broker", "worker"]
    families = ecs.list_task_definition_families(familyPrefix="sipflow-dev-")["families"]
    assert sorted(families) == ["sipflow-dev-api", "sipflow-dev-broker", "sipflow-dev-worker"]
    roles = {r["RoleName"]: r for r in iam.list_roles()["Roles"]}
    worker = next(n for n in roles if "WorkerTaskRole" in n)
    (policy,) = iam.list_role_policies(RoleName=worker)["PolicyNames"]
    doc = str(iam.get_role_policy(RoleName=worker, PolicyName=policy)["PolicyDocument"])
    # (moto returns the document as text, not always JSON)
    assert "iam:PassedToService" in doc and "ecs-tasks.amazonaws.com" in doc
    assert "secret:sipflow/dev/runner-tokens/*" in doc
    runner_role = next(n for n in roles if "RunnerTaskRole" in n)
    assert iam.list_role_policies(RoleName=runner_role)["PolicyNames"] == []
