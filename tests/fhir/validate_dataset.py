"""Validates the gateway's dataset files against the FHIR R4B models of `fhir.resources`.

Every `*.json` file in the folder is a Bundle (each entry's resource is checked, then the Bundle itself) or
a single resource. The models check element names, types, cardinality and required elements; R4B left the
resources the dataset uses as they were in R4. They do not check invariants or terminology bindings.

Beyond the models, it checks that ids are unique per resource type (the gateway relies on it), that every
relative reference (`Observation/p1-lab-hba1c`) names a resource in the folder, and that no array, object or
string is empty (FHIR JSON forbids them, ele-1, but the models accept them).
"""

import collections
import json
import pathlib
import sys

from fhir.resources.R4B import get_fhir_model_class


def resources_of(path, data):
    """Yields (where, resource) for each resource in one file."""
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        for i, entry in enumerate(data.get("entry", [])):
            yield f"{path}, entry {i}", entry.get("resource") if isinstance(entry, dict) else None
    else:
        yield str(path), data


def references(value):
    """Every `reference` string in a resource."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def empty_element(value, path=""):
    """The path of the first empty array, object or string: FHIR JSON has none (ele-1), and the models allow them."""
    if value in ([], {}, ""):
        return path or "the resource"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = empty_element(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return None


def invalid(where, why):
    print(f"{where}: invalid: {why}", file=sys.stderr)
    return 1


def main(folder):
    files = sorted(pathlib.Path(folder).glob("*.json"))
    if not files:
        return invalid(folder, "no *.json files")
    counts = collections.Counter()
    seen = {}  # "Type/id" -> where it is
    checked = []  # (where, "Type/id", resource)
    for path in files:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for where, resource in resources_of(path, data):
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                return invalid(where, "not a resource")
            resource_type = resource["resourceType"]
            name = f"{resource_type}/{resource.get('id')}"
            try:
                get_fhir_model_class(resource_type).model_validate(resource)
            except Exception as e:  # ValueError for an unknown type, ValidationError for an invalid resource
                return invalid(f"{where} ({name})", e)
            empty = empty_element(resource)
            if empty:
                return invalid(f"{where} ({name})", f"{empty} is empty")
            if name in seen:
                return invalid(f"{where} ({name})", f"duplicate of {seen[name]}")
            seen[name] = where
            checked.append((where, name, resource))
            counts[resource_type] += 1
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            try:
                get_fhir_model_class("Bundle").model_validate(data)
            except Exception as e:
                return invalid(f"{path} (the Bundle)", e)
    for where, name, resource in checked:
        for reference in references(resource):
            relative = reference.count("/") == 1 and ":" not in reference
            if relative and reference not in seen:
                return invalid(f"{where} ({name})", f"refers to {reference}, which is not in {folder}")
    for resource_type, count in sorted(counts.items()):
        print(f"{count:5}  {resource_type}")
    print(f"{sum(counts.values()):5}  resources in {len(files)} files: valid FHIR R4 (R4B models)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: validate_dataset.py DATASET_FOLDER")
    sys.exit(main(sys.argv[1]))
