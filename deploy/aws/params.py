"""The parameters of one environment's file (params/<env>.json) that a template declares, as
`Key=Value` lines for `aws cloudformation deploy --parameter-overrides` (stdlib only).

    python3 deploy/aws/params.py deploy/aws/params/dev.json deploy/aws/network.yaml
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def declared(template: str) -> list[str]:
    """Names under the template's top-level `Parameters:` section."""
    names: list[str] = []
    inside = False
    for line in template.splitlines():
        if re.match(r"^\S", line):
            inside = line.startswith("Parameters:")
            continue
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if inside and m:
            names.append(m.group(1))
    return names


def overrides(params_file: Path, template_file: Path) -> dict[str, str]:
    values = json.loads(params_file.read_text())["Parameters"]
    return {k: str(values[k]) for k in declared(template_file.read_text()) if k in values}


if __name__ == "__main__":
    for key, value in overrides(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"{key}={value}")
