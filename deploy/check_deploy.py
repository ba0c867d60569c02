#!/usr/bin/env python3
"""Checks of the deployment files that no generic linter makes (issue 8).

deploy/validate.sh runs this after hadolint, the compose-spec schema and
kubernetes-validate, which check that the files are well-formed; this checks
that they are what the issue asks for, and that they fit recordbridge itself
(its settings, its CLI, its mapping files).

    check_deploy.py check --repo DIR --kubernetes DIR --container DIR
        Every property below; prints `ok:`/`FAIL:` lines, exits 1 on a FAIL.
    check_deploy.py app-check --repo DIR --kubernetes DIR --container DIR --bin BIN
        Runs `recordbridge check` (the bridge's own validation of every
        setting and of the format mapping files) on the Kubernetes config with
        the Secret's and the image's environment and the ConfigMap's mapping
        files, and on compose.yaml's bridge environment.
    check_deploy.py sync-mappings --repo DIR --kubernetes DIR
        Rewrites the ConfigMap recordbridge-mappings in configmap.yaml from
        mappings/ (the check fails while the two differ).

Needs Python >= 3.11 (tomllib) and PyYAML (in validate.sh's venv).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# Settings that deploy files use before deploy/recordbridge.example.toml lists
# them: issue 8's partitioned consumption (src/config.rs AmqpConfig). Once the
# example config has them, these entries are redundant (and harmless).
EXTRA_SETTINGS = {"amqp.partitions", "amqp.partition_exchange", "amqp.lease_secs"}
# RECORDBRIDGE_* variables that are not settings (src/config.rs filters them).
NON_SETTING_VARS = {"RECORDBRIDGE_CONFIG"}

HEALTH_PORT = 9464
MAPPINGS_CONFIGMAP = "recordbridge-mappings"
MAPPINGS_HEADER = """\
# recordbridge-mappings: the files of mappings/ (local identifier patterns,
# task rules, platform formats), mounted at /etc/recordbridge/mappings.
# GENERATED from mappings/ by
#   python3 deploy/check_deploy.py sync-mappings --repo . --kubernetes deploy/kubernetes
# and deploy/validate.sh fails while the two differ. A trust changes its own
# copy with a kustomize overlay (the bridge reads the files at start:
# kubectl rollout restart deployment/recordbridge). ConfigMap keys cannot
# contain "/", so formats/NAME.toml is the key formats.NAME.toml; the
# Deployment's volume items put it back in formats/.
"""


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.checks = 0
        self.failures = 0

    def check(self, cond: object, what: str) -> bool:
        self.checks += 1
        if not cond:
            print(f"FAIL: {what}")
            self.failures += 1
        elif not self.quiet:
            print(f"ok:   {what}")
        return bool(cond)


# ----------------------------------------------------------------- settings --


def known_settings(example: Path) -> set[str]:
    """Dotted names of every setting deploy/recordbridge.example.toml shows,
    including the commented-out ones (`# ledger = ...`)."""
    keys: set[str] = set()

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                keys.add(prefix + k)

    text = example.read_text()
    walk(tomllib.loads(text), "")
    section = ""
    for line in text.splitlines():
        m = re.match(r"^\[([a-z_.]+)\]", line)
        if m:
            section = m.group(1) + "."
            continue
        m = re.match(r"^#\s*([a-z_]+)\s*=", line)
        if m:
            keys.add(section + m.group(1))
    return keys | EXTRA_SETTINGS


def setting_of_var(name: str) -> str:
    """RECORDBRIDGE_FHIR__AUTH__MODE -> fhir.auth.mode (figment's mapping)."""
    return name[len("RECORDBRIDGE_"):].lower().replace("__", ".")


def check_env_names(r: Report, env: dict, known: set[str], where: str) -> None:
    for name in env:
        if not name.startswith("RECORDBRIDGE_") or name in NON_SETTING_VARS:
            continue
        r.check(
            setting_of_var(name) in known,
            f"{where}: {name} is a recordbridge setting ({setting_of_var(name)}); "
            "an unknown RECORDBRIDGE_* variable stops the bridge at start",
        )


def toml_keys(d: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        if isinstance(v, dict):
            out |= toml_keys(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


# --------------------------------------------------------------- Dockerfile --


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per stage, continuation lines joined and
    comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instr, args.strip()))
    return stages


def copy_parts(args: str) -> tuple[list[str], list[str]]:
    """(--flags, [sources..., dest]) of a COPY/ADD instruction."""
    if args.lstrip().startswith("["):
        words = json.loads(args)
        return [], words
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    return flags, [w for w in words if not w.startswith("--")]


def check_dockerfile_common(r: Report, path: Path) -> list[list[tuple[str, str]]]:
    name = path.name
    stages = dockerfile_stages(path)
    r.check(len(stages) >= 2, f"{name}: multi-stage build ({len(stages)} FROM stages)")
    final = stages[-1] if stages else []
    users = [a for i, a in final if i == "USER"]
    user = users[-1].split(":")[0] if users else ""
    r.check(
        user and user not in ("root", "0"),
        f"{name}: the final stage runs as a non-root USER ({users[-1] if users else 'none'})",
    )
    hc = [a for i, a in final if i == "HEALTHCHECK"]
    r.check(
        hc and not hc[-1].upper().startswith("NONE"),
        f"{name}: the final stage has a HEALTHCHECK",
    )
    for st in stages:
        image = st[0][1].split()[0] if st else ""
        if image.startswith("--"):
            image = st[0][1].split()[1]
        stage_names = {s[0][1].split()[-1] for s in stages if " AS " in s[0][1].upper()}
        if image in stage_names:
            continue
        tag = image.rsplit("/", 1)[-1]
        r.check(
            (":" in tag and not tag.endswith(":latest")) or "@sha256:" in image,
            f"{name}: base image {image} is pinned to a tag other than latest",
        )
    return stages


def check_bridge_dockerfile(r: Report, repo: Path, path: Path) -> dict:
    stages = check_dockerfile_common(r, path)
    final = stages[-1] if stages else []
    name = path.name
    exposes = " ".join(a for i, a in final if i == "EXPOSE").split()
    r.check(str(HEALTH_PORT) in [e.split("/")[0] for e in exposes], f"{name}: EXPOSE {HEALTH_PORT}")
    entry = " ".join(a for i, a in final if i == "ENTRYPOINT")
    r.check("/usr/local/bin/recordbridge" in entry, f"{name}: ENTRYPOINT is /usr/local/bin/recordbridge")
    hc = " ".join(a for i, a in final if i == "HEALTHCHECK")
    r.check("/healthz" in hc and str(HEALTH_PORT) in hc, f"{name}: the HEALTHCHECK asks /healthz on {HEALTH_PORT}")
    # The relative mapping defaults must resolve from the working directory.
    workdirs = [a for i, a in final if i == "WORKDIR"]
    workdir = workdirs[-1] if workdirs else "/"
    mapping_dests = []
    for i, a in final:
        if i == "COPY":
            flags, words = copy_parts(a)
            if not any(f.startswith("--from") for f in flags) and words[:-1] == ["mappings"]:
                mapping_dests.append(words[-1].rstrip("/"))
    r.check(
        mapping_dests and mapping_dests[-1] == os.path.join(workdir, "mappings"),
        f"{name}: mappings/ is copied to WORKDIR/mappings ({workdir}/mappings), where the "
        "default settings mappings/identifiers.toml, mappings/tasks.toml, mappings/formats resolve",
    )
    env: dict[str, str] = {}
    for i, a in final:
        if i == "ENV":
            for word in shlex.split(a):
                k, _, v = word.partition("=")
                env[k] = v
    r.check(
        env.get("RECORDBRIDGE_HEALTH__LISTEN", "").endswith(f":{HEALTH_PORT}")
        and env.get("RECORDBRIDGE_HEALTH__LISTEN", "").startswith("0.0.0.0"),
        f"{name}: RECORDBRIDGE_HEALTH__LISTEN=0.0.0.0:{HEALTH_PORT} (reachable from outside the container)",
    )
    # Everything Cargo.toml names must be in the build context of stage 1:
    # cargo refuses a manifest whose [lib]/[[bin]]/[[bench]] files are missing.
    manifest = tomllib.loads((repo / "Cargo.toml").read_text())
    needed = {"Cargo.toml", "Cargo.lock"}
    for t in [manifest.get("lib", {})] + manifest.get("bin", []):
        if t.get("path"):
            needed.add(Path(t["path"]).parts[0])
    for b in manifest.get("bench", []):
        needed.add(Path(b.get("path", f"benches/{b['name']}.rs")).parts[0])
    copied: set[str] = set()
    for i, a in stages[0] if stages else []:
        if i == "COPY":
            flags, words = copy_parts(a)
            if not any(f.startswith("--from") for f in flags):
                copied |= {Path(w).parts[0] for w in words[:-1]}
    r.check(
        needed <= copied,
        f"{name}: the build stage copies what Cargo.toml needs ({', '.join(sorted(needed))})"
        + (f"; missing {', '.join(sorted(needed - copied))}" if not needed <= copied else ""),
    )
    return env


def check_dockerignore(r: Report, repo: Path) -> None:
    p = repo / ".dockerignore"
    if not r.check(p.is_file(), ".dockerignore exists at the repository root"):
        return
    pats = [l.strip() for l in p.read_text().splitlines() if l.strip() and not l.startswith("#")]
    norm = {x.rstrip("/").lstrip("/") for x in pats}
    for must in ("target", "out", ".git"):
        r.check(must in norm, f".dockerignore excludes {must}")
    for need in ("Cargo.toml", "Cargo.lock", "src", "benches", "mappings"):
        r.check(need not in norm, f".dockerignore keeps {need} (the build needs it)")


# ------------------------------------------------------------------ compose --


def compose_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.partition("=")[::2] for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def rabbit_hash_matches(password_hash: str, password: str) -> bool:
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def check_compose(r: Report, repo: Path, cdir: Path, known: set[str]) -> dict:
    path = cdir / "compose.yaml"
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services", {})
    for s in ("rabbitmq", "postgres", "fhir", "bridge"):
        r.check(s in services, f"compose.yaml: service {s}")
    for name, svc in services.items():
        hc = svc.get("healthcheck") or {}
        r.check(hc.get("test") and not hc.get("disable"), f"compose.yaml: service {name} has a healthcheck")
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                r.check((cdir / src).exists(), f"compose.yaml: {name} mounts {src}, which exists")
        build = svc.get("build")
        if build:
            ctx = cdir / (build.get("context", ".") if isinstance(build, dict) else build)
            df = (ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")).resolve()
            shown = df.relative_to(repo) if df.is_relative_to(repo) else df
            r.check(df.is_file(), f"compose.yaml: {name} builds from {shown}, which exists")
    bridge = services.get("bridge", {})
    build = bridge.get("build") or {}
    df = (cdir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
    r.check(df == (cdir / "Dockerfile").resolve(), "compose.yaml: bridge is built from deploy/container/Dockerfile")
    replicas = (bridge.get("deploy") or {}).get("replicas", 1)
    r.check(int(replicas) == 3, f"compose.yaml: bridge deploy.replicas is 3 ({replicas})")
    deps = bridge.get("depends_on") or {}
    for s in ("rabbitmq", "postgres", "fhir"):
        cond = deps.get(s, {}).get("condition") if isinstance(deps, dict) else None
        r.check(cond == "service_healthy", f"compose.yaml: bridge depends_on {s} with condition service_healthy")
    env = compose_env(bridge)
    check_env_names(r, env, known, "compose.yaml bridge")
    src = urlsplit(env.get("RECORDBRIDGE_SOURCE", ""))
    r.check(src.scheme == "amqp" and src.hostname in services, "compose.yaml: RECORDBRIDGE_SOURCE is amqp:// to a service of the stack")
    sink = env.get("RECORDBRIDGE_SINK", "")
    sink_url = urlsplit(sink.removeprefix("fhir:"))
    r.check(sink.startswith("fhir:") and sink_url.hostname == "fhir" and sink_url.port == 8080,
            "compose.yaml: RECORDBRIDGE_SINK is fhir:http://fhir:8080 (hfs's default port)")
    fhir_env = compose_env(services.get("fhir", {}))
    r.check(fhir_env.get("HFS_BASE_URL", "http://fhir:8080").rstrip("/") == sink.removeprefix("fhir:").rstrip("/"),
            "compose.yaml: the FHIR server's HFS_BASE_URL is the bridges' sink URL")
    r.check(env.get("RECORDBRIDGE_LEDGER", "").startswith("postgres://"),
            "compose.yaml: the replicas share a PostgreSQL ledger (a SQLite file cannot be shared)")
    r.check(env.get("RECORDBRIDGE_AMQP__PARTITIONS") == "8", "compose.yaml: RECORDBRIDGE_AMQP__PARTITIONS is 8")
    grace = str(bridge.get("stop_grace_period", "10s"))
    m = re.fullmatch(r"(\d+)s", grace)
    r.check(m and int(m.group(1)) >= 30, f"compose.yaml: bridge stop_grace_period leaves time to drain ({grace})")
    # RabbitMQ: plugins, definitions at boot, and a user the bridge can log in as.
    rabbit = services.get("rabbitmq", {})
    mounts = {}
    for vol in rabbit.get("volumes") or []:
        if isinstance(vol, str) and vol.startswith("."):
            host, target = vol.split(":")[:2]
            mounts[target] = (cdir / host).resolve()
    plugins = mounts.get("/etc/rabbitmq/enabled_plugins")
    r.check(plugins and "rabbitmq_consistent_hash_exchange" in plugins.read_text(),
            "compose.yaml: rabbitmq's enabled_plugins has rabbitmq_consistent_hash_exchange")
    conf = next((p for t, p in mounts.items() if t.startswith("/etc/rabbitmq/conf.d/")), None)
    load = None
    if conf:
        m = re.search(r"^load_definitions\s*=\s*(\S+)", conf.read_text(), re.M)
        load = m.group(1) if m else None
    r.check(load, "compose.yaml: a mounted rabbitmq.conf sets load_definitions")
    loaded = {t: p for t, p in mounts.items() if load and (t == load or t.startswith(load.rstrip("/") + "/"))}
    r.check((repo / "deploy/rabbitmq/definitions-partitioned.json").resolve() in loaded.values(),
            "compose.yaml: deploy/rabbitmq/definitions-partitioned.json is among the definitions loaded at boot")
    users = {}
    for p in loaded.values():
        for u in json.loads(p.read_text()).get("users", []):
            users[u["name"]] = u
    user = users.get(unquote(src.username or ""))
    r.check(user and rabbit_hash_matches(user["password_hash"], unquote(src.password or "")),
            f"compose.yaml: RabbitMQ user {src.username!r} is defined at boot with the password RECORDBRIDGE_SOURCE uses "
            "(a node importing definitions at boot creates no default user)")
    return env


# --------------------------------------------------------------- kubernetes --


def load_manifests(kdir: Path, r: Report) -> tuple[list[dict], list[str]]:
    kust = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    listed = kust.get("resources", [])
    present = sorted(p.name for p in kdir.glob("*.yaml") if p.name != "kustomization.yaml")
    r.check(sorted(listed) == present, f"kustomization.yaml lists every manifest ({', '.join(present)})")
    r.check(kust.get("namespace") == "recordbridge", "kustomization.yaml: namespace recordbridge")
    docs = []
    for name in listed:
        p = kdir / name
        if not r.check(p.is_file(), f"kustomization.yaml: {name} exists"):
            continue
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                d["__file__"] = name
                docs.append(d)
    return docs, listed


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(r: Report, repo: Path, kdir: Path, known: set[str], image_env: dict) -> None:
    docs, _ = load_manifests(kdir, r)
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d.get("kind", ""), []).append(d)
        if d.get("kind") != "Namespace":
            r.check(d.get("metadata", {}).get("namespace") == "recordbridge",
                    f"{d['__file__']}: {d.get('kind')} {d.get('metadata', {}).get('name')} is in namespace recordbridge")
    r.check(any(d["metadata"]["name"] == "recordbridge" for d in by_kind.get("Namespace", [])), "namespace.yaml: Namespace recordbridge")
    deps = by_kind.get("Deployment", [])
    if not r.check(len(deps) == 1, "one Deployment"):
        return
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    r.check(matches(spec["selector"].get("matchLabels", {}), labels), "deployment.yaml: the selector matches the pod labels")
    replicas = spec.get("replicas", 1)
    r.check(replicas == 3, f"deployment.yaml: replicas 3 ({replicas})")
    ann = spec["template"]["metadata"].get("annotations", {})
    r.check(ann.get("prometheus.io/scrape") == "true", "deployment.yaml: pod annotation prometheus.io/scrape \"true\"")
    r.check(ann.get("prometheus.io/port") == str(HEALTH_PORT), f"deployment.yaml: pod annotation prometheus.io/port \"{HEALTH_PORT}\"")
    r.check(ann.get("prometheus.io/path") == "/metrics", "deployment.yaml: pod annotation prometheus.io/path /metrics")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    r.check(grace >= 60, f"deployment.yaml: terminationGracePeriodSeconds >= 60 for the drain on SIGTERM ({grace})")
    r.check(pod.get("enableServiceLinks") is False,
            "deployment.yaml: enableServiceLinks false (Service \"recordbridge\" would inject RECORDBRIDGE_SERVICE_HOST etc., "
            "which the bridge reads as unknown settings)")
    psc = pod.get("securityContext", {})
    r.check(psc.get("runAsNonRoot") is True, "deployment.yaml: pod runAsNonRoot true")
    r.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "deployment.yaml: pod seccompProfile RuntimeDefault")
    tsc = pod.get("topologySpreadConstraints", [])
    r.check(any(t.get("topologyKey") == "kubernetes.io/hostname" and matches(t.get("labelSelector", {}).get("matchLabels", {}), labels)
                for t in tsc), "deployment.yaml: topologySpreadConstraints spread the pods across nodes")
    containers = pod.get("containers", [])
    if not r.check(len(containers) == 1, "deployment.yaml: one container"):
        return
    c = containers[0]
    image = c.get("image", "")
    r.check(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"deployment.yaml: image has a version tag ({image})")

    def probe(kind: str, path: str) -> None:
        p = c.get(kind) or {}
        hg = p.get("httpGet") or {}
        r.check(hg.get("path") == path and hg.get("port") in (HEALTH_PORT, "metrics"),
                f"deployment.yaml: {kind} is httpGet {path} on port {HEALTH_PORT}")

    probe("readinessProbe", "/readyz")
    probe("livenessProbe", "/healthz")
    probe("startupProbe", "/healthz")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        for q in ("cpu", "memory"):
            r.check(q in res.get(k, {}), f"deployment.yaml: resources.{k}.{q}")
    req, lim = res.get("requests", {}), res.get("limits", {})
    r.check((req.get("cpu"), req.get("memory"), str(lim.get("cpu")), lim.get("memory")) == ("250m", "128Mi", "1", "512Mi"),
            "deployment.yaml: requests cpu 250m memory 128Mi, limits cpu 1 memory 512Mi")
    sc = c.get("securityContext", {})
    r.check(sc.get("runAsNonRoot") is True, "deployment.yaml: container runAsNonRoot true")
    r.check(sc.get("readOnlyRootFilesystem") is True, "deployment.yaml: readOnlyRootFilesystem true")
    r.check(sc.get("allowPrivilegeEscalation") is False, "deployment.yaml: allowPrivilegeEscalation false")
    r.check([x.upper() for x in sc.get("capabilities", {}).get("drop", [])] == ["ALL"], "deployment.yaml: capabilities drop ALL")
    r.check(sc.get("seccompProfile", {}).get("type", psc.get("seccompProfile", {}).get("type")) == "RuntimeDefault",
            "deployment.yaml: container seccompProfile RuntimeDefault")
    ports = {p.get("containerPort") for p in c.get("ports", [])}
    r.check(HEALTH_PORT in ports, f"deployment.yaml: containerPort {HEALTH_PORT}")

    # Secret via envFrom.
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    env_secrets = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    r.check(env_secrets and all(s in secrets for s in env_secrets), "deployment.yaml: envFrom a Secret defined in secret.yaml")
    secret_env: dict[str, str] = {}
    for s in env_secrets:
        sec = secrets.get(s, {})
        r.check(sec.get("type") == "Opaque", f"secret.yaml: Secret {s} is type Opaque")
        data = {k: str(v) for k, v in (sec.get("stringData") or {}).items()}
        secret_env.update(data)
        for k, v in data.items():
            r.check("CHANGE-ME" in v, f"secret.yaml: {k} holds a CHANGE-ME placeholder, not a credential")
        r.check(not sec.get("data"), f"secret.yaml: Secret {s} has stringData placeholders only (no base64 data)")
    check_env_names(r, secret_env, known, "secret.yaml")
    check_env_names(r, {e["name"]: e.get("value", "") for e in c.get("env", [])}, known, "deployment.yaml env")
    r.check(secret_env.get("RECORDBRIDGE_SOURCE", "").startswith("amqp://"), "secret.yaml: RECORDBRIDGE_SOURCE is an amqp:// URL")
    r.check(secret_env.get("RECORDBRIDGE_LEDGER", "").startswith("postgres://"),
            "secret.yaml: RECORDBRIDGE_LEDGER is PostgreSQL (shared by the replicas)")

    # Config and mappings from ConfigMaps.
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    args = c.get("args", [])
    cfg_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    r.check(cfg_path and "run" in args and args.index("run") > args.index("--config"),
            f"deployment.yaml: args give the global --config FILE, then the subcommand run ({args})")
    cfg_text = None
    mappings_mount = None
    mapping_files: dict[str, str] = {}
    for vm in c.get("volumeMounts", []):
        v = vols.get(vm["name"], {})
        cm = v.get("configMap")
        if not cm:
            continue
        r.check(cm["name"] in cms, f"deployment.yaml: volume {vm['name']} is ConfigMap {cm['name']}, defined in configmap.yaml")
        data = cms.get(cm["name"], {}).get("data", {})
        if vm.get("mountPath") == cfg_path:
            cfg_text = data.get(vm.get("subPath", ""))
        elif cm["name"] == MAPPINGS_CONFIGMAP:
            mappings_mount = vm["mountPath"]
            items = cm.get("items")
            if items is None:
                items = [{"key": k, "path": k} for k in data]
            for it in items:
                r.check(it["key"] in data, f"deployment.yaml: mapping item {it['key']} exists in the ConfigMap")
                mapping_files[it["path"]] = data.get(it["key"], "")
            for k in data:
                r.check(any(it["key"] == k for it in items), f"deployment.yaml: ConfigMap key {k} is mounted")
                if k.startswith("formats."):
                    want = "formats/" + k.removeprefix("formats.")
                    r.check(any(it["key"] == k and it["path"] == want for it in items),
                            f"deployment.yaml: {k} is mounted as {want}")
    if not r.check(cfg_text is not None, f"deployment.yaml: {cfg_path} is mounted from a ConfigMap"):
        return
    try:
        cfg = tomllib.loads(cfg_text)
    except tomllib.TOMLDecodeError as e:
        r.check(False, f"configmap.yaml: recordbridge.toml is TOML ({e})")
        return
    r.check(True, "configmap.yaml: recordbridge.toml is TOML")
    unknown = toml_keys(cfg) - known
    r.check(not unknown, "configmap.yaml: recordbridge.toml has only known settings"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
    r.check(cfg.get("amqp", {}).get("partitions") == 8, "configmap.yaml: [amqp] partitions = 8")
    listen = cfg.get("health", {}).get("listen", "")
    r.check(listen == f"0.0.0.0:{HEALTH_PORT}", f"configmap.yaml: health.listen \"0.0.0.0:{HEALTH_PORT}\" ({listen})")
    r.check(not {"source", "ledger"} & set(cfg), "configmap.yaml: source and ledger (with passwords) are not in the ConfigMap")
    secret_var = cfg.get("fhir", {}).get("auth", {}).get("secret_env")
    if cfg.get("fhir", {}).get("auth", {}).get("mode", "none") != "none":
        r.check(secret_var in secret_env, f"configmap.yaml: fhir.auth.secret_env names a variable of the Secret ({secret_var})")
    r.check(mappings_mount, "deployment.yaml: the ConfigMap recordbridge-mappings is mounted")
    if mappings_mount:
        for setting, default in (("identifiers", "mappings/identifiers.toml"), ("tasks", "mappings/tasks.toml")):
            p = cfg.get(setting, default)
            rel = os.path.relpath(p, mappings_mount) if os.path.isabs(p) else None
            r.check(rel in mapping_files, f"configmap.yaml: {setting} = {p} is a mounted mapping file")
        fdir = cfg.get("formats", "mappings/formats")
        rel = os.path.relpath(fdir, mappings_mount) if os.path.isabs(fdir) else None
        r.check(rel and any(k.startswith(rel + "/") for k in mapping_files),
                f"configmap.yaml: formats = {fdir} is the mounted formats directory")
        for path_, text in mapping_files.items():
            try:
                tomllib.loads(text)
                r.check(True, f"configmap.yaml: mapping file {path_} is TOML")
            except tomllib.TOMLDecodeError as e:
                r.check(False, f"configmap.yaml: mapping file {path_} is TOML ({e})")
    # The copy of mappings/ must be the repository's.
    want = mappings_configmap_data(repo)
    have = cms.get(MAPPINGS_CONFIGMAP, {}).get("data", {})
    r.check(have == want, "configmap.yaml: recordbridge-mappings equals mappings/ "
            + ("" if have == want else f"(differs in {', '.join(sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k)))}; "
                                       "run: python3 deploy/check_deploy.py sync-mappings --repo . --kubernetes deploy/kubernetes)"))
    # Image environment beats the config file: they must agree.
    for var, val in image_env.items():
        if var.startswith("RECORDBRIDGE_"):
            keys = setting_of_var(var).split(".")
            cur = cfg
            for k in keys:
                cur = cur.get(k, {}) if isinstance(cur, dict) else {}
            if cur != {}:
                r.check(str(cur) == val, f"configmap.yaml: {'.'.join(keys)} agrees with the image's {var}={val}")

    # Service and PodDisruptionBudget.
    svcs = by_kind.get("Service", [])
    r.check(any(s["spec"].get("type", "ClusterIP") == "ClusterIP" and matches(s["spec"].get("selector", {}), labels)
                and any(p.get("name") == "metrics" and p.get("port") == HEALTH_PORT for p in s["spec"].get("ports", []))
                for s in svcs), f"service.yaml: ClusterIP Service selecting the pods, port {HEALTH_PORT} named metrics")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    r.check(any(p.get("apiVersion") == "policy/v1" for p in pdbs), "pdb.yaml: a PodDisruptionBudget (policy/v1)")
    for p in pdbs:
        r.check(matches(p["spec"].get("selector", {}).get("matchLabels", {}), labels), "pdb.yaml: its selector matches the pods")
        r.check(p["spec"].get("minAvailable") == 2 and 2 < replicas,
                "pdb.yaml: minAvailable 2, below replicas (so a node can still be drained)")


# ----------------------------------------------------------------- mappings --


def mappings_configmap_data(repo: Path) -> dict[str, str]:
    m = repo / "mappings"
    data = {
        "identifiers.toml": (m / "identifiers.toml").read_text(),
        "tasks.toml": (m / "tasks.toml").read_text(),
    }
    for p in sorted((m / "formats").glob("*.toml")):
        data[f"formats.{p.name}"] = p.read_text()
    return data


def block_scalar(text: str, indent: str) -> str:
    """A YAML literal block holding `text` exactly: the chomping indicator
    keeps its ending (one newline: |, several: |+, none: |-)."""
    ind = "|+" if text.endswith("\n\n") else "|" if text.endswith("\n") else "|-"
    body = "".join(indent + line if line.strip() else "\n" for line in text.splitlines(keepends=True))
    return f"{ind}\n{body}" + ("" if body.endswith("\n") else "\n")


def sync_mappings(repo: Path, kdir: Path) -> None:
    path = kdir / "configmap.yaml"
    text = path.read_text()
    first = re.split(r"^---\s*$", text, flags=re.M)[0].rstrip("\n") + "\n"
    out = [first, "---\n", MAPPINGS_HEADER,
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
           f"  name: {MAPPINGS_CONFIGMAP}\n  namespace: recordbridge\n  labels:\n"
           "    app.kubernetes.io/name: recordbridge\n    app.kubernetes.io/component: bridge\ndata:\n"]
    data = mappings_configmap_data(repo)
    for k, v in data.items():
        out.append(f"  {k}: {block_scalar(v, '    ')}")
    new = "".join(out)
    docs = list(yaml.safe_load_all(new))
    assert docs[-1]["data"] == data, "generated YAML does not round-trip"
    path.write_text(new)
    print(f"wrote {path} ({', '.join(data)})")


# ---------------------------------------------------------------- app-check --


def app_check(repo: Path, kdir: Path, cdir: Path, binary: str) -> int:
    """recordbridge's own `check` on the deployment's configuration."""
    r = Report()
    if "/" in binary:
        binary = str(Path(binary).resolve())  # the checks run in other directories
    image_env = {}
    for st in dockerfile_stages(cdir / "Dockerfile")[-1:]:
        for i, a in st:
            if i == "ENV":
                for word in shlex.split(a):
                    k, _, v = word.partition("=")
                    image_env[k] = v
    base = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}

    def run(what: str, env: dict, args: list[str], cwd: Path) -> None:
        p = subprocess.run([binary, *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        if p.returncode != 0:
            print(f"  $ {' '.join(shlex.quote(a) for a in [binary, *args])}  (exit {p.returncode})")
            for line in (p.stderr or p.stdout).strip().splitlines()[-10:]:
                print(f"  | {line}")
        r.check(p.returncode == 0, f"recordbridge check accepts {what}")

    # Kubernetes: the files as the pod sees them, under a temporary root.
    docs, _ = load_manifests(kdir, Report(quiet=True))
    dep = next(d for d in docs if d.get("kind") == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    cms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def under_root(p: str) -> str:
            return str(root / p.lstrip("/"))

        for vm in c.get("volumeMounts", []):
            cm = vols.get(vm["name"], {}).get("configMap")
            if not cm:
                continue
            data = cms[cm["name"]]["data"]
            if "subPath" in vm:
                files = {"": data[vm["subPath"]]}
            else:
                items = cm.get("items") or [{"key": k, "path": k} for k in data]
                files = {it["path"]: data[it["key"]] for it in items}
            for rel, text in files.items():
                target = Path(under_root(vm["mountPath"])) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if "subPath" in vm:
                    text = re.sub(r'"(/etc/recordbridge/[^"]*)"', lambda m: f'"{under_root(m.group(1))}"', text)
                target.write_text(text)
        env = dict(image_env)
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                env.update({k: str(v) for k, v in secrets[e["secretRef"]["name"]].get("stringData", {}).items()})
        # Paths in the environment as the pod sees them (`check` loads the
        # identifier and task rules they name).
        env = {k: under_root(v) if v.startswith("/etc/recordbridge/") else v for k, v in env.items()}
        args = [under_root(a) if a.startswith("/etc/recordbridge/") else a for a in c["args"]]
        args = [("check" if a == "run" else a) for a in args]
        workdir = Path(under_root("/etc/recordbridge"))
        run("the Kubernetes config (configmap.yaml, secret.yaml, the image's ENV)", env, args, workdir)

    # compose: the bridge's environment, from the image's working directory
    # (here: the repository, whose mappings/ the image copies).
    doc = yaml.safe_load((cdir / "compose.yaml").read_text())
    env = {**image_env, **compose_env(doc["services"]["bridge"])}
    # The image copies the repository's mappings/ to /etc/recordbridge/mappings.
    env = {k: str(repo / "mappings" / v.removeprefix("/etc/recordbridge/mappings/"))
           if v.startswith("/etc/recordbridge/mappings/") else v for k, v in env.items()}
    run("compose.yaml's bridge environment", env, ["check"], repo)
    print(f"check_deploy.py app-check: {r.checks} checks, {r.failures} failed")
    return 1 if r.failures else 0


# --------------------------------------------------------------------- main --


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check", "app-check", "sync-mappings"])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--kubernetes", type=Path, required=True)
    ap.add_argument("--container", type=Path)
    ap.add_argument("--bin")
    ap.add_argument("--quiet", action="store_true", help="print failed checks only, and the totals")
    a = ap.parse_args()
    repo = a.repo.resolve()
    if a.command == "sync-mappings":
        sync_mappings(repo, a.kubernetes)
        return 0
    cdir = (a.container or repo / "deploy/container").resolve()
    if a.command == "app-check":
        if not a.bin:
            ap.error("app-check needs --bin")
        return app_check(repo, a.kubernetes, cdir, a.bin)
    r = Report(a.quiet)
    known = known_settings(repo / "deploy/recordbridge.example.toml")
    image_env = check_bridge_dockerfile(r, repo, cdir / "Dockerfile")
    check_dockerfile_common(r, cdir / "hfs.Dockerfile")
    check_dockerignore(r, repo)
    check_compose(r, repo, cdir, known)
    check_kubernetes(r, repo, a.kubernetes, known, image_env)
    print(f"check_deploy.py: {r.checks} checks, {r.failures} failed")
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
