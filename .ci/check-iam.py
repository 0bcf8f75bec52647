"""Holds the AWS operations each function performed during `make test` against its policy in
template.yaml: every operation must be allowed, every granted permission must be used.

The local runtime gives each function its own AWS clients; they record each call as one JSON
line {function, action, resource, operation} under the record directory (local/src/iam.rs):
`action` is the IAM action (the actions inside a transaction, `sqs:SendMessage` for
`SendMessageBatch`, ...), `resource` the template's logical id (`Table`, `OutboundQueue`) or
`Table/index/<name>`.

A function's permissions are its `Policies` statements plus what SAM's managed policy for an SQS
event source grants (sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes on that
queue); the latter are allowed but not required to be used.

Output, one line per finding, then a summary:
  ok            <function> <action> on <resource>  (<SDK operations>)
  DENIED        <function> <action> on <resource>  (<SDK operations>) — no statement allows it
  UNUSED        <function> <action> on <resource>  (statement <Sid>) — no test path performed it
  NOT EXERCISED <function> — no recorded operation at all
  UNSUPPORTED   <function> <what> — a policy form this check cannot evaluate
Exit status 1 when any line other than `ok` is printed.

Usage: check-iam.py <template.yaml> <record dir>
"""

import fnmatch
import json
import pathlib
import sys

from cfnlint.decode import decode

# Granted to a function's role by SAM for each SQS event source (AWSLambdaSQSQueueExecutionRole).
SQS_EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def as_list(v):
    return v if isinstance(v, list) else [v]


def resource_pattern(v):
    """An IAM Resource as a pattern over the recorder's resource names, or None if unsupported."""
    if v == "*":
        return "*"
    if isinstance(v, dict) and set(v) == {"Fn::GetAtt"}:
        g = v["Fn::GetAtt"]
        logical, attr = g if isinstance(g, list) else str(g).split(".", 1)
        return logical if attr == "Arn" else None
    if isinstance(v, dict) and set(v) == {"Fn::Sub"} and isinstance(v["Fn::Sub"], str):
        s = v["Fn::Sub"]
        if s.startswith("${") and ".Arn}" in s:
            logical, rest = s[2:].split(".Arn}", 1)
            return logical + rest
    return None


def matches(pattern, value):
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def main(template_path, record_dir):
    tpl, problems = decode(template_path)
    if tpl is None:
        sys.exit(f"check-iam: cannot parse {template_path}: {problems}")
    findings = []  # (kind, text)

    # function name -> list of grants (sid, action pattern, resource pattern, must_be_used)
    grants = {}
    for logical, res in tpl.get("Resources", {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties", {})
        name = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary") or logical
        fn = grants.setdefault(name, [])
        if "Role" in props:
            findings.append(("UNSUPPORTED", f"{name} Role (a custom role; give the function Policies)"))
        for policy in as_list(props.get("Policies", [])):
            if not (isinstance(policy, dict) and set(policy) <= {"Statement", "Version"}):
                findings.append(("UNSUPPORTED", f"{name} policy {json.dumps(policy, default=str)[:80]}"))
                continue
            for st in as_list(policy["Statement"]):
                sid = st.get("Sid", "?")
                if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st or "Condition" in st:
                    findings.append(("UNSUPPORTED", f"{name} statement {sid} (only plain Allow statements)"))
                    continue
                for r in as_list(st.get("Resource", [])):
                    pattern = resource_pattern(r)
                    if pattern is None:
                        findings.append(("UNSUPPORTED", f"{name} statement {sid} resource {r}"))
                        continue
                    for a in as_list(st.get("Action", [])):
                        fn.append((sid, a, pattern, True))
        for ev_name, ev in (props.get("Events") or {}).items():
            ev_type = ev.get("Type")
            if ev_type == "SQS":
                queue = resource_pattern(ev.get("Properties", {}).get("Queue"))
                if queue is None:
                    findings.append(("UNSUPPORTED", f"{name} event {ev_name} queue"))
                    continue
                fn.extend((f"event {ev_name}", a, queue, False) for a in SQS_EVENT_SOURCE_ACTIONS)
            elif ev_type not in ("HttpApi", "Api", "Schedule", "ScheduleV2"):
                findings.append(("UNSUPPORTED", f"{name} event {ev_name} of type {ev_type}"))

    # (function, action, resource) -> SDK operations
    recorded = {}
    files = sorted(pathlib.Path(record_dir).glob("*.jsonl"))
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                key = (r["function"], r["action"], r["resource"])
                recorded.setdefault(key, set()).add(r["operation"])
    if not recorded:
        sys.exit(f"check-iam: no recorded operations in {record_dir} (were the tests run with PARLEY_IAM_RECORD_DIR?)")

    used = set()
    for (function, action, resource), ops in sorted(recorded.items()):
        what = f"{function} {action} on {resource}  ({', '.join(sorted(ops))})"
        if function not in grants:
            findings.append(("DENIED", f"{what} — no such function in the template"))
            continue
        allowing = [g for g in grants[function] if matches(g[1], action) and matches(g[2], resource)]
        if allowing:
            used.update((function, g) for g in allowing)
            findings.append(("ok", what))
        else:
            findings.append(("DENIED", f"{what} — no statement allows it"))

    exercised = {f for (f, _, _) in recorded}
    for function, fn_grants in sorted(grants.items()):
        if function not in exercised:
            findings.append(("NOT EXERCISED", f"{function} — no recorded operation at all"))
            continue
        for g in fn_grants:
            sid, action, resource, must_be_used = g
            if must_be_used and (function, g) not in used:
                findings.append(("UNUSED", f"{function} {action} on {resource}  (statement {sid}) — no test path performed it"))

    order = {"UNSUPPORTED": 0, "DENIED": 1, "UNUSED": 2, "NOT EXERCISED": 3, "ok": 4}
    for kind, text in sorted(findings, key=lambda k: (order[k[0]], k[1])):
        print(f"{kind:<13} {text}")
    bad = sum(1 for kind, _ in findings if kind != "ok")
    ops = sum(1 for kind, _ in findings if kind == "ok")
    print(
        f"iam: {len(grants)} functions, {ops} allowed (function, action, resource) from {len(files)} test processes, "
        f"{bad} problem(s)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
