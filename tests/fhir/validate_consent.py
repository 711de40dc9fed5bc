"""Validates exported Consent resources against the FHIR R4B models of `fhir.resources`.

R4B left Consent as it was in R4, so these models check an R4 Consent: element names, types, cardinality
and required elements. They do not check invariants (ppc-1..5) or terminology bindings; the Rust tests
assert those that matter for Custodia.
"""

import json
import sys

from fhir.resources.R4B.consent import Consent


def main(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        consent = Consent.model_validate(data)
        print(f"{path}: valid FHIR Consent {consent.id} ({len(consent.provision.provision)} permit provisions)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: validate_consent.py CONSENT.json...")
    sys.exit(main(sys.argv[1:]))
