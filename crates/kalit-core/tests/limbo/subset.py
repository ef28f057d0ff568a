#!/usr/bin/env python3
"""Writes limbo-subset.json: the x509-limbo path-validation cases that apply to Kalit's chain check.

Usage: python3 subset.py LIMBO_JSON > limbo-subset.json

LIMBO_JSON is x509-limbo's compiled suite (`limbo compile`, from the C2SP/x509-limbo repository at the
commit named below; its testcases are Apache-2.0). Left out: the families that check a TLS server or
client *name* (webpki::san, webpki::cn), which Kalit never validates, the online snapshots, bettertls,
and CRL cases (revocation is built with PDF signatures). Every other case is kept, including those
where Kalit decides differently: tests/limbo.rs lists them with the reason.
"""
import json
import sys

SOURCE = "C2SP/x509-limbo at 8a2e6f4"
FAMILIES = ("rfc5280::", "pathlen::", "pathological::", "cve::", "invalid::", "webpki::")
SKIP = ("webpki::san::", "webpki::cn::")
FIELDS = ("id", "features", "validation_kind", "trusted_certs", "untrusted_intermediates",
          "peer_certificate", "validation_time", "expected_result", "max_chain_depth")

suite = json.load(open(sys.argv[1]))
cases = [
    {k: t[k] for k in FIELDS}
    for t in suite["testcases"]
    if t["id"].startswith(FAMILIES) and not t["id"].startswith(SKIP)
]
cases.sort(key=lambda t: t["id"])
json.dump({"source": SOURCE, "license": "Apache-2.0", "testcases": cases}, sys.stdout, indent=1)
print()
