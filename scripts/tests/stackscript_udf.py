"""Checks the StackScript's <UDF> header against the Marketplace's rules.

    stackscript_udf.py STACKSCRIPT WORKSPACE_VERSION

- every UDF is one `# <UDF name=... label=... />` comment with known attributes;
- names are lower-case snake case and unique; labels are non-empty;
- a field without `default` is required: only the sudo user name may be;
- `oneOf` lists distinct options and its default is one of them;
- a secret (a name mentioning token or password) contains `password`, which is what the
  Marketplace masks, and is optional;
- section headers (`header="Yes"`) have a default;
- the body reads each answer as the upper-case environment variable Linode sets;
- the script starts with #!/bin/bash (so it also works as cloud-init user data) and
  defaults to the workspace's release version.
"""

import re
import sys

path, version = sys.argv[1], sys.argv[2]
text = open(path).read()
lines = text.splitlines()
errors = []
ALLOWED = {"name", "label", "default", "example", "oneOf", "manyOf", "header"}

if lines[0] != "#!/bin/bash":
    errors.append(f"first line is {lines[0]!r}, not #!/bin/bash")
udfs = []
for n, line in enumerate(lines, 1):
    if "<UDF" not in line:
        continue
    m = re.fullmatch(r"#\s*<UDF((?:\s+\w+=\"[^\"]*\")+)\s*/>", line.strip())
    if not m:
        errors.append(f"line {n}: not a single well-formed <UDF ... /> comment: {line}")
        continue
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    unknown = set(attrs) - ALLOWED
    if unknown:
        errors.append(f"line {n}: unknown attributes {sorted(unknown)}")
    attrs["line"] = n
    udfs.append(attrs)

names = [u.get("name", "") for u in udfs]
if len(set(names)) != len(names):
    errors.append(f"duplicate UDF names: {names}")
required = []
body = "\n".join(l for l in lines if "<UDF" not in l)
for u in udfs:
    name, n = u.get("name", ""), u["line"]
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        errors.append(f"line {n}: name {name!r} is not lower-case snake case")
    if not u.get("label", "").strip():
        errors.append(f"line {n}: {name} has no label")
    if u.get("header") == "Yes":
        if "default" not in u:
            errors.append(f"line {n}: section header {name} needs a default")
        continue
    if "default" not in u:
        required.append(name)
    if "oneOf" in u:
        options = u["oneOf"].split(",")
        if len(set(options)) != len(options) or not all(options):
            errors.append(f"line {n}: {name} oneOf has empty or repeated options: {options}")
        if "default" in u and u["default"] not in options:
            errors.append(f"line {n}: {name} default {u['default']!r} is not among {options}")
    if re.search(r"token|password|secret", name) and "password" not in name:
        errors.append(f"line {n}: secret field {name} must contain 'password' to be masked")
    if "password" in name and "default" not in u:
        errors.append(f"line {n}: secret field {name} should be optional")
    if not re.search(r"\$\{?" + name.upper() + r"\b", body):
        errors.append(f"line {n}: the script never reads ${name.upper()}")
if required != ["user_name"]:
    errors.append(f"required fields are {required}, expected only ['user_name']")
if f'AI_SANDBOX_VERSION="${{AI_SANDBOX_VERSION:-{version}}}"' not in text:
    errors.append(f"the script does not default to release version {version}")

if errors:
    print("\n".join(f"UDF: {e}" for e in errors))
    sys.exit(1)
print(f"UDF header ok: {len(udfs)} fields ({', '.join(names)}); required: {', '.join(required)}")
