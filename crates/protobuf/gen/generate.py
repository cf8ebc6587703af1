#!/usr/bin/env python3
"""Generate src/schema.rs: the protobuf schema of the Kubernetes API as static tables.

Why generated and not prost types: the API server keeps objects as JSON values, so it
needs a *generic* JSON <-> protobuf transcoder driven by a schema, not one Rust type per
message. Two inputs, because neither alone has everything:

* the `k8s-pb` crate (kube-rs' prost bindings; a dev-dependency, so cargo has its
  source): field numbers, wire types and resolved message types of every message, and
  which messages are top-level kinds (`impl crate::Resource`);
* the Go types of `k8s.io/api` and `k8s.io/apimachinery` (a checkout of each): the JSON
  name of every field (prost's snake_case names lose `podIP`), `json:",inline"` fields,
  and whether a zero value is meaningful (a pointer, or a field without omitempty) -
  Go's encoder writes every non-pointer field, so a decoder must drop zero values that
  Go itself would treat as unset, or `imagePullPolicy: ""` would block defaulting.

Usage:
  gen/generate.py ~/.cargo/registry/src/*/k8s-pb-0.9.0/src API_DIR APIMACHINERY_DIR [REVISION] > src/schema.rs
where API_DIR and APIMACHINERY_DIR are checkouts of github.com/kubernetes/api and
github.com/kubernetes/apimachinery (any release at least as new as the k8s-pb crate).
"""
import os
import re
import sys

pb_src, api_dir, machinery_dir = sys.argv[1:4]
# Which commit of k8s.io/api the Go types came from, for the header (optional 4th argument).
GO_REVISION = sys.argv[4] if len(sys.argv) > 4 else "an unrecorded revision"

# Which packages to include: the stable group-versions Podium serves or may serve.
def wanted(module):
    parts = module.split(".")
    if parts[0] == "api":
        return re.fullmatch(r"v[0-9]+", parts[-1]) is not None
    return module in (
        "apimachinery.pkg.apis.meta.v1",
        "apimachinery.pkg.api.resource",
        "apimachinery.pkg.runtime",
        "apimachinery.pkg.runtime.schema",
        "apimachinery.pkg.util.intstr",
    )

# ---- prost sources --------------------------------------------------------------------
messages = {}  # full name -> {"fields": [...]} in source order
kinds = []  # (apiVersion, kind, full name)
attr_re = re.compile(r"#\[prost\((.*)\)\]")
for root, _dirs, files in os.walk(pb_src):
    if "mod.rs" not in files:
        continue
    rel = os.path.relpath(root, pb_src)
    if rel == ".":
        continue
    module = rel.replace(os.sep, ".")
    if not wanted(module):
        continue
    lines = open(os.path.join(root, "mod.rs")).read().split("\n")
    current = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        m = re.match(r"pub struct (\w+) \{$", line)
        if m:
            current = module + "." + m.group(1)
            messages[current] = {"fields": []}
            i += 1
            continue
        if line == "}":
            current = None
        m = attr_re.match(line)
        if m and current:
            attr = m.group(1)
            decl = ""
            i += 1
            while True:
                decl += lines[i].strip()
                if decl.endswith(",") and decl.count("<") == decl.count(">"):
                    break
                i += 1
            fm = re.match(r"pub (?:r#)?(\w+):\s*(.*),$", decl)
            name, rust_type = fm.group(1), re.sub(r",\s*>", ">", fm.group(2).replace(" ", ""))
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            kind = attr.split(",")[0].strip()
            entry = {"rust": name, "tag": tag, "repeated": "repeated" in attr}
            if kind.startswith("btree_map"):
                key, value = re.search(r'btree_map = "(\w+), (\w+)"', attr).groups()
                assert key == "string", (current, name)
                entry["kind"] = "map_" + value
            elif kind.startswith("bytes"):
                entry["kind"] = "bytes"
            else:
                entry["kind"] = kind
            if entry["kind"] in ("message", "map_message"):
                # Innermost type path, resolved against this module.
                inner = rust_type
                for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                                "::prost::alloc::boxed::Box<"):
                    while inner.startswith(wrapper):
                        inner = inner[len(wrapper):-1]
                inner = re.sub(r"^::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,", "", inner)
                if entry["kind"] == "map_message":
                    inner = inner[:-1]
                path = module.split(".")
                segs = inner.split("::")
                while segs[0] == "super":
                    path.pop()
                    segs.pop(0)
                if segs[0] == "crate":
                    path = []
                    segs.pop(0)
                entry["type"] = ".".join(path + segs)
            messages[current]["fields"].append(entry)
        m = re.match(r"impl crate::Resource for (\w+) \{$", line)
        if m:
            api_version = re.search(r'API_VERSION: &\'static str = "([^"]+)"', lines[i + 1]).group(1)
            kind = re.search(r'KIND: &\'static str = "([^"]+)"', lines[i + 4]).group(1)
            kinds.append((api_version, kind, module + "." + m.group(1)))
        i += 1

# ---- Go sources -----------------------------------------------------------------------
def go_package_dir(module):
    parts = module.split(".")
    if parts[0] == "api":
        return os.path.join(api_dir, *parts[1:])
    if parts[0] == "apimachinery":
        return os.path.join(machinery_dir, *parts[1:])
    return None

go_fields = {}  # (module, struct lower) -> {tag: (json, omitempty, pointer)}
go_slice_types = set()  # (module, name lower) of `type X []T`
go_kinds = []  # (apiVersion, kind, module) of structs that embed TypeMeta
field_re = re.compile(r'^\s*(?:(\w+)\s+)?(\S+)\s+`(.*)`')
for module in sorted({name.rsplit(".", 1)[0] for name in messages}):
    directory = go_package_dir(module)
    if not directory or not os.path.isdir(directory):
        continue
    group = None
    register = os.path.join(directory, "register.go")
    if os.path.exists(register):
        gm = re.search(r'GroupName\s*=\s*"([^"]*)"', open(register).read())
        group = gm.group(1) if gm else None
    version = module.rsplit(".", 1)[1]
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".go") or fname.endswith("_test.go"):
            continue
        struct = None
        for line in open(os.path.join(directory, fname)):
            m = re.match(r"type (\w+) struct \{", line)
            if m:
                struct = (module, m.group(1).lower())
                struct_name = m.group(1)
                go_fields.setdefault(struct, {})
                continue
            m = re.match(r"type (\w+) \[\]", line)
            if m:
                go_slice_types.add((module, m.group(1).lower()))
            if line.startswith("}"):
                struct = None
                continue
            if struct is not None and group is not None and module.startswith("api.") and re.match(r"\s*metav1\.TypeMeta\b", line):
                api_version = f"{group}/{version}" if group else version
                go_kinds.append((api_version, struct_name, module))
            if struct is None or 'protobuf:"' not in line:
                continue
            m = field_re.match(line)
            if not m:
                continue
            go_type, tags = m.group(2), m.group(3)
            pm = re.search(r'protobuf:"(\w+),(\d+),', tags)
            jm = re.search(r'json:"([^"]*)"', tags)
            if not pm:
                continue
            json_name, _, options = (jm.group(1) if jm else "").partition(",")
            inline = "inline" in options.split(",")
            go_fields[struct][int(pm.group(2))] = (
                "" if inline else json_name,
                "omitempty" in options.split(","),
                go_type.startswith("*"),
            )

def lower_camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)

SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
}

names = sorted(messages)
index = {n: i for i, n in enumerate(names)}
unmatched = []
TY = {"string": "String", "bytes": "Bytes", "bool": "Bool", "int32": "Int32",
      "int64": "Int64", "double": "Double", "map_string": "MapString",
      "map_bytes": "MapBytes"}

out = []
out.append("// @generated by crates/protobuf/gen/generate.py from the k8s-pb crate and the Go types")
out.append("// of k8s.io/api and k8s.io/apimachinery. Do not edit by hand.")
out.append(f"// Inputs: {os.path.basename(os.path.dirname(os.path.abspath(pb_src)))}; Go types at {GO_REVISION}.")
out.append("")
out.append("use crate::schema_types::{Field, Message, Special, Ty};")
out.append("")
out.append(f"pub static MESSAGES: [Message; {len(names)}] = [")
for name in names:
    module, short = name.rsplit(".", 1)
    special = SPECIAL.get(name)
    if special is None and (module, short.lower()) in go_slice_types:
        special = "Items"
    go = go_fields.get((module, short.lower()), {})
    fields = []
    for f in sorted(messages[name]["fields"], key=lambda f: f["tag"]):
        if f["tag"] in go:
            json_name, omitempty, pointer = go[f["tag"]]
            keep_zero = pointer or not omitempty
        else:
            json_name, keep_zero = lower_camel(f["rust"]), True
            if special is None:
                unmatched.append(f"{name}.{f['rust']}")
        if f["kind"] in ("message", "map_message"):
            target = f["type"]
            if target not in index:
                raise SystemExit(f"{name}.{f['rust']}: message {target} not generated (add its package)")
            ty = ("Message" if f["kind"] == "message" else "MapMessage") + f"({index[target]})"
        else:
            ty = TY[f["kind"]]
        fields.append(
            f"Field {{ number: {f['tag']}, json: {json_name!r}, ty: Ty::{ty}, repeated: {str(f['repeated']).lower()}, keep_zero: {str(keep_zero).lower()} }}"
            .replace("'", '"'))
    body = ", ".join(fields)
    out.append(f"    Message {{ name: \"{name}\", special: Special::{special or 'None'}, fields: &[{body}] }},")
out.append("];")
out.append("")
for api_version, kind, module in go_kinds:
    for name in index:
        if name.rsplit(".", 1)[0] == module and name.rsplit(".", 1)[1].lower() == kind.lower():
            kinds.append((api_version, kind, name))
kinds = sorted({(a, k, n) for a, k, n in kinds if n in index})
# List kinds: `XList` beside every kind X.
for api_version, kind, name in list(kinds):
    if name + "List" in index:
        kinds.append((api_version, kind + "List", name + "List"))
kinds = sorted(set(kinds))
out.append("/// (apiVersion, kind) -> message, sorted for binary search.")
out.append(f"pub static KINDS: [(&str, &str, u16); {len(kinds)}] = [")
for api_version, kind, name in kinds:
    out.append(f"    (\"{api_version}\", \"{kind}\", {index[name]}),")
out.append("];")
print("\n".join(out))
for u in unmatched:
    print(f"generate.py: no Go field for {u}; guessed its JSON name", file=sys.stderr)
