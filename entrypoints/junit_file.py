"""`sipflow run --junit FILE`: the session's JUnit report (the API's junit.xml) written where a CI
job picks it up, and a report of its own when no session ran (an invalid spec, an API that
could not be reached), so the job always has a report to upload."""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path


def write(path: Path, xml: str | bytes) -> None:
    """Atomically (a job that uploads a half-written file sees none)."""
    data = xml.encode() if isinstance(xml, str) else xml
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def not_run(spec_name: str, kind: str, message: str) -> str:
    """One test case `verdict` with an error: `kind` (invalid-spec, error) and why."""
    suite = ET.Element(
        "testsuite",
        {"name": f"sipflow.{spec_name}", "tests": "1", "failures": "0", "errors": "1"},
    )
    attrs = {"classname": f"sipflow.{spec_name}", "name": "verdict"}
    case = ET.SubElement(suite, "testcase", attrs)
    first = message.splitlines()[0][:500] if message else kind
    ET.SubElement(case, "error", {"type": kind, "message": first}).text = message
    suites = ET.Element("testsuites")
    suites.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
