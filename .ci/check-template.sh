#!/usr/bin/env bash
# Validates template.yaml offline (no AWS credentials, no Docker):
#   1. cfn-lint from the project venv (errors and warnings fail; informational notes pass);
#   2. what cfn-lint does not check inside SAM resources (it accepted a typo such as
#      `ReportBatchFailures` or `Binry:` without a word): partial batch responses on every SQS
#      event, build metadata, env var names, routes, and the FIFO/visibility invariants;
#   3. that no literal secret is in the template: secret env vars must come from NoEcho
#      parameters (without defaults) or Secrets Manager dynamic references;
#   4. that the signed sample webhook events still carry correct signatures, and every route has
#      an API Gateway sample event;
#   5. that README's dashboard paragraph ("Operate") names exactly the Parley metrics the
#      dashboard in the template shows, and that each of them is counted somewhere in shared/src;
#   6. openapi.yaml: a valid OpenAPI 3.1 document (openapi-spec-validator, pinned in
#      local/requirements.txt), every example valid against its schema, and exactly the
#      template's HttpApi routes (tests/openapi.rs checks it against the running router).
#   8. samconfig.toml sets every parameter without a default (secrets only as Secrets Manager
#      references), names no unknown one, and README documents every parameter and output;
#   7. agent sign-in: the HTTP API's default authorizer is the Cognito JWT authorizer, every
#      /agent/ route has it except exactly parley::api::auth::PUBLIC_AGENT_ROUTES (explicitly
#      `Authorizer: NONE`, as the local runtime's authorizer stand-in lets them through), and every
#      other route is explicitly NONE (webhooks and x-api-key routes authenticate themselves).
# Usage: .ci/check-template.sh [template.yaml]   (PARLEY_VENV overrides the venv, default .venv)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TEMPLATE="${1:-template.yaml}"
VENV="${PARLEY_VENV:-.venv}"

if [[ ! -x "$VENV/bin/cfn-lint" ]]; then
    echo "check-template: $VENV/bin/cfn-lint not found; install it with" >&2
    echo "  $VENV/bin/pip install -r local/requirements.txt" >&2
    exit 1
fi

# cfn-lint needs a region, never credentials.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-eu-central-1}"

echo "== cfn-lint $("$VENV/bin/cfn-lint" --version | awk '{print $2}') $TEMPLATE"
rc=0
"$VENV/bin/cfn-lint" -- "$TEMPLATE" || rc=$?
# Exit code is a bit mask: 1 = failure to run, 2 = error, 4 = warning, 8 = informational.
if (( rc & 7 )); then
    echo "check-template: cfn-lint reported errors or warnings (exit $rc)" >&2
    exit 1
fi

OPENAPI=openapi.yaml
echo "== openapi-spec-validator $OPENAPI"
if ! "$VENV/bin/openapi-spec-validator" "$OPENAPI"; then
    echo "check-template: $OPENAPI is not a valid OpenAPI document" >&2
    exit 1
fi

echo "== template invariants"
"$VENV/bin/python" - "$TEMPLATE" "$OPENAPI" <<'PY'
import base64
import hashlib
import hmac
import json
import pathlib
import re
import sys

from cfnlint.decode import decode

template_path = pathlib.Path(sys.argv[1])
raw = template_path.read_text(encoding="utf-8")
tpl, matches = decode(str(template_path))
if tpl is None:
    sys.exit(f"cannot parse {template_path}: {matches}")

errors: list[str] = []


def fail(msg: str) -> None:
    errors.append(msg)


resources = tpl.get("Resources", {})
params = tpl.get("Parameters", {})
glob_fn = tpl.get("Globals", {}).get("Function", {})
functions = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}


def is_intrinsic(v) -> bool:
    return isinstance(v, dict) and len(v) == 1 and (next(iter(v)) == "Ref" or next(iter(v)).startswith("Fn::"))


def ref_target(v):
    if isinstance(v, dict) and set(v) == {"Ref"}:
        return v["Ref"]
    if isinstance(v, dict) and set(v) == {"Fn::GetAtt"}:
        g = v["Fn::GetAtt"]
        return g[0] if isinstance(g, list) else str(g).split(".")[0]
    return None


def literal_only(v, where: str) -> None:
    """The local provisioner reads these blocks verbatim: no intrinsics, no conditions."""
    if is_intrinsic(v):
        fail(f"{where}: must be literal (the local provisioner reads it), found {v}")
    elif isinstance(v, dict):
        for k, x in v.items():
            literal_only(x, f"{where}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            literal_only(x, f"{where}[{i}]")


# --- 1. resources the local provisioner creates -------------------------------------------
table = resources.get("Table", {})
if table.get("Type") != "AWS::DynamoDB::Table":
    fail("Resources.Table must be an AWS::DynamoDB::Table")
else:
    tp = table.get("Properties", {})
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "TimeToLiveSpecification", "BillingMode"):
        if key not in tp:
            fail(f"Table.{key} missing")
        literal_only(tp.get(key), f"Table.{key}")
    if tp.get("KeySchema") != [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]:
        fail("Table.KeySchema must be pk HASH / sk RANGE")
    # gsi1 (the application's index) and gsi2 (keys only: campaign recipients by due time);
    # CloudFormation adds at most one GSI per stack update, so a new one lands on its own.
    gsis = {g.get("IndexName"): g for g in tp.get("GlobalSecondaryIndexes", [])}
    if sorted(gsis) != ["gsi1", "gsi2"]:
        fail("Table must have exactly the GSIs gsi1 and gsi2")
    elif gsis["gsi2"].get("Projection") != {"ProjectionType": "KEYS_ONLY"}:
        fail("Table's gsi2 must project KEYS_ONLY (the quiet-hours pass reads only its keys)")
    if tp.get("TimeToLiveSpecification") != {"AttributeName": "ttl", "Enabled": True}:
        fail("Table.TimeToLiveSpecification must be {AttributeName: ttl, Enabled: true}")
    if table.get("DeletionPolicy") != "Retain" or table.get("UpdateReplacePolicy") != "Retain":
        fail("Table must have DeletionPolicy and UpdateReplacePolicy Retain")

for qid in ("OutboundQueue", "OutboundDLQ"):
    q = resources.get(qid, {})
    if q.get("Type") != "AWS::SQS::Queue":
        fail(f"Resources.{qid} must be an AWS::SQS::Queue")
        continue
    qp = q.get("Properties", {})
    if qp.get("FifoQueue") is not True:
        fail(f"{qid}.FifoQueue must be literally true")
    for key in ("FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
                "VisibilityTimeout", "MessageRetentionPeriod"):
        if key in qp:
            literal_only(qp[key], f"{qid}.{key}")
    name = qp.get("QueueName")
    if isinstance(name, str) and not name.endswith(".fifo"):
        fail(f"{qid}.QueueName must end in .fifo")
oq = resources.get("OutboundQueue", {}).get("Properties", {})
if ref_target(oq.get("RedrivePolicy", {}).get("deadLetterTargetArn")) != "OutboundDLQ":
    fail("OutboundQueue.RedrivePolicy.deadLetterTargetArn must be !GetAtt OutboundDLQ.Arn")

# --- 2. functions: build metadata, env var names, events ----------------------------------
config_names = set()
for rs in pathlib.Path("shared/src").rglob("*.rs"):
    config_names.update(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', rs.read_text(encoding="utf-8")))

workspace_bins = set()
for cargo in pathlib.Path("functions").glob("*/Cargo.toml"):
    text = cargo.read_text(encoding="utf-8")
    workspace_bins.update(re.findall(r'^\s*name\s*=\s*"([^"]+)"', text, re.M))

SQS_EVENT_KEYS = {"Queue", "BatchSize", "Enabled", "FilterCriteria", "FunctionResponseTypes", "KmsKeyArn",
                  "MaximumBatchingWindowInSeconds", "MetricsConfig", "ProvisionedPollerConfig", "ScalingConfig"}
HTTPAPI_EVENT_KEYS = {"ApiId", "Auth", "Method", "Path", "PayloadFormatVersion", "RouteSettings", "TimeoutInMillis"}
CONTRACT_ROUTES = {
    ("GET", "/health"), ("GET", "/webhooks/meta"), ("POST", "/webhooks/meta"),
    ("POST", "/webhooks/shopify"), ("POST", "/webhooks/woocommerce"),
    ("POST", "/consent/optin"), ("GET", "/consent/{channel}/{address}"),
    ("DELETE", "/contacts/{channel}/{address}"),
}
# Routes beyond CONTRACT.md that the project documents in README (admin and GDPR export).
CONTRACT_ROUTES |= {
    ("POST", "/contacts/{channel}/{address}/release-to-bot"),
    ("GET", "/contacts/{channel}/{address}/export"),
}
# The agent API (CONTRACT.md's table, and the routes README documents beyond it).
CONTRACT_ROUTES |= {
    ("GET", "/agent/config"), ("GET", "/agent/me"),
    ("GET", "/agent/conversations"), ("GET", "/agent/conversations/{channel}/{address}"),
    ("GET", "/agent/catalog"), ("GET", "/agent/templates"), ("GET", "/agent/audit"),
    ("POST", "/contacts/{channel}/{address}/tags"),
    # The console: CONTRACT.md's `GET /agent/` (an HTTP API path cannot end in `/`) and its assets.
    ("GET", "/agent"), ("GET", "/agent/assets/{file}"),
}
# Campaigns (CONTRACT.md) and what README documents beyond them.
CONTRACT_ROUTES |= {
    ("GET", "/campaigns"), ("POST", "/campaigns"), ("GET", "/campaigns/{id}"), ("GET", "/campaigns/{id}/recipients"),
    ("POST", "/campaigns/{id}/start"), ("POST", "/campaigns/{id}/pause"), ("POST", "/campaigns/{id}/resume"),
    ("POST", "/campaigns/{id}/cancel"), ("POST", "/segments/preview"),
}
CONTRACT_ROUTES |= {("POST", f"/agent/conversations/{{channel}}/{{address}}/{a}")
                    for a in ("claim", "assign", "messages", "cart", "notes", "tags", "release", "resolve", "read")}
# Tracked links (CONTRACT.md's `GET /r/{token}`; HEAD for link checkers and preview fetchers).
CONTRACT_ROUTES |= {("GET", "/r/{token}"), ("HEAD", "/r/{token}")}
REQUIRED_ROUTES = {
    "ChannelWebhookFunction": {("GET", "/webhooks/meta"), ("POST", "/webhooks/meta"), ("GET", "/health")},
    "ConsentApiFunction": {("POST", "/consent/optin"), ("GET", "/consent/{channel}/{address}"),
                           ("DELETE", "/contacts/{channel}/{address}")},
}

for key, want in (("Runtime", "provided.al2023"), ("Handler", "bootstrap"), ("Architectures", ["arm64"])):
    if glob_fn.get(key) != want:
        fail(f"Globals.Function.{key} must be {want!r}")

routes_seen = set()
sqs_consumers: dict[str, list[str]] = {}
for fid, fn in functions.items():
    props = fn.get("Properties", {})
    meta = fn.get("Metadata", {})
    if meta.get("BuildMethod") != "rust-cargolambda":
        fail(f"{fid}: Metadata.BuildMethod must be rust-cargolambda")
    binary = (meta.get("BuildProperties") or {}).get("Binary")
    if binary not in workspace_bins:
        fail(f"{fid}: Metadata.BuildProperties.Binary {binary!r} is not a package under functions/ "
             f"(found {sorted(workspace_bins)})")
    if props.get("CodeUri") != ".":
        fail(f"{fid}: CodeUri must be '.' (the workspace root)")

    env = dict(glob_fn.get("Environment", {}).get("Variables", {}))
    env.update(props.get("Environment", {}).get("Variables", {}))
    for name in env:
        if name not in config_names:
            fail(f"{fid}: env var {name} is not read anywhere in shared/src (typo?)")
    # The time budget of every outside call is derived from it (shared/src/budget.rs).
    timeout = props.get("Timeout", glob_fn.get("Timeout", 3))
    if str(env.get("PARLEY_FUNCTION_TIMEOUT_SECONDS")) != str(timeout):
        fail(f"{fid}: PARLEY_FUNCTION_TIMEOUT_SECONDS must equal its Timeout ({timeout}), "
             f"found {env.get('PARLEY_FUNCTION_TIMEOUT_SECONDS')!r}")

    for eid, ev in (props.get("Events") or {}).items():
        etype, ep = ev.get("Type"), ev.get("Properties", {})
        where = f"{fid}.Events.{eid}"
        if etype == "SQS":
            unknown = set(ep) - SQS_EVENT_KEYS
            if unknown:
                fail(f"{where}: unknown SQS event properties {sorted(unknown)}")
            if "ReportBatchItemFailures" not in (ep.get("FunctionResponseTypes") or []):
                fail(f"{where}: FunctionResponseTypes must contain ReportBatchItemFailures")
            queue = ref_target(ep.get("Queue"))
            sqs_consumers.setdefault(queue, []).append(fid)
            qprops = resources.get(queue, {}).get("Properties", {})
            if qprops.get("FifoQueue") is True:
                if "MaximumBatchingWindowInSeconds" in ep:
                    fail(f"{where}: MaximumBatchingWindowInSeconds is not supported for FIFO queues")
                if isinstance(ep.get("BatchSize"), int) and ep["BatchSize"] > 10:
                    fail(f"{where}: BatchSize must be <= 10 for FIFO queues")
        elif etype == "HttpApi":
            unknown = set(ep) - HTTPAPI_EVENT_KEYS
            if unknown:
                fail(f"{where}: unknown HttpApi event properties {sorted(unknown)}")
            if ref_target(ep.get("ApiId")) != "HttpApi":
                fail(f"{where}: ApiId must be !Ref HttpApi")
            if str(ep.get("PayloadFormatVersion", "2.0")) != "2.0":
                fail(f"{where}: PayloadFormatVersion must be 2.0")
            route = (str(ep.get("Method", "")).upper(), ep.get("Path"))
            if route not in CONTRACT_ROUTES:
                fail(f"{where}: route {route} is not in CONTRACT.md")
            if route in routes_seen:
                fail(f"{where}: route {route} is defined twice")
            routes_seen.add(route)
    missing = REQUIRED_ROUTES.get(fid, set()) - routes_seen
    if missing:
        fail(f"{fid}: missing routes {sorted(missing)}")

# --- 6. agent sign-in: which routes need a Cognito token -------------------------------------
auth_rs = pathlib.Path("shared/src/api/auth.rs").read_text(encoding="utf-8")
public_block = re.search(r"PUBLIC_AGENT_ROUTES: &\[\(&str, &str\)\] =(.*?);", auth_rs, re.S)
if public_block is None:
    fail("shared/src/api/auth.rs: PUBLIC_AGENT_ROUTES not found")
    public_agent_routes = set()
else:
    public_agent_routes = set(re.findall(r'\("([A-Z]+)", "([^"]+)"\)', public_block.group(1)))
api_auth = resources.get("HttpApi", {}).get("Properties", {}).get("Auth", {})
default_authorizer = api_auth.get("DefaultAuthorizer")
jwt = (api_auth.get("Authorizers") or {}).get(default_authorizer or "", {})
jwt_conf = jwt.get("JwtConfiguration", {})
if not default_authorizer or not jwt_conf:
    fail("HttpApi.Auth.DefaultAuthorizer must name a JWT authorizer in HttpApi.Auth.Authorizers")
else:
    if jwt.get("IdentitySource") != "$request.header.Authorization":
        fail(f"HttpApi authorizer {default_authorizer}: IdentitySource must be $request.header.Authorization")
    issuer = jwt_conf.get("issuer", {})
    if not (isinstance(issuer, dict) and re.fullmatch(r"https://cognito-idp\.\$\{AWS::Region\}\.amazonaws\.com/\$\{(\w+)\}",
                                                       str(issuer.get("Fn::Sub", "")))):
        fail(f"HttpApi authorizer {default_authorizer}: issuer must be !Sub https://cognito-idp.${{AWS::Region}}"
             ".amazonaws.com/${<user pool>}")
    else:
        pool = re.search(r"\$\{(\w+)\}$", issuer["Fn::Sub"]).group(1)
        if resources.get(pool, {}).get("Type") != "AWS::Cognito::UserPool":
            fail(f"HttpApi authorizer {default_authorizer}: the issuer's {pool} is not an AWS::Cognito::UserPool")
    audience = [ref_target(a) for a in jwt_conf.get("audience", [])]
    if not audience or any(resources.get(a, {}).get("Type") != "AWS::Cognito::UserPoolClient" for a in audience):
        fail(f"HttpApi authorizer {default_authorizer}: audience must be !Ref of the console's user pool client")
for fid, fn in functions.items():
    for eid, ev in ((fn.get("Properties", {}).get("Events")) or {}).items():
        if ev.get("Type") != "HttpApi":
            continue
        ep = ev.get("Properties", {})
        route = (str(ep.get("Method", "")).upper(), ep.get("Path"))
        authorizer = (ep.get("Auth") or {}).get("Authorizer", default_authorizer)
        where = f"{fid}.Events.{eid} {route[0]} {route[1]}"
        if str(route[1]).startswith("/agent/") and route not in public_agent_routes:
            if authorizer != default_authorizer or not default_authorizer:
                fail(f"{where}: an agent route needs the JWT authorizer (or add it to PUBLIC_AGENT_ROUTES "
                     "in shared/src/api/auth.rs)")
        elif authorizer != "NONE":
            fail(f"{where}: must say `Auth: Authorizer: NONE` "
                 + ("(it is in PUBLIC_AGENT_ROUTES)" if route in public_agent_routes
                    else "(it is public or authenticates itself: signature or x-api-key)"))

sender_events = (functions.get("OutboundSenderFunction", {}).get("Properties", {}).get("Events") or {})
if not any(e.get("Type") == "SQS" and ref_target(e.get("Properties", {}).get("Queue")) == "OutboundQueue"
           and "ReportBatchItemFailures" in (e.get("Properties", {}).get("FunctionResponseTypes") or [])
           for e in sender_events.values()):
    fail("OutboundSenderFunction needs an SQS event on OutboundQueue with ReportBatchItemFailures")

# Visibility timeout >= 6x the timeout of every consumer (AWS guidance for SQS event sources).
for queue, consumers in sqs_consumers.items():
    vt = resources.get(queue, {}).get("Properties", {}).get("VisibilityTimeout", 30)
    for fid in consumers:
        timeout = functions[fid].get("Properties", {}).get("Timeout", glob_fn.get("Timeout", 3))
        if isinstance(vt, int) and isinstance(timeout, int) and vt < 6 * timeout:
            fail(f"{queue}.VisibilityTimeout {vt} < 6 x {fid} Timeout {timeout}")

# --- 3. no literal secrets -------------------------------------------------------------------
SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|API_KEY|ADMIN_KEY|PRIVATE_KEY)(_PREVIOUS)?$")
for pid, p in params.items():
    if str(p.get("NoEcho", "")).lower() == "true" and p.get("Default", "") != "":
        fail(f"Parameters.{pid}: NoEcho parameter must not have a non-empty Default")

env_blocks = [("Globals", glob_fn.get("Environment", {}).get("Variables", {}))]
env_blocks += [(fid, fn.get("Properties", {}).get("Environment", {}).get("Variables", {})) for fid, fn in functions.items()]
env_blocks += [(rid, r.get("Properties", {}).get("Environment", {}).get("Variables", {}))
               for rid, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"]
for owner, variables in env_blocks:
    for name, value in (variables or {}).items():
        if not SECRET_NAME.search(name):
            continue
        target = ref_target(value)
        if target is not None:
            p = params.get(target)
            if p is None or str(p.get("NoEcho", "")).lower() != "true":
                fail(f"{owner}: {name} must reference a NoEcho parameter, not {target}")
        elif isinstance(value, str) and value.startswith("{{resolve:secretsmanager:"):
            pass
        else:
            fail(f"{owner}: {name} has a literal value; use a NoEcho parameter or a "
                 "Secrets Manager dynamic reference")

# The local development secrets (CONTRACT.md) and the shapes of real credentials.
LOCAL_SECRETS = ["local-meta-app-secret", "local-verify-token", "local-shopify-secret",
                 "local-woocommerce-secret", "local-admin-key"]
for s in LOCAL_SECRETS:
    if s in raw:
        fail(f"template contains the local development secret {s!r}")
CREDENTIAL_SHAPES = {
    "Meta access token": r"\bEAA[A-Za-z0-9]{30,}",
    "32-hex app secret": r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])",
    "Shopify token/secret": r"\bshp(at|ss|ca|pa)_[0-9a-fA-F]{16,}",
    "WooCommerce key": r"\b(ck|cs)_[0-9a-f]{40}\b",
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
}
for label, rx in CREDENTIAL_SHAPES.items():
    m = re.search(rx, raw)
    if m:
        line = raw.count("\n", 0, m.start()) + 1
        fail(f"template line {line}: looks like a literal {label}")

# --- 4. sample events ------------------------------------------------------------------------
def signature(body: str) -> str:
    return "sha256=" + hmac.new(b"local-meta-app-secret", body.encode(), hashlib.sha256).hexdigest()

for name, should_match in (("meta_post_whatsapp_text.json", True), ("meta_post_bad_signature.json", False)):
    path = pathlib.Path("events/apigw") / name
    if not path.exists():
        fail(f"{path} missing")
        continue
    ev = json.loads(path.read_text(encoding="utf-8"))
    ok = hmac.compare_digest(signature(ev["body"]), ev["headers"].get("x-hub-signature-256", ""))
    if ok != should_match:
        fail(f"{path}: x-hub-signature-256 {'does not match' if should_match else 'unexpectedly matches'} "
             "the body (re-sign it with local-meta-app-secret after editing the body)")
# The shop samples: base64 HMAC-SHA256 of the raw body with the local shop secrets.
for name, header, secret in (("shopify_post_orders_create.json", "x-shopify-hmac-sha256", b"local-shopify-secret"),
                             ("woocommerce_post_order_created.json", "x-wc-webhook-signature",
                              b"local-woocommerce-secret")):
    path = pathlib.Path("events/apigw") / name
    if not path.exists():
        fail(f"{path} missing")
        continue
    ev = json.loads(path.read_text(encoding="utf-8"))
    want = base64.b64encode(hmac.new(secret, ev["body"].encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(want, ev["headers"].get(header, "")):
        fail(f"{path}: {header} does not match the body (re-sign it with {secret.decode()} after editing the body)")
# Every HTTP route of the template has an API Gateway sample (the Lambda binaries are tested with them).
sampled = set()
for path in pathlib.Path("events/apigw").glob("*.json"):
    ev = json.loads(path.read_text(encoding="utf-8"))
    method, _, route = ev.get("routeKey", "").partition(" ")
    sampled.add((method, route))
for route in sorted(routes_seen - sampled):
    fail(f"events/apigw has no sample event for route {route}")
for path in sorted(pathlib.Path("events").rglob("*.json")):
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        fail(f"{path}: invalid JSON: {e}")

# --- 5. README's dashboard paragraph and the dashboard ----------------------------------------
def dashboard_metrics() -> set[str]:
    body = resources.get("Dashboard", {}).get("Properties", {}).get("DashboardBody")
    if isinstance(body, dict) and "Fn::Sub" in body:
        body = body["Fn::Sub"]
        body = body[0] if isinstance(body, list) else body
    if not isinstance(body, str):
        fail("Dashboard.DashboardBody must be a string or !Sub of a string")
        return set()
    try:
        # ${…} substitutions sit inside JSON strings, so the body parses as it is.
        widgets = json.loads(body).get("widgets", [])
    except ValueError as e:
        fail(f"Dashboard.DashboardBody is not JSON: {e}")
        return set()
    return {m[1] for w in widgets for m in w.get("properties", {}).get("metrics", [])
            if isinstance(m, list) and len(m) > 1 and m[0] == "Parley"}

readme = pathlib.Path("README.md").read_text(encoding="utf-8")
para = re.search(r"^- \*\*Dashboard\*\*(.*?)(?=^- |^#|\Z)", readme, re.M | re.S)
if para is None:
    fail("README: no '- **Dashboard**' paragraph under Operate")
else:
    # The names after "metrics:" ("the `Parley` metrics: `InboundMessages`, …"; the namespace is not one).
    listed = para.group(1).split("metrics:", 1)[-1]
    named = set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", listed))
    shown = dashboard_metrics()
    for m in sorted(named - shown):
        fail(f"README's dashboard paragraph names {m}, which the dashboard in {template_path} does not show")
    for m in sorted(shown - named):
        fail(f"the dashboard shows Parley metric {m}, which README's dashboard paragraph does not name")
    code = "\n".join(p.read_text(encoding="utf-8") for p in pathlib.Path("shared/src").rglob("*.rs"))
    for m in sorted(shown):
        if f'"{m}"' not in code:
            fail(f"the dashboard shows Parley metric {m}, which no code in shared/src counts")

# --- 6. openapi.yaml: its examples and its routes ---------------------------------------------
import yaml  # PyYAML, jsonschema and referencing come with openapi-spec-validator
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

openapi_path = pathlib.Path(sys.argv[2])
doc = yaml.safe_load(openapi_path.read_text(encoding="utf-8"))
DOC_URI = "urn:parley:openapi"
# The document is one resource, so the schemas' "#/components/..." references resolve inside it.
registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))


def check_example(value, where: str) -> None:
    # $ref through the registry; the schema's own pointer would not survive json-pointer escaping.
    validator = Draft202012Validator({"$ref": f"{DOC_URI}#{where}"}, registry=registry)
    for err in validator.iter_errors(value):
        fail(f"{openapi_path}: example at {where} does not match its schema: {err.message}")


def pointer(*parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
documented = set()
for path, item in (doc.get("paths") or {}).items():
    for method, op in item.items():
        if method not in HTTP_METHODS:
            continue
        documented.add((method.upper(), path))
        params = list(item.get("parameters", [])) + list(op.get("parameters", []))
        for i, prm in enumerate(op.get("parameters", [])):
            if "example" in prm and "schema" in prm:
                check_example(prm["example"], pointer("paths", path, method, "parameters", i, "schema"))
        for i, prm in enumerate(params):
            if "$ref" not in prm and prm.get("in") == "path" and "example" not in prm:
                fail(f"{openapi_path}: {method.upper()} {path}: path parameter {prm.get('name')} has no example "
                     "(tests/openapi.rs fills paths from the examples)")
        bodies = [("requestBody", op.get("requestBody", {}).get("content", {}))]
        bodies += [(("responses", code), (resp or {}).get("content", {})) for code, resp in op.get("responses", {}).items()]
        for where, content in bodies:
            for media, mt in (content or {}).items():
                base = ("paths", path, method) + (where if isinstance(where, tuple) else (where, )) + ("content", media)
                if "schema" not in mt:
                    continue
                if "example" in mt:
                    check_example(mt["example"], pointer(*base, "schema"))
                for name, ex in (mt.get("examples") or {}).items():
                    if "value" in ex:
                        check_example(ex["value"], pointer(*base, "schema"))
for name, prm in (doc.get("components", {}).get("parameters") or {}).items():
    if "example" in prm and "schema" in prm:
        check_example(prm["example"], pointer("components", "parameters", name, "schema"))
for name, resp in (doc.get("components", {}).get("responses") or {}).items():
    for media, mt in (resp.get("content") or {}).items():
        base = ("components", "responses", name, "content", media, "schema")
        if "example" in mt:
            check_example(mt["example"], pointer(*base))
        for ex in (mt.get("examples") or {}).values():
            check_example(ex.get("value"), pointer(*base))


def route_key(route):
    # API Gateway routes `/agent` and `/agent/` alike.
    method, path = route
    return method, (path.rstrip("/") or "/")


in_template = {route_key(r): r for r in routes_seen}
in_doc = {route_key(r): r for r in documented}
for key in sorted(set(in_template) - set(in_doc)):
    fail(f"route {in_template[key]} is in {template_path} but not documented in {openapi_path}")
for key in sorted(set(in_doc) - set(in_template)):
    fail(f"route {in_doc[key]} is documented in {openapi_path} but not deployed by {template_path}")

# --- 8. a deploy that asks nothing: samconfig.toml and README name what the template takes ---
import tomllib

samconfig_path = pathlib.Path("samconfig.toml")
try:
    samconfig = tomllib.loads(samconfig_path.read_text(encoding="utf-8"))
except (OSError, tomllib.TOMLDecodeError) as e:
    samconfig = {}
    fail(f"{samconfig_path}: {e}")
template_params = tpl.get("Parameters", {})
deploy = samconfig.get("default", {}).get("deploy", {}).get("parameters", {})
overrides = dict(re.findall(r'(\w+)="([^"]*)"', deploy.get("parameter_overrides", "")))
for name in sorted(set(overrides) - set(template_params)):
    fail(f"{samconfig_path} overrides {name}, which is not a parameter of {template_path}")
for name, p in template_params.items():
    if "Default" not in p and name not in overrides:
        fail(f"parameter {name} has no default and {samconfig_path} does not set it: sam deploy would ask")
    value = overrides.get(name)
    if p.get("NoEcho") and value is not None and not re.fullmatch(r"\{\{resolve:secretsmanager:[^}]+\}\}", value):
        fail(f"{samconfig_path} sets the secret {name} to something that is not a Secrets Manager reference")
if "CAPABILITY_IAM" not in str(deploy.get("capabilities", "")):
    fail(f"{samconfig_path}: deploy needs capabilities CAPABILITY_IAM (the functions' roles)")
readme_text = pathlib.Path("README.md").read_text(encoding="utf-8")
for name in template_params:
    if f"`{name}`" not in readme_text:
        fail(f"parameter {name} is not documented in README.md")
for name in tpl.get("Outputs", {}):
    if f"`{name}`" not in readme_text:
        fail(f"stack output {name} is not documented in README.md")

if errors:
    for e in errors:
        print(f"  FAIL {e}", file=sys.stderr)
    sys.exit(f"check-template: {len(errors)} problem(s) in {template_path}")
print(f"  ok: {len(functions)} functions, {len(routes_seen)} routes "
      f"({sum(1 for r in routes_seen if r[1].startswith('/agent/') and r not in public_agent_routes)} behind the JWT authorizer), "
      f"{sum(len(v) for v in sqs_consumers.values())} SQS event source(s), no literal secrets, "
      f"README's dashboard metrics match the dashboard, {openapi_path} documents exactly these routes")
PY
echo "check-template: OK"
