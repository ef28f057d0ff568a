#!/usr/bin/env python3
"""Writes the OpenAPI documents of the relay and the RA (crates/kalit-relay/openapi.json,
crates/kalit-ra/openapi.json). The services serve them at /openapi.json; each crate's tests check that
every route and every error code of kalit-proto is in its document. Run after changing an API."""
import json, os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODES = ["internal", "usage", "wrong_pin", "locked", "wrong_password", "not_found", "refused_by_policy",
         "invalid_input", "invalid_signature", "declined", "corrupt", "already_exists", "key_mismatch",
         "weak_secret", "io", "try_later", "untrusted_certificate", "login_taken", "rate_limited", "expired",
         "unavailable", "unauthorized", "too_large"]

def s(t, desc=None, **kw):
    d = {"type": t, **kw}
    if desc: d["description"] = desc
    return d

def obj(props, required=None, desc=None):
    d = {"type": "object", "additionalProperties": False, "properties": props,
         "required": required if required is not None else list(props)}
    if desc: d["description"] = desc
    return d

ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
B64 = lambda d: s("string", d + " (standard base64)", format="byte")

common = {
    "ErrorCode": {"type": "string", "enum": CODES, "description": "Stable error codes (kalit-proto ErrorCode)."},
    "ApiError": obj({"error": obj({"code": ref("ErrorCode"), "message": s("string")})}),
    "Health": obj({"status": s("string"), "version": s("string"), "database": s("string", enum=["sqlite", "postgres"])}),
}

def err(desc):
    return {"description": desc, "content": {"application/json": {"schema": ref("ApiError")}}}

def ok(schema, desc="OK", code="200"):
    return {code: {"description": desc, "content": {"application/json": {"schema": schema}}}}

errors = {"400": err("invalid_input, invalid_signature"), "403": err("untrusted_certificate, unauthorized, refused_by_policy"),
          "409": err("login_taken, already_exists"), "410": err("expired (nonce unknown, used or expired)"),
          "413": err("too_large"), "429": err("rate_limited (see Retry-After)"), "500": err("internal"),
          "503": err("unavailable (database)")}

def body(name):
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

common_paths = {
    "/healthz": {"get": {"summary": "Health: the database answers.", "responses": {**ok(ref("Health")), "503": err("unavailable")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics (text format).", "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": s("string")}}}}}},
    "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
}

proof = obj({"chain": {"type": "array", "minItems": 1, "maxItems": 8, "items": B64("DER certificate, leaf first")},
             "signature": B64("signature by the leaf's key over the statement")})
attestation = obj({"relay_id": s("string"), "login": s("string"), "cert_fingerprint": s("string", "SHA-256 of the certificate DER, hex"),
                   "device_id": s("string"), "device_key": B64("Ed25519 device key"), "issued_at": s("integer", "Unix seconds")})
relay = {
    "openapi": "3.1.0",
    "info": {"title": "Kalit relay API", "version": "1",
             "description": "The relay (module 3, the paper's W). Registration: POST /v1/nonce, then POST /v1/register with proofs over "
                            "domain-separated statements (docs/PROTOCOL.md). Errors are ApiError bodies with stable codes."},
    "paths": {
        **common_paths,
        "/.well-known/kalit-relay": {"get": {"summary": "The relay's public identity (attestation key).", "responses": ok(ref("RelayIdentity"))}},
        "/v1/nonce": {"post": {"summary": "A fresh single-use nonce.", "responses": {**ok(ref("NonceResponse")), "429": errors["429"], "503": errors["503"]}}},
        "/v1/register": {"post": {"summary": "Attach a device and certificate to a login (creates the login if it is free).",
                                  "requestBody": body("RegisterRequest"),
                                  "responses": {**ok(ref("RegisterResponse"), "Registered", "201"), **errors}}},
        "/v1/devices": {"post": {"summary": "List the devices of a login (request signed by one of its devices).",
                                 "requestBody": body("DeviceRequest"), "responses": {**ok(ref("DeviceList")), **errors}}},
        "/v1/devices/remove": {"post": {"summary": "Remove a device of a login (request signed by one of its devices).",
                                        "requestBody": body("DeviceRequest"),
                                        "responses": {**ok(obj({"removed": s("string")})), "404": err("not_found"), **errors}}},
    },
    "components": {"schemas": {
        **common,
        "RelayIdentity": obj({"version": s("integer"), "relay_id": s("string"), "public_key": B64("raw Ed25519 key"), "name": s("string")}),
        "NonceResponse": obj({"nonce": B64("32 bytes"), "expires_at": s("integer", "Unix seconds")}),
        "CertProof": proof,
        "RegisterRequest": obj({"login": s("string", minLength=3, maxLength=64, pattern="^[a-zA-Z0-9][a-zA-Z0-9._@-]*$"),
                                "device_key": B64("raw Ed25519 public key, 32 bytes"), "device_name": s("string", maxLength=64),
                                "nonce": B64("from /v1/nonce"), "relay_id": s("string"), "proof": ref("CertProof"),
                                "existing": ref("CertProof")}, ["login", "device_key", "device_name", "nonce", "relay_id", "proof"]),
        "Attestation": attestation,
        "SignedAttestation": obj({"attestation": ref("Attestation"), "signature": B64("Ed25519 signature over kalit/v1/attestation")}),
        "RegisterResponse": obj({"outcome": s("string", enum=["created", "added"]), "attestation": ref("SignedAttestation")}),
        "DeviceRequest": obj({"login": s("string"), "device_id": s("string"), "nonce": B64("from /v1/nonce"), "relay_id": s("string"),
                              "target": s("string", "device to remove; empty to list"), "signature": B64("Ed25519 over kalit/v1/device-request")},
                             ["login", "device_id", "nonce", "relay_id", "signature"]),
        "DeviceInfo": obj({"device_id": s("string"), "name": s("string"), "cert_fingerprint": s("string"), "cert_subject": s("string"),
                           "registered_at": s("integer")}),
        "DeviceList": obj({"login": s("string"), "devices": {"type": "array", "items": ref("DeviceInfo")}}),
    }},
}

ra = {
    "openapi": "3.1.0",
    "info": {"title": "Kalit Registration Authority API", "version": "1",
             "description": "Issues document-signing certificates for CSRs presented with a one-time enrolment code. The subject "
                            "comes from the RA's record, the profile is fixed. Errors are ApiError bodies with stable codes."},
    "paths": {
        **common_paths,
        "/v1/certificates": {"post": {"summary": "Issue a certificate for a CSR and an enrolment code.", "requestBody": body("IssueRequest"),
                                      "responses": {**ok(ref("IssueResponse"), "Issued", "201"), "400": err("invalid_input, invalid_signature"),
                                                    "410": err("expired (code unknown, used or expired)"), "413": err("too_large"),
                                                    "429": err("rate_limited"), "500": err("internal")}}},
        "/v1/ca.pem": {"get": {"summary": "The CA chain (issuing CA first, root last), PEM.",
                               "responses": {"200": {"description": "PEM", "content": {"application/x-pem-file": {"schema": s("string")}}}}}},
        "/v1/crl": {"get": {"summary": "The current CRL of the issuing CA, DER.",
                            "responses": {"200": {"description": "CRL", "content": {"application/pkix-crl": {"schema": s("string", format="binary")}}}}}},
    },
    "components": {"schemas": {
        **common,
        "IssueRequest": obj({"code": s("string", "one-time enrolment code"), "csr": s("string", "PKCS#10, PEM")}),
        "IssueResponse": obj({"serial": s("string", "hex"), "subject": s("string"), "chain": s("string", "PEM, leaf first"),
                              "not_after": s("integer", "Unix seconds")}),
    }},
}

for path, doc in [("crates/kalit-relay/openapi.json", relay), ("crates/kalit-ra/openapi.json", ra)]:
    with open(os.path.join(ROOT, path), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
