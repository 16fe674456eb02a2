"""Calculations for ``test_published_plugin``, run by ``verdi run`` of the *published*
aiida-firecrest's venv (so it imports that venv's aiida, never this repository's plugin).

Usage: verdi run published_plugin_jobs.py COMPUTER ADDITIONS BIG_FILE_BYTES

Runs ADDITIONS ``core.arithmetic.add`` calculations and one ``core.templatereplacer`` job that
uploads a file of BIG_FILE_BYTES random bytes, checksums and copies it on the cluster, and
retrieves the copy; prints one JSON object with what the test checks.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

import aiida_firecrest

computer_label, additions, big_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
computer = orm.load_computer(computer_label)
# The default (10 s) would make each calculation wait that long for its first poll.
computer.set_minimum_job_poll_interval(1.0)
code = orm.load_code(f"bash@{computer_label}")
options = {"resources": {"num_machines": 1}, "max_wallclock_seconds": 600}
report: dict = {
    "plugin": {
        "version": importlib.metadata.version("aiida-firecrest"),
        "module": aiida_firecrest.__file__,
    },
    "additions": [],
    "big": {},
}

add = CalculationFactory("core.arithmetic.add")
for i in range(additions):
    results, node = run_get_node(
        add, code=code, x=orm.Int(i), y=orm.Int(10 * i), metadata={"options": options}
    )
    report["additions"].append(
        {
            "expected": 11 * i,
            "sum": results["sum"].value if "sum" in results else None,
            "exit_status": node.exit_status,
            "job_state": node.get_scheduler_state().value if node.get_scheduler_state() else None,
        }
    )

payload = os.urandom(big_bytes)
with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
    handle.write(payload)
try:
    big_input = orm.SinglefileData(handle.name)
finally:
    os.unlink(handle.name)
template = {
    "input_file_template": "sha256sum big.bin\ncp big.bin copy.bin\n",
    "input_file_name": "aiida.in",
    "cmdline_params": ["aiida.in"],
    "output_file_name": "aiida.out",
    "files_to_copy": [["big", "big.bin"]],
}
replacer = CalculationFactory("core.templatereplacer")
results, node = run_get_node(
    replacer,
    code=code,
    template=orm.Dict(template),
    files={"big": big_input},
    metadata={"options": {**options, "additional_retrieve_list": ["copy.bin"]}},
)
retrieved = node.outputs.retrieved if "retrieved" in node.outputs else None
copy_digest = None
if retrieved is not None and "copy.bin" in retrieved.base.repository.list_object_names():
    copy_digest = hashlib.sha256(
        retrieved.base.repository.get_object_content("copy.bin", mode="rb")
    ).hexdigest()
output = results["output_parameters"].get_dict()["value"] if "output_parameters" in results else ""
report["big"] = {
    "bytes": big_bytes,
    "sha256": hashlib.sha256(payload).hexdigest(),
    "remote_sha256": output.split()[0] if output.split() else None,
    "retrieved_sha256": copy_digest,
    "exit_status": node.exit_status,
    "remote_workdir": node.get_remote_workdir(),
}
print("REPORT " + json.dumps(report))
