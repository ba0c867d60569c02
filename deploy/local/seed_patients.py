#!/usr/bin/env python3
"""Seed synthetic Patients into a FHIR R4 server (stdlib only).

Usage:
    seed_patients.py --base http://127.0.0.1:8090 --patients fixtures/patients.json

The patients file is a JSON array of objects:
    {"nhs_number": "9990000018", "hospital_number": "RBH1234567",
     "family": "Smith", "given": "Alex" | ["Alex", "J"],
     "birth_date": "1950-01-31", "gender": "female"}

Each becomes a Patient with identifiers
    https://fhir.nhs.uk/Id/nhs-number              (nhs_number)
    https://fhir.trust.example/Id/hospital-number  (hospital_number, if given)
POSTed in transaction Bundles as conditional creates
(ifNoneExist: identifier=https://fhir.nhs.uk/Id/nhs-number|N), so running the
script again creates nothing new. Afterwards every NHS number is searched for
and must match exactly one Patient (this also catches a server that ignores
identifier searches because its search parameters are not loaded).

Exit status: 0 on success, 1 on any failure, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
HOSPITAL_SYSTEM = "https://fhir.trust.example/Id/hospital-number"
GENDERS = {
    "male": "male", "m": "male",
    "female": "female", "f": "female",
    "other": "other", "o": "other",
    "unknown": "unknown", "u": "unknown",
}
FHIR_JSON = "application/fhir+json"


def die(msg: str, code: int = 1) -> None:
    print(f"seed_patients: {msg}", file=sys.stderr)
    sys.exit(code)


def http(method: str, url: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", FHIR_JSON)
    if data is not None:
        req.add_header("Content-Type", FHIR_JSON)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except urllib.error.URLError as e:
        die(f"{method} {url}: {e.reason}")
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", "replace")


def outcome_text(body: Any) -> str:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(
            f"{i.get('severity', '?')}/{i.get('code', '?')}: {i.get('diagnostics') or i.get('details', {}).get('text', '')}"
            for i in body.get("issue", [])
        )
    return str(body)[:500]


def to_patient(p: dict, index: int) -> dict:
    nhs = str(p.get("nhs_number") or "").replace(" ", "")
    if not nhs.isdigit() or len(nhs) != 10:
        die(f"patients[{index}]: nhs_number {p.get('nhs_number')!r} is not 10 digits", 2)
    identifiers = [{"system": NHS_SYSTEM, "value": nhs}]
    if p.get("hospital_number"):
        identifiers.append({"system": HOSPITAL_SYSTEM, "value": str(p["hospital_number"])})
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
    given = p.get("given")
    if isinstance(given, str):
        given = given.split()
    name: dict[str, Any] = {}
    if p.get("family"):
        name["family"] = str(p["family"])
    if given:
        name["given"] = [str(g) for g in given]
    if name:
        name["use"] = "official"
        patient["name"] = [name]
    if p.get("gender"):
        g = GENDERS.get(str(p["gender"]).strip().lower())
        if g is None:
            die(f"patients[{index}]: gender {p['gender']!r} is not male/female/other/unknown", 2)
        patient["gender"] = g
    if p.get("birth_date"):
        patient["birthDate"] = str(p["birth_date"])
    return patient


def transaction(patients: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": pt,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={NHS_SYSTEM}|{pt['identifier'][0]['value']}",
                },
            }
            for pt in patients
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="Seed synthetic Patients (idempotent conditional creates).")
    ap.add_argument("--base", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8090")
    ap.add_argument("--patients", required=True, help="JSON array of patients (fixtures/patients.json)")
    ap.add_argument("--batch-size", type=int, default=100, help="entries per transaction Bundle (default 100)")
    ap.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds")
    ap.add_argument("--no-verify", action="store_true", help="skip the identifier search check afterwards")
    ap.add_argument("--print-bundle", action="store_true", help="print the transaction Bundle(s) and exit")
    args = ap.parse_args()
    base = args.base.rstrip("/")

    try:
        with open(args.patients, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f"cannot read {args.patients}: {e}", 2)
    if not isinstance(raw, list):
        die(f"{args.patients}: expected a JSON array", 2)
    patients = [to_patient(p if isinstance(p, dict) else {}, i) for i, p in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, pt in enumerate(patients):
        nhs = pt["identifier"][0]["value"]
        if nhs in seen:
            die(f"patients[{i}]: nhs_number {nhs} repeats patients[{seen[nhs]}]", 2)
        seen[nhs] = i

    batches = [patients[i:i + args.batch_size] for i in range(0, len(patients), max(1, args.batch_size))]
    if args.print_bundle:
        for b in batches:
            print(json.dumps(transaction(b), indent=2))
        return 0

    created = existing = 0
    for n, batch in enumerate(batches, 1):
        status, body = http("POST", base, transaction(batch), args.timeout)
        if status != 200 or not isinstance(body, dict) or body.get("type") != "transaction-response":
            die(f"transaction {n}/{len(batches)} failed: HTTP {status}: {outcome_text(body)}")
        for i, entry in enumerate(body.get("entry", [])):
            code = str(entry.get("response", {}).get("status", "")).split(" ")[0]
            if code == "201":
                created += 1
            elif code == "200":
                existing += 1
            else:
                die(f"transaction {n}: entry {i} answered {entry.get('response')!r}")
    print(f"seed_patients: {len(patients)} patients: {created} created, {existing} already present ({base})")

    if args.no_verify:
        return 0
    bad = 0
    for pt in patients:
        nhs = pt["identifier"][0]["value"]
        q = urllib.parse.urlencode({"identifier": f"{NHS_SYSTEM}|{nhs}"})
        status, body = http("GET", f"{base}/Patient?{q}", timeout=args.timeout)
        if status != 200 or not isinstance(body, dict):
            die(f"search for NHS number {nhs} failed: HTTP {status}: {outcome_text(body)}")
        matches = [e for e in body.get("entry", []) if e.get("resource", {}).get("resourceType") == "Patient"]
        if len(matches) != 1:
            bad += 1
            print(f"seed_patients: NHS number {nhs}: {len(matches)} Patients match (want 1)", file=sys.stderr)
    if bad:
        die(f"{bad} NHS number(s) do not match exactly one Patient; if every search returns everything, "
            "the server has no R4 search parameters (search-parameters-r4.json in its --data-dir)")
    print(f"seed_patients: verified {len(patients)} identifier searches (1 match each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
