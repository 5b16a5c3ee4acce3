#!/usr/bin/env python3
"""A local fake of the Linode API v4, for testing scripts/deploy without an account.

    fake_linode.py --state-dir DIR --openapi subset.json --token TOKEN [--read-only-token TOKEN2]
                   [--port 0] [--sandbox-port 0] [--page-size-cap N]
                   [--timing provisioning=1,booting=1]
                   [--sandbox downloading=2,loading=1 | --sandbox failed | --sandbox never]
                   [--unavailable REGION:TYPE,...] [--account-unavailable REGION,...]
                   [--none-available] [--faults FILE] [--ip-base 127.0.0.10]
    fake_linode.py --self-test --openapi subset.json

Every request body and every response body is checked against the trimmed OpenAPI
description (see /work/shared/linode-openapi/README.md): a request that does not match gets
a 400 whose reason starts with "fake: request does not match Linode's OpenAPI description:";
both kinds of mismatch are appended to DIR/violations.jsonl, which tests expect to stay
absent or empty. Every API request is appended to DIR/requests.jsonl (never the token, never
a root_pass). When listening, DIR/ready.json says {"api": "http://127.0.0.1:PORT/v4",
"sandbox_port": N}.

Operations: GET /regions, /regions/availability, /regions/{id}/availability, /linode/types,
/account/availability, /account/availability/{id}; GET+POST /linode/stackscripts; POST
/networking/firewalls, DELETE /networking/firewalls/{id}; GET+POST /linode/instances, GET+DELETE
/linode/instances/{id}. GET /__fake/state (no auth, unlogged) dumps the stored objects.

An instance goes provisioning -> booting -> running (--timing). Once running, a fake sandbox
answers GET http://<its ipv4>:<sandbox_port>/ready: 503 "downloading" (progress rising), 503
"loading", then 200 "ready" (--sandbox); "failed" stays at 503 "failed"; "never" never listens.

--faults FILE: a JSON list of {"method", "path" (regex on the path), "status", "headers",
"body", "times"}; a matching authorised request gets that answer, `times` times.
"""

import argparse
import copy
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema
from jsonschema.exceptions import ValidationError

VIOLATION_PREFIX = "fake: request does not match Linode's OpenAPI description:"

# --------------------------------------------------------------------------- catalogue

GPU_REGIONS = ["us-ord", "de-fra-2", "jp-osa", "fr-par", "us-sea", "sg-sin-2"]
# (id, label, country); the six GPU regions carry their real labels.
REGIONS = [
    ("us-east", "Newark, NJ", "us"),
    ("us-central", "Dallas, TX", "us"),
    ("us-iad", "Washington, DC", "us"),
    ("us-ord", "Chicago, IL", "us"),
    ("us-sea", "Seattle, WA", "us"),
    ("eu-west", "London, UK", "gb"),
    ("eu-central", "Frankfurt, DE", "de"),
    ("de-fra-2", "Frankfurt 2, DE", "de"),
    ("fr-par", "Paris, FR", "fr"),
    ("ap-south", "Singapore, SG", "sg"),
    ("sg-sin-2", "Singapore 2, SG", "sg"),
    ("ap-northeast", "Tokyo 2, JP", "jp"),
    ("jp-osa", "Osaka, JP", "jp"),
]
REGION_CAPABILITIES = [
    "Linodes", "Backups", "NodeBalancers", "Block Storage", "Object Storage", "Kubernetes",
    "Cloud Firewall", "Vlans", "VPCs", "Metadata", "Placement Group", "Block Storage Encryption",
]

# (id, label, class, gpus, vcpus, memory MB, disk MB, transfer GB, network_out Mbps, hourly, monthly)
TYPES = [
    ("g6-nanode-1", "Nanode 1GB", "nanode", 0, 1, 1024, 25600, 1000, 1000, 0.0075, 5.0),
    ("g6-standard-2", "Linode 4GB", "standard", 0, 2, 4096, 81920, 4000, 4000, 0.036, 24.0),
    ("g1-gpu-rtx6000-1", "Dedicated 32GB + RTX6000 GPU x1", "gpu", 1, 8, 32768, 655360, 16000, 10000, 1.5, 1000.0),
    ("g2-gpu-rtx4000a1-s", "RTX4000 Ada x1 Small", "gpu", 1, 4, 16384, 524288, 16000, 10000, 0.52, 350.0),
    ("g2-gpu-rtx4000a1-m", "RTX4000 Ada x1 Medium", "gpu", 1, 8, 32768, 524288, 16000, 10000, 0.67, 446.0),
    ("g2-gpu-rtx4000a1-l", "RTX4000 Ada x1 Large", "gpu", 1, 16, 65536, 524288, 16000, 10000, 0.96, 638.0),
    ("g2-gpu-rtx4000a1-xl", "RTX4000 Ada x1 X-Large", "gpu", 1, 32, 131072, 524288, 16000, 10000, 1.53, 1019.0),
    ("g2-gpu-rtx4000a2-s", "RTX4000 Ada x2 Small", "gpu", 2, 8, 32768, 1048576, 16000, 10000, 1.04, 700.0),
    ("g2-gpu-rtx4000a2-m", "RTX4000 Ada x2 Medium", "gpu", 2, 16, 65536, 1048576, 16000, 10000, 1.34, 892.0),
    ("g2-gpu-rtx4000a2-hs", "RTX4000 Ada x2 Medium High Storage", "gpu", 2, 16, 65536, 2097152, 16000, 10000, 1.56, 1040.0),
    ("g2-gpu-rtx4000a4-s", "RTX4000 Ada x4 Small", "gpu", 4, 32, 131072, 2097152, 16000, 10000, 2.16, 1446.0),
    ("g2-gpu-rtx4000a4-m", "RTX4000 Ada x4 Medium", "gpu", 4, 48, 196608, 2097152, 16000, 10000, 3.57, 2380.0),
]
# Regions whose price differs from the base one (multipliers), so that per-region price
# display can be tested; Frankfurt 2 only for the smallest RTX 4000 Ada plan.
REGION_PRICE_FACTORS = {"jp-osa": 1.2, "sg-sin-2": 1.15}
DE_FRA_2_PRICED = {"g2-gpu-rtx4000a1-s": 1.1}

ACCOUNT_SERVICES = ["Linodes", "NodeBalancers", "Block Storage", "Kubernetes"]
SSH_KEY_TYPES = {
    "ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com",
}
MODEL_BYTES = 4372812000


def is_rtx4000a(type_id):
    return type_id.startswith("g2-gpu-rtx4000a")


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def price(hourly, monthly, factor=1.0):
    return {"hourly": round(hourly * factor, 4), "monthly": round(monthly * factor, 2)}


def region_prices(type_id, hourly, monthly):
    factors = dict(REGION_PRICE_FACTORS) if is_rtx4000a(type_id) else {}
    if type_id in DE_FRA_2_PRICED:
        factors["de-fra-2"] = DE_FRA_2_PRICED[type_id]
    return [{"id": region, **price(hourly, monthly, f)} for region, f in sorted(factors.items())]


def linode_type(row):
    tid, label, klass, gpus, vcpus, memory, disk, transfer, net_out, hourly, monthly = row
    backup_hourly, backup_monthly = hourly * 0.06, monthly * 0.06
    return {
        "id": tid, "label": label, "class": klass, "gpus": gpus, "vcpus": vcpus,
        "memory": memory, "disk": disk, "transfer": transfer, "network_out": net_out,
        "price": price(hourly, monthly), "region_prices": region_prices(tid, hourly, monthly),
        "addons": {"backups": {"price": price(backup_hourly, backup_monthly),
                               "region_prices": region_prices(tid, backup_hourly, backup_monthly)}},
        "successor": None,
    }


def region_object(rid, label, country):
    caps = REGION_CAPABILITIES + (["GPU Linodes"] if rid in GPU_REGIONS else [])
    return {
        "id": rid, "label": label, "country": country, "capabilities": caps, "status": "ok",
        "site_type": "core",
        "resolvers": {"ipv4": "192.0.2.1,192.0.2.2", "ipv6": "2001:db8::1,2001:db8::2"},
        "placement_group_limits": {"maximum_linodes_per_pg": 5, "maximum_pgs_per_customer": 100,
                                   "maximum_linodes_per_flexible_pg": 5},
    }


# ----------------------------------------------------------- OpenAPI 3.0 -> JSON Schema

# Keys that only document; dropped so that error messages stay short.
DOC_ONLY = {"example", "description", "title", "deprecated"}


def merge_schemas(a, b):
    """Fold schema b into a, as the README asks for allOf: properties and required are
    unions (a property named in both is folded recursively), additionalProperties is false
    if either says so; any other key keeps a's value when both have it."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties":
            props = dict(out[key])
            for name, sub in value.items():
                props[name] = merge_schemas(props[name], sub) if name in props else sub
            out[key] = props
        elif key == "required":
            out[key] = out[key] + [r for r in value if r not in out[key]]
        elif key == "additionalProperties":
            out[key] = False if (out[key] is False or value is False) else out[key]
    return out


class SchemaBuilder:
    """Turns the document's OpenAPI 3.0 schemas into self-contained JSON Schemas (draft 4)."""

    def __init__(self, doc):
        self.doc = doc

    def resolve(self, ref):
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        node = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def fold(self, node, seen=()):
        """Pass 1: inline every $ref and fold every allOf, depth first."""
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ValueError(f"recursive reference {ref}")
            return self.fold(self.resolve(ref), seen + (ref,))
        out = {}
        for key, value in node.items():
            if key in DOC_ONLY or key == "allOf":
                continue
            if key == "properties":
                out[key] = {name: self.fold(sub, seen) for name, sub in value.items()}
            elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
                out[key] = self.fold(value, seen)
            elif key in ("anyOf", "oneOf"):
                out[key] = [self.fold(sub, seen) for sub in value]
            else:
                out[key] = value
        for member in node.get("allOf", []):
            out = merge_schemas(out, self.fold(member, seen))
        return out

    def jsonify(self, node):
        """Pass 2: OpenAPI's `nullable: true` becomes JSON Schema's null type."""
        out = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {name: self.jsonify(sub) for name, sub in value.items()}
            elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
                out[key] = self.jsonify(value)
            elif key in ("anyOf", "oneOf"):
                out[key] = [self.jsonify(sub) for sub in value]
            else:
                out[key] = value
        if not out.pop("nullable", False):
            return out
        if "anyOf" in out or "oneOf" in out or "not" in out:
            # The type alone cannot say "or null" here: the branches would still reject null.
            outer = {k: out.pop(k) for k in ("readOnly", "writeOnly") if k in out}
            return {**outer, "anyOf": [{"type": "null"}, out]}
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
        return out

    def schema(self, node):
        return self.jsonify(self.fold(node))


def _forbid(flag_name, why):
    def check(validator, flag, instance, schema):
        if flag:
            yield ValidationError(f"is {flag_name}: {why}")
    return check


# Requests must not carry readOnly properties, responses must not carry writeOnly ones.
RequestValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"readOnly": _forbid("readOnly", "only the API sets it")})
ResponseValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"writeOnly": _forbid("writeOnly", "the API never returns it")})


def problems_of(validator, instance, field_prefix=""):
    """[{field, message}] for every schema error; field is Linode-style (rules.inbound[0].action)."""
    out = []
    for err in validator.iter_errors(instance):
        path = err.json_path[2:] if err.json_path.startswith("$.") else err.json_path.lstrip("$")
        field = field_prefix + (("." if field_prefix and path else "") + path if path else "")
        out.append({"field": field, "message": err.message[:400]})
    return out


class Operation:
    def __init__(self, op_id, request=None, request_required=False, success=None, error=None,
                 query=None, xfilter=False, public=False, item_schema=None):
        self.op_id = op_id
        self.request = RequestValidator(request) if request is not None else None
        self.request_required = request_required
        self.success = ResponseValidator(success) if success is not None else None
        self.error = ResponseValidator(error)
        self.query = {name: RequestValidator(s) for name, s in (query or {}).items()}
        self.xfilter = xfilter
        self.public = public
        # Fields the real API lets X-Filter use (x-linode-filterable on the listed items).
        self.filterable = {name for name, s in ((item_schema or {}).get("properties") or {}).items()
                           if s.get("x-linode-filterable")}


class Spec:
    """The operations of the OpenAPI subset, with their validators."""

    def __init__(self, path):
        with open(path) as f:
            self.doc = json.load(f)
        self.builder = SchemaBuilder(self.doc)
        self.error_schema = self.component("error-envelope")
        # The description's x-filter is a oneOf of "any object" (x-filter-criteria) and "an
        # object of +operators", so {"+and": [...]} matches both branches and a strict
        # oneOf rejects it; the intent is plainly "either", hence anyOf.
        xf = self.component("x-filter")
        self.xfilter = RequestValidator({"anyOf": xf.pop("oneOf"), **xf})
        self.ops = {}
        for template, item in self.doc["paths"].items():
            for method in ("get", "post", "put", "delete"):
                if method in item:
                    op = self.operation(item[method], item.get("parameters", []))
                    self.ops[op.op_id] = op
        self.ops[LIST_STACKSCRIPTS] = self.list_stackscripts_operation()

    def component(self, name):
        return self.builder.schema({"$ref": f"#/components/schemas/{name}"})

    def operation(self, op, shared_params):
        params = [self.builder.resolve(p["$ref"]) if "$ref" in p else p
                  for p in shared_params + op.get("parameters", [])]
        query = {p["name"]: self.builder.schema(p["schema"]) for p in params if p["in"] == "query"}
        xfilter = any(p["in"] == "header" and p["name"] == "X-Filter" for p in params)
        request, required = None, False
        if "requestBody" in op:
            request = self.builder.schema(op["requestBody"]["content"]["application/json"]["schema"])
            required = op["requestBody"].get("required", False)
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        success = self.builder.schema(ok)
        folded = self.builder.fold(ok)
        items = (folded.get("properties", {}).get("data") or {}).get("items") or folded.get("items")
        return Operation(op["operationId"], request=request, request_required=required,
                         success=success, error=self.error_schema, query=query,
                         xfilter=xfilter, public="security" not in op, item_schema=items)

    def list_stackscripts_operation(self):
        # NOT IN THE SUBSET: GET /linode/stackscripts (list). The tool reuses a StackScript
        # matched by label and content, so the fake offers it, shaped like Linode's other
        # lists: the pagination envelope plus data items that are stack-script objects, with
        # the same page, page_size and X-Filter parameters as GET /linode/instances.
        envelope = self.builder.fold({"$ref": "#/components/schemas/pagination-envelope"})
        item = self.builder.fold({"$ref": "#/components/schemas/stack-script"})
        envelope["properties"]["data"] = {"type": "array", "items": item}
        params = self.doc["components"]["parameters"]
        query = {params[n]["name"]: self.builder.schema(params[n]["schema"])
                 for n in ("page-offset", "page-size")}
        return Operation(LIST_STACKSCRIPTS, success=self.builder.jsonify(envelope),
                         error=self.error_schema, query=query, xfilter=True, item_schema=item)


LIST_STACKSCRIPTS = "fake-get-stack-scripts"

# ------------------------------------------------------------------------- the API


class ApiError(Exception):
    def __init__(self, status, reason, field=None, errors=None):
        super().__init__(reason)
        self.status = status
        self.errors = errors or [dict(reason=reason, **({"field": field} if field else {}))]


def not_found():
    return ApiError(404, "Not found")


class Route:
    def __init__(self, method, pattern, op_id, handler, paginated=False):
        self.method, self.op_id, self.handler, self.paginated = method, op_id, handler, paginated
        self.regex = re.compile("^/v4" + pattern + "$")


ROUTES = [
    Route("GET", r"/regions", "get-regions", "list_regions", paginated=True),
    Route("GET", r"/regions/availability", "get-regions-availability", "list_region_availability", paginated=True),
    Route("GET", r"/regions/(?P<region>[^/]+)/availability", "get-region-availability", "get_region_availability"),
    Route("GET", r"/linode/types", "get-linode-types", "list_types", paginated=True),
    Route("GET", r"/account/availability", "get-availability", "list_account_availability", paginated=True),
    Route("GET", r"/account/availability/(?P<region>[^/]+)", "get-account-availability", "get_account_availability"),
    Route("GET", r"/linode/stackscripts", LIST_STACKSCRIPTS, "list_stackscripts", paginated=True),
    Route("POST", r"/linode/stackscripts", "post-add-stack-script", "create_stackscript"),
    Route("POST", r"/networking/firewalls", "post-firewalls", "create_firewall"),
    Route("DELETE", r"/networking/firewalls/(?P<fid>\d+)", "delete-firewall", "delete_firewall"),
    Route("GET", r"/linode/instances", "get-linode-instances", "list_instances", paginated=True),
    Route("POST", r"/linode/instances", "post-linode-instance", "create_instance"),
    Route("GET", r"/linode/instances/(?P<iid>\d+)", "get-linode-instance", "get_instance"),
    Route("DELETE", r"/linode/instances/(?P<iid>\d+)", "delete-linode-instance", "delete_instance"),
]


class Request:
    def __init__(self, method, target, headers, raw_body):
        url = urlsplit(target)
        self.method, self.path, self.headers, self.raw_body = method, url.path, headers, raw_body
        self.query = {k: v[0] if len(v) == 1 else v
                      for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.body = None
        self.xfilter = None
        self.auth = "missing"
        self.page, self.page_size = 1, 100


def redact(value):
    """A copy with every root_pass replaced: tests grep every file for the password."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if k == "root_pass" else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def password_is_strong(pw):
    classes = [any(c.islower() for c in pw), any(c.isupper() for c in pw),
               any(c.isdigit() for c in pw), any(not c.isalnum() for c in pw)]
    return len(pw) >= 12 and sum(classes) >= 3


UDF_TAG = re.compile(r'<UDF\b((?:\s+[A-Za-z_]+\s*=\s*"[^"]*")*)\s*/?>')
UDF_ATTR = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')


def parse_udfs(script):
    """user_defined_fields as Linode derives them from the script's <UDF .../> tags. The
    schema requires label, name and example on each, so example defaults to ""; attributes
    it does not know (header="Yes") are left out, as its additionalProperties forbids them."""
    fields = []
    for tag in UDF_TAG.finditer(script):
        attrs = dict(UDF_ATTR.findall(tag.group(1)))
        if "name" not in attrs:
            continue
        udf = {"name": attrs["name"], "label": attrs.get("label", attrs["name"]),
               "example": attrs.get("example", "")}
        udf.update({k: attrs[k] for k in ("default", "oneOf", "manyOf") if k in attrs})
        fields.append(udf)
    return fields


def field_matches(value, want):
    """X-Filter criterion on one field: equality, list membership (tags), or +operators."""
    if isinstance(want, dict):
        for op, arg in want.items():
            ok = {
                "+contains": lambda: isinstance(value, str) and str(arg) in value,
                "+neq": lambda: value != arg,
                "+gt": lambda: value is not None and value > arg,
                "+gte": lambda: value is not None and value >= arg,
                "+lt": lambda: value is not None and value < arg,
                "+lte": lambda: value is not None and value <= arg,
            }.get(op, lambda: False)()
            if not ok:
                return False
        return True
    if isinstance(value, list):
        return want in value
    return value == want


def filter_fields(flt):
    """Every field name an X-Filter mentions (the real API refuses non-filterable ones)."""
    names = set()
    for key, want in flt.items():
        if key in ("+and", "+or"):
            for sub in want:
                names |= filter_fields(sub)
        elif key == "+order_by":
            names.add(want)
        elif key != "+order":
            names.add(key)
    return names


def matches(item, flt):
    for key, want in flt.items():
        if key == "+and" and not all(matches(item, sub) for sub in want):
            return False
        if key == "+or" and not any(matches(item, sub) for sub in want):
            return False
        if not key.startswith("+") and not field_matches(item.get(key), want):
            return False
    return True


class FakeLinode:
    def record_root_pass(self, password):
        if self.args.record_root_pass:
            with self.lock, open(self.args.record_root_pass, "a", encoding="utf-8") as f:
                f.write(password + "\n")

    def __init__(self, args):
        self.args = args
        self.spec = Spec(args.openapi)
        self.state_dir = args.state_dir
        os.makedirs(self.state_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.log_lock = threading.Lock()
        self.stopped = threading.Event()
        self.regions = [region_object(*r) for r in REGIONS]
        self.region_ids = {r["id"] for r in self.regions}
        self.types = {t[0]: linode_type(t) for t in TYPES}
        self.unavailable = set(args.unavailable)
        self.account_unavailable = set(args.account_unavailable)
        self.faults = self.load_faults(args.faults)
        self.stackscripts, self.firewalls, self.instances = {}, {}, {}
        self.next_id = {"stackscript": 1000, "firewall": 5000, "instance": 40000}
        self.next_ip = ipaddress.IPv4Address(args.ip_base)
        self.sandboxes = {}  # instance id -> server (None: could not bind)
        self.api = None
        self.sandbox_port = args.sandbox_port

    # ---- lifecycle

    def start(self):
        self.api = QuietServer(("127.0.0.1", self.args.port), ApiHandler)
        self.api.app = self
        if not self.sandbox_port:
            self.sandbox_port = free_port()
        threading.Thread(target=self.api.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        threading.Thread(target=self.tick, daemon=True).start()
        ready = {"api": f"http://127.0.0.1:{self.api.server_address[1]}/v4", "sandbox_port": self.sandbox_port}
        tmp = os.path.join(self.state_dir, ".ready.json.tmp")
        with open(tmp, "w") as f:
            json.dump(ready, f)
        os.replace(tmp, os.path.join(self.state_dir, "ready.json"))  # atomic: readers never see half
        return ready

    def stop(self):
        self.stopped.set()
        if self.api:
            self.api.shutdown()
            self.api.server_close()
        with self.lock:
            for iid in list(self.sandboxes):
                self.stop_sandbox(iid)

    def tick(self):
        # Starts an instance's sandbox when it turns running, so that before that a client
        # gets "connection refused", as from a machine still booting.
        while not self.stopped.wait(0.1):
            with self.lock:
                for iid, inst in self.instances.items():
                    if iid not in self.sandboxes and self.status(inst) == "running":
                        self.start_sandbox(inst)

    def start_sandbox(self, inst):
        if self.args.sandbox["mode"] == "never":
            self.sandboxes[inst["id"]] = None
            return
        try:
            server = QuietServer((inst["ipv4"][0], self.sandbox_port), SandboxHandler)
        except OSError as e:
            print(f"fake_linode: sandbox of {inst['id']} cannot listen on "
                  f"{inst['ipv4'][0]}:{self.sandbox_port}: {e}", file=sys.stderr)
            self.sandboxes[inst["id"]] = None
            return
        server.running_at = inst["running_at"]
        server.config = self.args.sandbox
        self.sandboxes[inst["id"]] = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop_sandbox(self, iid):
        server = self.sandboxes.pop(iid, None)
        if server:
            server.shutdown()
            server.server_close()

    # ---- files

    def append(self, name, record):
        with self.log_lock, open(os.path.join(self.state_dir, name), "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def record_violation(self, kind, req, op_id, problems, status=None):
        self.append("violations.jsonl", {
            "time": now_iso(), "kind": kind, "method": req.method, "path": req.path,
            "operation": op_id, "status": status, "problems": problems,
            "request_body": redact(req.body),
        })

    def load_faults(self, path):
        if not path:
            return []
        with open(path) as f:
            faults = json.load(f)
        for fault in faults:
            fault["_regex"] = re.compile(fault["path"])
            fault["_left"] = fault.get("times", 1)
        return faults

    # ---- one request

    def handle(self, req):
        """(status, body, headers) for a request; logs it, validates the response."""
        op = None
        req.auth = self.auth_of(req.headers.get("Authorization"))
        try:
            route, params = self.route(req)
            op = self.spec.ops[route.op_id]
            status, body, headers = self.dispatch(req, route, op, params)
        except ApiError as e:
            status, body, headers = e.status, {"errors": e.errors}, {}
        except Exception:
            # The fake's own bug: say so loudly, in the answer and in violations.jsonl.
            traceback.print_exc()
            problems = [{"field": "", "message": traceback.format_exc(limit=3)[-400:]}]
            self.record_violation("fake-error", req, op.op_id if op else None, problems, 500)
            status, body, headers = 500, {"errors": [{"reason": "fake: internal error"}]}, {}
        self.check_response(req, op, status, body)
        self.append("requests.jsonl", {
            "method": req.method, "path": req.path, "query": req.query, "x_filter": req.xfilter,
            "body": redact(req.body), "status": status, "auth": req.auth, "time": time.time(),
        })
        return status, body, headers

    def route(self, req):
        known_path = False
        for route in ROUTES:
            m = route.regex.match(req.path)
            if m:
                known_path = True
                if route.method == req.method:
                    return route, m.groupdict()
        if known_path:
            raise ApiError(405, "Method Not Allowed")
        raise not_found()

    def dispatch(self, req, route, op, params):
        # Operations the description leaves without `security` (regions, types) are public
        # in the real API: no token is fine there, a wrong one is not.
        if req.auth == "bad" or (req.auth == "missing" and not op.public):
            raise ApiError(401, "Invalid Token")
        if req.auth == "read_only" and req.method != "GET":
            raise ApiError(403, "Unauthorized")
        problems = self.check_request(req, op)
        if problems:
            self.record_violation("request", req, op.op_id, problems, 400)
            raise ApiError(400, "", errors=[
                dict(reason=f"{VIOLATION_PREFIX} {p['field'] or '(body)'}: {p['message']}",
                     **({"field": p["field"]} if p["field"] else {})) for p in problems])
        if route.paginated:
            self.page_args(req)
        with self.lock:
            fault = self.take_fault(req)
        if fault:
            return fault["status"], fault.get("body", {}), fault.get("headers", {})
        with self.lock:
            result = getattr(self, route.handler)(req, **params)
            if route.paginated:
                result = self.paginate(req, op, result)
        return 200, result, {}

    def auth_of(self, header):
        scheme, _, token = (header or "").partition(" ")
        if not header:
            return "missing"
        if scheme.lower() != "bearer":
            return "bad"
        token = token.strip().encode()
        if hmac.compare_digest(token, self.args.token.encode()):
            return "ok"
        if self.args.read_only_token and hmac.compare_digest(token, self.args.read_only_token.encode()):
            return "read_only"
        return "bad"

    def check_request(self, req, op):
        """Parses body, query and X-Filter into req; [{field, message}] where they do not
        match the operation's description."""
        problems = []
        for name, validator in op.query.items():
            if name not in req.query:
                continue
            raw = req.query[name]
            try:
                value = int(raw)
            except (TypeError, ValueError):
                value = raw
            problems += problems_of(validator, value, name)
        header = req.headers.get("X-Filter")
        if header is not None:
            try:
                req.xfilter = json.loads(header)
                problems += problems_of(self.spec.xfilter, req.xfilter, "X-Filter")
            except ValueError:
                req.xfilter = header
                problems.append({"field": "X-Filter", "message": "is not JSON"})
        if req.method == "POST":
            if req.raw_body.strip():
                try:
                    req.body = json.loads(req.raw_body)
                except ValueError:
                    return problems + [{"field": "", "message": "the body is not JSON"}]
            if req.body is None and op.request_required:
                problems.append({"field": "", "message": "a JSON request body is required"})
            elif op.request is not None:
                problems += problems_of(op.request, {} if req.body is None else req.body)
        return problems

    def check_response(self, req, op, status, body):
        if op is None or status >= 300:
            validator = op.error if op else ResponseValidator(self.spec.error_schema)
        else:
            validator = op.success
        problems = problems_of(validator, body)
        if problems:
            self.record_violation("response", req, op.op_id if op else None, problems, status)

    def page_args(self, req):
        """page and page_size for any list, as the real API checks them (also for lists whose
        description does not declare them)."""
        for name, low, high, default in (("page", 1, None, 1), ("page_size", 25, 500, 100)):
            raw = req.query.get(name, default)
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise ApiError(400, "Must be an integer", field=name)
            if value < low or (high and value > high):
                raise ApiError(400, f"Must be {low}-{high}" if high else f"Must be >= {low}", field=name)
            setattr(req, name, value)

    def paginate(self, req, op, items):
        flt = req.xfilter if isinstance(req.xfilter, dict) else {}
        for name in sorted(filter_fields(flt)):
            if name not in op.filterable:
                raise ApiError(400, f"Cannot filter on {name}", field="X-Filter")
        items = [i for i in items if matches(i, flt)]
        if "+order_by" in flt:
            key = flt["+order_by"]
            items.sort(key=lambda i: (i.get(key) is None, i.get(key)), reverse=flt.get("+order") == "desc")
        size = min(req.page_size, self.args.page_size_cap or req.page_size)
        pages = max(1, math.ceil(len(items) / size))
        start = (req.page - 1) * size
        return {"data": items[start:start + size], "page": req.page, "pages": pages, "results": len(items)}

    def take_fault(self, req):
        for fault in self.faults:
            if fault["_left"] > 0 and fault.get("method", req.method).upper() == req.method \
                    and fault["_regex"].search(req.path):
                fault["_left"] -= 1
                return fault
        return None

    # ---- catalogue handlers

    def list_regions(self, req):
        return copy.deepcopy(self.regions)

    def available(self, region, type_id):
        if (region, type_id) in self.unavailable:
            return False
        if is_rtx4000a(type_id) and self.args.none_available:
            return False
        return self.types[type_id]["class"] != "gpu" or region in GPU_REGIONS

    def availability_rows(self, regions):
        return [{"region": r, "plan": t, "available": self.available(r, t)}
                for r in regions for t in self.types]

    def list_region_availability(self, req):
        return self.availability_rows([r["id"] for r in self.regions])

    def get_region_availability(self, req, region):
        if region not in self.region_ids:
            raise not_found()
        return self.availability_rows([region])  # a plain array, as the description says

    def list_types(self, req):
        return copy.deepcopy(list(self.types.values()))

    def account_availability(self, region):
        blocked = ["Linodes"] if region in self.account_unavailable else []
        return {"region": region, "available": [s for s in ACCOUNT_SERVICES if s not in blocked],
                "unavailable": blocked}

    def list_account_availability(self, req):
        return [self.account_availability(r["id"]) for r in self.regions]

    def get_account_availability(self, req, region):
        if region not in self.region_ids:
            raise not_found()
        return self.account_availability(region)

    # ---- StackScripts

    def take_id(self, kind):
        self.next_id[kind] += 1
        return self.next_id[kind] - 1

    def create_stackscript(self, req):
        body = req.body
        if not body["script"].startswith("#!"):
            raise ApiError(400, "StackScript must begin with a shebang (example: #!/bin/bash)", field="script")
        if not body["images"]:
            raise ApiError(400, "Must provide at least one image", field="images")
        stamp = now_iso()
        script = {
            "id": self.take_id("stackscript"), "label": body["label"], "script": body["script"],
            "images": body["images"], "description": body.get("description", ""),
            "rev_note": body.get("rev_note", ""), "is_public": body.get("is_public", False),
            "mine": True, "username": "fakeuser",
            "user_gravatar_id": hashlib.md5(b"fakeuser").hexdigest(),
            "created": stamp, "updated": stamp, "deployments_total": 0, "deployments_active": 0,
            "user_defined_fields": parse_udfs(body["script"]),
        }
        self.stackscripts[script["id"]] = script
        return copy.deepcopy(script)

    def list_stackscripts(self, req):
        return copy.deepcopy(list(self.stackscripts.values()))

    # ---- firewalls

    def entity(self, inst):
        return {"id": inst["id"], "type": "linode", "label": inst["label"],
                "url": f"/v4/linode/instances/{inst['id']}", "parent_entity": None}

    def create_firewall(self, req):
        body = req.body
        if any(fw["label"] == body["label"] for fw in self.firewalls.values()):
            raise ApiError(400, "Label must be unique among your Firewalls", field="label")
        devices = body.get("devices") or {}
        for kind in ("nodebalancers", "linode_interfaces"):
            if devices.get(kind):
                raise ApiError(400, "Not found", field=f"devices.{kind}")
        entities = []
        for iid in devices.get("linodes", []):
            if iid not in self.instances:
                raise ApiError(400, f"Linode {iid} not found", field="devices.linodes")
            entities.append(self.entity(self.instances[iid]))
        rules = copy.deepcopy(body["rules"])
        rules.setdefault("inbound", [])
        rules.setdefault("outbound", [])
        rules["fingerprint"] = hashlib.sha1(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:8]
        rules["version"] = 1
        stamp = now_iso()
        fw = {"id": self.take_id("firewall"), "label": body["label"], "status": "enabled",
              "rules": rules, "entities": entities, "tags": body.get("tags", []),
              "created": stamp, "updated": stamp}
        self.firewalls[fw["id"]] = fw
        return copy.deepcopy(fw)

    def delete_firewall(self, req, fid):
        if self.firewalls.pop(int(fid), None) is None:
            raise not_found()
        return {}

    # ---- instances

    def status(self, inst):
        age = time.monotonic() - inst["created_at"]
        if age < self.args.timing["provisioning"]:
            return "provisioning"
        if not inst["booted"]:
            return "offline"
        return "booting" if time.monotonic() < inst["running_at"] else "running"

    def render(self, inst, with_locks=True):
        """The linode object; GET answers use linode-migrate, which adds `locks`."""
        t = self.types[inst["type"]]
        obj = {
            "id": inst["id"], "label": inst["label"], "group": "", "status": self.status(inst),
            "created": inst["created"], "updated": inst["created"], "type": inst["type"],
            "region": inst["region"], "image": inst["image"], "ipv4": list(inst["ipv4"]),
            "ipv6": inst["ipv6"], "site_type": "core", "hypervisor": "kvm",
            "watchdog_enabled": True, "tags": list(inst["tags"]),
            "specs": {k: t[k] for k in ("disk", "memory", "vcpus", "gpus", "transfer")},
            "alerts": {"cpu": 90 * t["vcpus"], "io": 10000, "network_in": 10, "network_out": 10,
                       "transfer_quota": 80},
            "backups": {"available": False, "enabled": inst["backups_enabled"],
                        "schedule": {"day": None, "window": None}},
            "capabilities": [], "disk_encryption": inst["disk_encryption"],
            "has_user_data": inst["has_user_data"], "placement_group": None, "lke_cluster_id": None,
            "host_uuid": hashlib.sha1(str(inst["id"]).encode()).hexdigest(),
            "interface_generation": "legacy_config", "maintenance_policy": inst["maintenance_policy"],
        }
        if with_locks:
            obj["locks"] = []
        return obj

    def check_instance(self, body):
        """The semantic checks the real API makes beyond the schema, each its own 400."""
        region, type_id = body["region"], body["type"]
        if region not in self.region_ids:
            raise ApiError(400, "region is not valid", field="region")
        if type_id not in self.types:
            raise ApiError(400, "A valid plan type by that ID was not found", field="type")
        if region in self.account_unavailable:
            raise ApiError(400, "Your account is not authorized to deploy Linodes in this region; "
                                "open a support ticket", field="region")
        if not self.available(region, type_id):
            raise ApiError(400, f"The requested plan ({type_id}) is not available in this region "
                                f"({region}); choose another region or plan")
        if "label" in body and any(i["label"] == body["label"] for i in self.instances.values()):
            raise ApiError(400, "Label must be unique among your linodes", field="label")
        image, script = body.get("image"), None
        if body.get("stackscript_id") is not None:
            script = self.stackscripts.get(body["stackscript_id"])
            if script is None:
                raise ApiError(400, "StackScript not found", field="stackscript_id")
            if not image:
                raise ApiError(400, "image is required when deploying a StackScript", field="image")
        if image:
            if not re.match(r"^(linode|private)/.+", image):
                raise ApiError(400, "image is not valid", field="image")
            if not body.get("root_pass"):
                raise ApiError(400, "root_pass is required when deploying an image", field="root_pass")
            self.record_root_pass(body["root_pass"])
            if not password_is_strong(body["root_pass"]):
                raise ApiError(400, "Password does not meet strength requirement.", field="root_pass")
        for n, key in enumerate(body.get("authorized_keys", []), 1):
            if key.split()[:1] == [] or key.split()[0] not in SSH_KEY_TYPES or len(key.split()) < 2:
                raise ApiError(400, f"SSH Key {n} key-type must be ssh-dss, ssh-rsa, ecdsa-sha2-nistp, "
                                    "ssh-ed25519, or sk-ecdsa-sha2-nistp256.", field="authorized_keys")
        if script:
            if image not in script["images"] and "any/all" not in script["images"]:
                raise ApiError(400, "The image is not compatible with this StackScript", field="image")
            self.check_udfs(script, body.get("stackscript_data") or {})
        fw = body.get("firewall_id")
        if fw is not None and fw != -1 and fw not in self.firewalls:
            raise ApiError(400, "Firewall not found", field="firewall_id")

    def check_udfs(self, script, data):
        for udf in script["user_defined_fields"]:
            name, field = udf["name"], f"stackscript_data.{udf['name']}"
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"{udf['label']} must be a string", field=field)
            if "default" not in udf and not value:
                raise ApiError(400, f"{udf['label']} is required", field=field)
            if value and "oneOf" in udf and value not in udf["oneOf"].split(","):
                raise ApiError(400, f"{udf['label']} must be one of {udf['oneOf']}", field=field)
            if value and "manyOf" in udf:
                options = udf["manyOf"].split(",")
                if any(v not in options for v in value.split(",")):
                    raise ApiError(400, f"{udf['label']} must be among {udf['manyOf']}", field=field)

    def create_instance(self, req):
        body = req.body
        self.check_instance(body)
        iid = self.take_id("instance")
        ip, self.next_ip = self.next_ip, self.next_ip + 1
        created_at = time.monotonic()
        t = self.args.timing
        inst = {
            "id": iid, "label": body.get("label", f"linode{iid}"), "region": body["region"],
            "type": body["type"], "image": body.get("image"), "tags": body.get("tags", []),
            "ipv4": [str(ip)], "ipv6": f"2600:3c00::f03c:91ff:fe00:{iid - 39999:x}/128",
            "created": now_iso(), "created_at": created_at,
            "running_at": created_at + t["provisioning"] + t["booting"],
            "booted": body.get("booted", True), "backups_enabled": body.get("backups_enabled", False),
            "disk_encryption": body.get("disk_encryption", "enabled"),
            "maintenance_policy": body.get("maintenance_policy", "linode/migrate"),
            "has_user_data": bool((body.get("metadata") or {}).get("user_data")),
            "request": redact(body),
        }
        self.instances[iid] = inst
        fw = body.get("firewall_id")
        if fw is not None and fw != -1:
            self.firewalls[fw]["entities"].append(self.entity(inst))
        if body.get("stackscript_id") is not None:
            script = self.stackscripts[body["stackscript_id"]]
            script["deployments_total"] += 1
            script["deployments_active"] += 1
        return self.render(inst, with_locks=False)  # POST answers with `linode`: no `locks`

    def list_instances(self, req):
        return [self.render(i) for i in self.instances.values()]

    def instance(self, iid):
        inst = self.instances.get(int(iid))
        if inst is None:
            raise not_found()
        return inst

    def get_instance(self, req, iid):
        return self.render(self.instance(iid))

    def delete_instance(self, req, iid):
        inst = self.instance(iid)
        del self.instances[inst["id"]]
        for fw in self.firewalls.values():
            fw["entities"] = [e for e in fw["entities"] if e["id"] != inst["id"]]
        script = self.stackscripts.get(inst["request"].get("stackscript_id"))
        if script:
            script["deployments_active"] -= 1
        self.stop_sandbox(inst["id"])
        return {}

    def snapshot(self):
        with self.lock:
            instances = [{**self.render(i), "request": i["request"],
                          "sandbox_listening": self.sandboxes.get(i["id"]) is not None}
                         for i in self.instances.values()]
            return copy.deepcopy({"instances": instances, "firewalls": list(self.firewalls.values()),
                                  "stackscripts": list(self.stackscripts.values())})


# -------------------------------------------------------------------------- HTTP


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that hangs up (curl timing out, a test killing it) is not our problem.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)


class ApiHandler(JsonHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-linode"

    def serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True  # the client hung up mid-body: nothing to answer
            return
        app = self.server.app
        if method == "GET" and urlsplit(self.path).path == "/__fake/state":
            return self.send_json(200, app.snapshot())
        status, body, headers = app.handle(Request(method, self.path, self.headers, raw))
        self.send_json(status, body, headers)

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PUT(self):
        self.serve("PUT")

    def do_PATCH(self):
        self.serve("PATCH")

    def do_DELETE(self):
        self.serve("DELETE")


def ready_answer(config, t):
    """(status, body) of the sandbox's GET /ready, t seconds after the instance came up."""
    down, load = config["downloading"], config["loading"]
    if t < down:
        progress = t / down
        return 503, {"status": "downloading", "step": "model", "message": "downloading the model",
                     "progress": round(progress, 3), "downloaded_bytes": int(MODEL_BYTES * progress),
                     "total_bytes": MODEL_BYTES, "eta_seconds": math.ceil(down - t)}
    if config["mode"] == "failed":
        return 503, {"status": "failed", "failure": "model_auth",
                     "message": "the model download was refused (HTTP 401/403)", "progress": None}
    if t < down + load:
        return 503, {"status": "loading", "step": "model_wait", "message": "loading the model", "progress": None}
    return 200, {"status": "ready", "message": "ready", "progress": None}


class SandboxHandler(JsonHandler):
    server_version = "fake-sandbox"

    def do_GET(self):
        if urlsplit(self.path).path != "/ready":
            return self.send_json(404, {"status": "not_found"}, {"Cache-Control": "no-store"})
        status, body = ready_answer(self.server.config, time.monotonic() - self.server.running_at)
        self.send_json(status, body, {"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- CLI


def key_values(allowed, flags=()):
    def parse(text):
        out = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if part in flags:
                out[part] = True
                continue
            key, sep, value = part.partition("=")
            if not sep or key not in allowed:
                raise argparse.ArgumentTypeError(f"{part!r}: expected one of {sorted(allowed) + list(flags)}")
            out[key] = float(value)
        return out
    return parse


def pairs(text):
    out = set()
    for part in filter(None, text.split(",")):
        region, sep, type_id = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"{part!r}: expected REGION:TYPE")
        out.add((region, type_id))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir")
    p.add_argument("--openapi")
    p.add_argument("--token")
    # Off the command line, so that a test can check no process shows the token.
    p.add_argument("--token-file")
    p.add_argument("--read-only-token")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--sandbox-port", type=int, default=0)
    p.add_argument("--page-size-cap", type=int)
    p.add_argument("--timing", type=key_values({"provisioning", "booting"}), default={})
    p.add_argument("--sandbox", type=key_values({"downloading", "loading"}, ("failed", "never")), default={})
    p.add_argument("--unavailable", type=pairs, default=set())
    p.add_argument("--account-unavailable", type=lambda s: set(filter(None, s.split(","))), default=set())
    p.add_argument("--none-available", action="store_true")
    p.add_argument("--faults")
    p.add_argument("--ip-base", default="127.0.0.10")
    p.add_argument("--self-test", action="store_true")
    # Test-only: where the root passwords clients sent are kept, so a test can check
    # that none of them shows up anywhere else.
    p.add_argument("--record-root-pass")
    args = p.parse_args(argv)
    args.timing = {"provisioning": 1.0, "booting": 1.0, **args.timing}
    mode = "never" if args.sandbox.get("never") else "failed" if args.sandbox.get("failed") else "normal"
    args.sandbox = {"mode": mode, "downloading": args.sandbox.get("downloading", 2.0),
                    "loading": args.sandbox.get("loading", 1.0)}
    if not args.openapi:
        p.error("--openapi is required")
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            args.token = f.read().strip()
    if not args.self_test and not (args.state_dir and args.token):
        p.error("--state-dir and --token are required")
    return args


def main(argv):
    args = parse_args(argv)
    if args.self_test:
        return self_test(args.openapi)
    app = FakeLinode(args)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    app.start()
    while not done.wait(0.5):
        pass
    app.stop()
    return 0


# ----------------------------------------------------------------------- self-test

TEST_TOKEN = "fake-token-0123456789abcdef"
TEST_RO_TOKEN = "fake-ro-token-0123456789"
TEST_ROOT_PASS = "Xy7-correct-Horse-9battery"
TEST_SCRIPT = """#!/bin/bash
# <UDF name="user_name" label="Sudo user to create" example="sandbox" />
# <UDF name="quantization" label="Model quantization" oneOf="Q4_K_M,Q8_0" default="Q4_K_M" />
# <UDF name="tls_header" label="HTTPS (optional)" default="Yes" header="Yes" />
echo "$USER_NAME"
"""
FIREWALL_BODY = {
    "label": "ai-sandbox-1-fw",
    "rules": {"inbound_policy": "DROP", "outbound_policy": "ACCEPT",
              "inbound": [{"action": "ACCEPT", "protocol": "TCP", "ports": "22, 80, 443",
                           "addresses": {"ipv4": ["0.0.0.0/0"], "ipv6": ["::/0"]},
                           "label": "ai-sandbox-in"}],
              "outbound": []},
    "tags": ["ai-sandbox"],
}
INSTANCE_BODY = {
    "region": "us-ord", "type": "g2-gpu-rtx4000a1-s", "label": "ai-sandbox-1",
    "image": "linode/ubuntu24.04", "root_pass": TEST_ROOT_PASS,
    "authorized_keys": ["ssh-ed25519 AAAA... me@laptop"], "stackscript_id": 1000,
    "stackscript_data": {"user_name": "ai"}, "firewall_id": 5000, "tags": ["ai-sandbox"],
    "booted": True,
}


class Client:
    def __init__(self, api):
        self.api = api

    def call(self, method, path, body=None, token=TEST_TOKEN, headers=None, base=None):
        url = (base or self.api) + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())


def poll_until(fn, want, timeout=10.0):
    """Calls fn() every 50 ms; returns the distinct values seen, ending at `want`."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == want:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"never reached {want!r}; saw {seen}")


def self_test(openapi):
    results = []

    def check(name, condition, detail=""):
        results.append(condition)
        print(f"{'ok' if condition else 'FAIL'} - {name}" + ("" if condition else f": {detail}"))

    with tempfile.TemporaryDirectory() as state:
        faults = os.path.join(state, "faults.json")
        with open(faults, "w") as f:
            json.dump([{"method": "POST", "path": "^/v4/linode/instances$", "status": 429,
                        "headers": {"Retry-After": "2"},
                        "body": {"errors": [{"reason": "Too many requests"}]}, "times": 1}], f)
        args = parse_args(["--state-dir", state, "--openapi", openapi, "--token", TEST_TOKEN,
                           "--read-only-token", TEST_RO_TOKEN, "--page-size-cap", "25",
                           "--timing", "provisioning=0.4,booting=0.4",
                           "--sandbox", "downloading=0.6,loading=0.4", "--faults", faults,
                           "--unavailable", "us-sea:g2-gpu-rtx4000a1-s",
                           "--account-unavailable", "de-fra-2"])
        app = FakeLinode(args)
        ready = app.start()
        try:
            run_checks(check, app, Client(ready["api"]), ready, state)
        finally:
            app.stop()
    passed = all(results)
    print(f"self-test {'passed' if passed else 'FAILED'}: {sum(results)}/{len(results)} checks")
    return 0 if passed else 1


def run_checks(check, app, c, ready, state):
    spec = app.spec
    check("example create-instance body matches the description",
          problems_of(spec.ops["post-linode-instance"].request, INSTANCE_BODY) == [])
    check("example firewall body matches the description",
          problems_of(spec.ops["post-firewalls"].request, FIREWALL_BODY) == [])
    check("ready.json written", json.loads(read_text(os.path.join(state, "ready.json"))) == ready)

    status, _, body = c.call("GET", "/linode/instances", token="wrong-token")
    check("401 for a bad token", status == 401 and body == {"errors": [{"reason": "Invalid Token"}]}, body)
    status, _, body = c.call("GET", "/linode/instances", token=None)
    check("401 without a token", status == 401, body)
    status, _, _ = c.call("GET", "/regions", token=None)
    check("regions are public (no token needed)", status == 200)
    status, _, body = c.call("POST", "/networking/firewalls", FIREWALL_BODY, token=TEST_RO_TOKEN)
    check("403 for the read-only token on POST", status == 403, body)

    rows, page, pages = [], 1, None
    while pages is None or page <= pages:
        status, _, body = c.call("GET", f"/regions/availability?page={page}")
        rows += body["data"]
        pages, page = body["pages"], page + 1
    total = len(REGIONS) * len(TYPES)
    check(f"availability paginated by the cap: {pages} pages of 25, {len(rows)} rows",
          pages == math.ceil(total / 25) and len(rows) == total == body["results"]
          and len({(r["region"], r["plan"]) for r in rows}) == total)
    check("us-sea:a1-s unavailable, us-ord:a1-s available",
          {"region": "us-sea", "plan": "g2-gpu-rtx4000a1-s", "available": False} in rows
          and {"region": "us-ord", "plan": "g2-gpu-rtx4000a1-s", "available": True} in rows)
    status, _, body = c.call("GET", "/regions/availability?page=99")
    check("out-of-range page: empty data, true totals",
          status == 200 and body["data"] == [] and body["results"] == total and body["pages"] == pages)
    status, _, body = c.call("GET", "/regions?page_size=10")
    check("page_size 10 refused", status == 400 and body["errors"][0].get("field") == "page_size", body)
    status, _, body = c.call("GET", "/linode/types?page_size=500")
    check("types capped at 25 per page", status == 200 and len(body["data"]) == len(TYPES) == body["results"])
    status, _, body = c.call("GET", "/regions/us-ord/availability")
    check("one region's availability is a plain array", status == 200 and isinstance(body, list) and len(body) == len(TYPES))
    status, _, body = c.call("GET", "/account/availability/de-fra-2")
    check("account: Linodes unavailable in de-fra-2", status == 200 and body["unavailable"] == ["Linodes"], body)

    status, _, script = c.call("POST", "/linode/stackscripts", {
        "label": "ai-sandbox", "script": TEST_SCRIPT, "images": ["linode/ubuntu24.04"],
        "description": "test", "rev_note": "v1", "is_public": False})
    check("StackScript created with its UDFs", status == 200 and script["id"] == 1000
          and [u["name"] for u in script["user_defined_fields"]] == ["user_name", "quantization", "tls_header"]
          and script["user_defined_fields"][0] == {"name": "user_name", "label": "Sudo user to create",
                                                   "example": "sandbox"}, script)
    flt = json.dumps({"+and": [{"mine": True}, {"label": "ai-sandbox"}]})
    status, _, body = c.call("GET", "/linode/stackscripts", headers={"X-Filter": flt})
    check("StackScript found by an +and X-Filter", status == 200 and body["results"] == 1, body)
    status, _, body = c.call("GET", "/linode/stackscripts", headers={"X-Filter": '{"label": "other"}'})
    check("StackScript filter on another label: none", status == 200 and body["results"] == 0, body)

    status, _, fw = c.call("POST", "/networking/firewalls", FIREWALL_BODY)
    check("firewall created", status == 200 and fw["id"] == 5000 and fw["rules"]["version"] == 1, fw)
    status, _, body = c.call("POST", "/networking/firewalls", FIREWALL_BODY)
    check("duplicate firewall label refused", status == 400 and body["errors"][0]["field"] == "label", body)

    status, _, body = c.call("POST", "/linode/instances", {**INSTANCE_BODY, "colour": "red"})
    check("an extra property is a violation", status == 400
          and body["errors"][0]["reason"].startswith(VIOLATION_PREFIX), body)
    status, _, body = c.call("GET", "/linode/instances?page_size=10")
    check("a declared page_size out of range is a violation", status == 400
          and body["errors"][0]["field"] == "page_size" and VIOLATION_PREFIX in body["errors"][0]["reason"], body)
    status, headers, body = c.call("POST", "/linode/instances", INSTANCE_BODY)
    check("fault: 429 with Retry-After once", status == 429 and headers.get("Retry-After") == "2", body)
    status, _, inst = c.call("POST", "/linode/instances", INSTANCE_BODY)
    check("instance created", status == 200 and inst["id"] == 40000 and inst["ipv4"] == ["127.0.0.10"]
          and inst["status"] == "provisioning" and inst["specs"]["gpus"] == 1, inst)
    second = {**INSTANCE_BODY, "label": "ai-sandbox-2"}
    status, _, body = c.call("POST", "/linode/instances", {**second, "stackscript_data": {}})
    check("a missing required UDF is refused", status == 400
          and body["errors"] == [{"field": "stackscript_data.user_name", "reason": "Sudo user to create is required"}], body)
    status, _, body = c.call("POST", "/linode/instances",
                             {**second, "stackscript_data": {"user_name": "ai", "quantization": "Q2"}})
    check("a oneOf UDF outside its options is refused", status == 400
          and body["errors"][0]["field"] == "stackscript_data.quantization", body)
    status, _, body = c.call("POST", "/linode/instances", {**second, "root_pass": "weakpassword"})
    check("a weak root_pass is refused", status == 400 and body["errors"][0]["field"] == "root_pass", body)
    status, _, body = c.call("POST", "/linode/instances", {**second, "region": "us-sea"})
    check("an unavailable plan is refused", status == 400 and "not available" in body["errors"][0]["reason"], body)
    status, _, body = c.call("POST", "/linode/instances", {**second, "region": "de-fra-2"})
    check("a region closed to the account is refused", status == 400 and body["errors"][0]["field"] == "region", body)
    status, _, body = c.call("POST", "/linode/instances", {**INSTANCE_BODY})
    check("a duplicate instance label is refused", status == 400 and body["errors"][0]["field"] == "label", body)

    state_fw = c.call("GET", "/__fake/state", token=None, base=c.api[:-len("/v4")])[2]["firewalls"][0]
    check("the firewall lists the instance", [e["id"] for e in state_fw["entities"]] == [40000], state_fw)
    sandbox = f"http://{inst['ipv4'][0]}:{ready['sandbox_port']}"
    check("no sandbox while provisioning (connection refused)", sandbox_ready(sandbox) == "refused")
    statuses = poll_until(lambda: c.call("GET", "/linode/instances/40000")[2]["status"], "running")
    check(f"instance status {' -> '.join(statuses)}", statuses == ["provisioning", "booting", "running"])
    phases = poll_until(lambda: sandbox_ready(sandbox), "ready")
    check(f"sandbox /ready {' -> '.join(phases)}", phases[-3:] == ["downloading", "loading", "ready"]
          and set(phases) <= {"refused", "downloading", "loading", "ready"}, phases)
    status, headers, body = c.call("GET", "/ready", token=None, base=sandbox)
    check("ready body and no-store", status == 200 and headers.get("Cache-Control") == "no-store"
          and body == {"status": "ready", "message": "ready", "progress": None}, body)

    status, _, body = c.call("GET", "/linode/instances", headers={"X-Filter": '{"tags": "ai-sandbox"}'})
    check("instances filtered by tag", status == 200 and [i["id"] for i in body["data"]] == [40000], body)
    status, _, body = c.call("GET", "/linode/instances", headers={"X-Filter": '{"status": "running"}'})
    check("filtering on a non-filterable field is refused", status == 400, body)

    status, _, body = c.call("DELETE", "/linode/instances/40000")
    check("instance deleted", status == 200 and body == {}, body)
    check("deleted instance: 404", c.call("GET", "/linode/instances/40000")[0] == 404)
    check("deleted instance: sandbox gone", sandbox_ready(sandbox) == "refused")
    state_fw = c.call("GET", "/__fake/state", token=None, base=c.api[:-len("/v4")])[2]["firewalls"][0]
    check("deleted instance: off the firewall", state_fw["entities"] == [], state_fw)
    check("firewall deleted", c.call("DELETE", "/networking/firewalls/5000")[:3:2] == (200, {}))
    check("firewall deleted twice: 404", c.call("DELETE", "/networking/firewalls/5000")[0] == 404)
    check("unknown path: 404", c.call("GET", "/linode/volumes")[0] == 404)
    check("wrong method: 405", c.call("PUT", "/linode/types", {})[0] == 405)

    violations = read_jsonl(os.path.join(state, "violations.jsonl"))
    kinds = [(v["kind"], v["path"]) for v in violations]
    check("violations.jsonl: exactly the two bad requests, no response violation",
          kinds == [("request", "/v4/linode/instances")] * 2, violations)
    logged = read_jsonl(os.path.join(state, "requests.jsonl"))
    check("requests.jsonl has every API request", len(logged) > 30 and all("auth" in r for r in logged))
    everything = "".join(read_text(os.path.join(state, n)) for n in os.listdir(state))
    check("no token or root_pass in any state file", TEST_TOKEN not in everything
          and TEST_RO_TOKEN not in everything and TEST_ROOT_PASS not in everything)


def sandbox_ready(base):
    try:
        with urllib.request.urlopen(base + "/ready", timeout=2) as resp:
            return json.loads(resp.read())["status"]
    except urllib.error.HTTPError as e:
        return json.loads(e.read())["status"]
    except (ConnectionRefusedError, urllib.error.URLError):
        return "refused"


def read_text(path):
    with open(path) as f:
        return f.read()


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
