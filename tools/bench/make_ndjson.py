#!/usr/bin/env python3
"""Writes a large NDJSON of mixed, realistic clinic records for `fhirgw translate` throughput runs.

Every line is one of the records in examples/ (infusions, a medication statement, PHQ-9 and GAD-7
questionnaires, an encounter), compacted, with its record id, encounter id and clinic patient id
varied so that no two lines map to the same resources:

  tools/bench/make_ndjson.py --lines 200000 > /tmp/mixed.ndjson
  taskset -c 0 /usr/bin/time -v build/gateway/fhirgw translate /tmp/mixed.ndjson > /dev/null

The output is deterministic (no randomness), so runs are comparable. Do not commit it.
"""

import argparse
import json
import pathlib
import sys

EXAMPLES = [
    "ketamine-infusion.json",
    "infusion-stopped-hypertension.json",
    "sertraline-statement.json",
    "phq9-item9-positive.json",
    "gad7.json",
    "infusion-encounter.json",
]


def vary(record, index, patients):
    """Returns a copy of `record` with ids made unique for line `index`."""
    out = json.loads(json.dumps(record))
    out["recordId"] = f"{record['recordId']}-{index:07d}"
    patient = out.get("patient")
    if patient is not None:
        patient["clinicPatientId"] = f"P-{index % patients:06d}"
    for kind in ("infusion", "encounter", "questionnaire"):
        body = out.get(kind)
        if body is not None and "encounterId" in body:
            body["encounterId"] = f"{body['encounterId']}-{index:07d}"
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200000)
    parser.add_argument("--patients", type=int, default=5000,
                        help="distinct clinic patient ids to cycle through")
    parser.add_argument("--examples", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[2] / "examples")
    args = parser.parse_args()
    records = [json.loads((args.examples / name).read_text()) for name in EXAMPLES]
    out = sys.stdout
    for i in range(args.lines):
        record = vary(records[i % len(records)], i, args.patients)
        out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
