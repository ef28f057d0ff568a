#!/usr/bin/env python3
"""Writes the OpenAPI documents of the relay, the RA and the agent (crates/kalit-relay/openapi.json,
crates/kalit-ra/openapi.json, crates/kalit-agent/openapi.json). The services serve them at /openapi.json; each crate's tests check that
every route and every error code of kalit-proto is in its document. Run after changing an API."""
import json, os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODES = ["internal", "usage", "wrong_pin", "locked", "wrong_password", "not_found", "refused_by_policy",
         "invalid_input", "invalid_signature", "declined", "corrupt", "already_exists", "key_mismatch",
         "weak_secret", "io", "try_later", "untrusted_certificate", "login_taken", "rate_limited", "expired",
         "unavailable", "unauthorized", "too_large", "channel", "busy"]

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
                   "device_id": s("string"), "device_key": B64("Ed25519 device key"), "issued_at": s("integer", "Unix seconds"),
                   "expires_at": s("integer", "Unix seconds; no one relies on it after")})
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
        "/v1/devices/remove": {"post": {"summary": "Remove a device of a login (request signed by one of its devices). A device "
                                                   "registered with another certificate needs that certificate's proof over "
                                                   "kalit/v1/device-removal (refused_by_policy otherwise).",
                                        "requestBody": body("DeviceRequest"),
                                        "responses": {**ok(obj({"removed": s("string")})), "404": err("not_found"), **errors}}},
        "/v1/certificates/detach": {"post": {"summary": "Ask that a certificate (target: its fingerprint) leave the login with all its "
                                                        "devices after the cooling-off period (action `detach`). Every device of the "
                                                        "login sees it in its device list.",
                                             "requestBody": body("DeviceRequest"),
                                             "responses": {**ok(ref("DetachResponse")), "404": err("not_found"), **errors}}},
        "/v1/certificates/cancel-detach": {"post": {"summary": "Cancel a pending detachment (action `cancel-detach`), from a device of "
                                                               "that certificate only.",
                                                    "requestBody": body("DeviceRequest"),
                                                    "responses": {**ok(ref("DetachResponse")), "404": err("not_found"), **errors}}},
        "/v1/tunnel/{id}/wait": {"get": {"summary": "WebSocket: the agent's end of a blind tunnel. The relay sends a TunnelEvent "
                                                    "`ready`, then `peer` when a phone joined; after that it forwards binary frames "
                                                    "(Noise messages, at most 65535 bytes) and never reads them.",
                                         "parameters": [{"name": "id", "in": "path", "required": True, "schema": s("string", "HKDF(QR secret, kalit/v1/tunnel), 64 hex")},
                                                        {"name": "ttl", "in": "query", "required": False, "schema": s("integer", "seconds to wait for a phone (at most 300)")}],
                                         "responses": {"101": {"description": "WebSocket"}, "400": err("invalid_input"),
                                                       "409": err("already_exists (tunnel id waiting)"), "429": errors["429"],
                                                       "503": err("unavailable (too many waiting tunnels)")}}},
        "/v1/tunnel/{id}/join": {"get": {"summary": "WebSocket: the phone's end. First text frame: a DeviceRequest with action "
                                                    "`tunnel-join` and target the tunnel id; the relay answers TunnelEvent `joined` "
                                                    "(first phone wins) or `error`, then forwards binary frames.",
                                         "parameters": [{"name": "id", "in": "path", "required": True, "schema": s("string")}],
                                         "responses": {"101": {"description": "WebSocket"}, "400": err("invalid_input"), "429": errors["429"]}}},
    },
    "components": {"schemas": {
        **common,
        "RelayIdentity": obj({"version": s("integer"), "relay_id": s("string"), "public_key": B64("raw Ed25519 key"), "name": s("string")}),
        "NonceResponse": obj({"nonce": B64("32 bytes"), "expires_at": s("integer", "Unix seconds")}),
        "CertProof": proof,
        "RegisterRequest": obj({"login": s("string", minLength=3, maxLength=64, pattern="^[a-zA-Z0-9][a-zA-Z0-9._@-]*$"),
                                "device_key": B64("raw Ed25519 public key, 32 bytes"), "device_name": s("string", maxLength=64),
                                "nonce": B64("from /v1/nonce"), "relay_id": s("string"), "proof": ref("CertProof"),
                                "approval": ref("DeviceApproval")}, ["login", "device_key", "device_name", "nonce", "relay_id", "proof"]),
        "DeviceApproval": obj({"device_id": s("string", "a registered device of the login"),
                               "signature": B64("Ed25519 over kalit/v1/device-request, action attach, target NEW_CERT_FP/NEW_DEVICE_ID")}),
        "DetachResponse": obj({"cert_fingerprint": s("string"), "effective_at": s("integer", "Unix seconds; absent after a cancellation")},
                              ["cert_fingerprint"]),
        "PendingDetachment": obj({"cert_fingerprint": s("string"), "cert_subject": s("string"), "requested_by": s("string"),
                                  "requested_at": s("integer"), "effective_at": s("integer")}),
        "Attestation": attestation,
        "SignedAttestation": obj({"attestation": ref("Attestation"), "signature": B64("Ed25519 signature over kalit/v2/attestation")}),
        "RegisterResponse": obj({"outcome": s("string", enum=["created", "added"]), "attestation": ref("SignedAttestation")}),
        "DeviceRequest": obj({"login": s("string"), "device_id": s("string"), "nonce": B64("from /v1/nonce"), "relay_id": s("string"),
                              "target": s("string", "device to remove, certificate to detach; empty to list"),
                              "signature": B64("Ed25519 over kalit/v1/device-request"),
                              "proof": ref("CertProof")},
                             ["login", "device_id", "nonce", "relay_id", "signature"]),
        "DeviceInfo": obj({"device_id": s("string"), "name": s("string"), "cert_fingerprint": s("string"), "cert_subject": s("string"),
                           "registered_at": s("integer")}),
        "DeviceList": obj({"login": s("string"), "devices": {"type": "array", "items": ref("DeviceInfo")},
                           "pending_detachments": {"type": "array", "items": ref("PendingDetachment")}}),
        "TunnelEvent": {"oneOf": [obj({"event": s("string", const="ready"), "expires_in": s("integer")}),
                                  obj({"event": s("string", const="peer"), "login": s("string"), "device_id": s("string")}),
                                  obj({"event": s("string", const="joined"), "attestation": ref("SignedAttestation"),
                                       "computer_address": s("string", "where the computer's side came from"),
                                       "same_network": s("boolean", "same IPv4 address or IPv6 /64 as the phone")}),
                                  obj({"event": s("string", const="error"), "code": ref("ErrorCode"), "message": s("string")})]},
    }},
}

ra = {
    "openapi": "3.1.0",
    "info": {"title": "Kalit Registration Authority API", "version": "1",
             "description": "Issues document-signing certificates for CSRs presented with a one-time enrolment code. The subject "
                            "comes from the RA's record, the profile is fixed. Errors are ApiError bodies with stable codes."},
    "paths": {
        **common_paths,
        "/v1/certificates": {"post": {"summary": "Issue a certificate for a CSR and an enrolment code. A public key already certified "
                                                 "to another subject is refused (refused_by_policy) and the code stays usable.",
                                      "requestBody": body("IssueRequest"),
                                      "responses": {**ok(ref("IssueResponse"), "Issued", "201"), "400": err("invalid_input, invalid_signature"),
                                                    "403": err("refused_by_policy (key certified to another subject)"),
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

cert_info = obj({"subject": s("string"), "issuer": s("string"), "serial": s("string"), "not_before": s("string"),
                  "not_after": s("string"), "sha256": s("string")})
auth = [{"session_token": []}]
sid = [{"name": "id", "in": "path", "required": True, "schema": s("string")}]
agent_errors = {"400": err("invalid_input"), "403": err("refused_by_policy (Origin not allowed, missing Origin on a state-changing call)"),
                "404": err("not_found (unknown session, other origin or wrong token)"), "413": err("too_large"),
                "415": err("invalid_input (body is not application/json)"), "421": err("refused_by_policy (Host is not the agent's own address)"),
                "429": err("rate_limited")}
agent = {
    "openapi": "3.1.0",
    "info": {"title": "Kalit agent API", "version": "1",
             "description": "The local agent (module 1, C_c) on a loopback port, for web pages on origins the person allowed "
                            "(kalit agent allow ORIGIN). Host must be the agent's own address; Origin must be allowed (others get 403 "
                            "and no CORS headers); POST bodies are application/json. Use web/kalit.js rather than calling it by hand."},
    "components": {
        "securitySchemes": {"session_token": {"type": "http", "scheme": "bearer", "description": "The token returned by POST /v1/sessions, valid only for the origin that created the session."}},
        "schemas": {
            **{k: common[k] for k in ("ErrorCode", "ApiError")},
            "CertInfo": cert_info,
            "AgentStatus": obj({"service": s("string"), "version": s("string"), "api": s("integer"), "relay": s("string"),
                                "relay_id": s("string"), "origin_allowed": s("boolean")}),
            "HashRequest": obj({"data": B64("the data"), "alg": s("string", enum=["sha256", "sha384", "sha512"])}, ["data"]),
            "HashResponse": obj({"alg": s("string"), "digest": s("string", "hex")}),
            "SessionRequest": obj({"ttl": s("integer", "QR lifetime in seconds, 1..300 (default 60)")}, []),
            "SessionCreated": obj({"session": s("string"), "token": s("string"), "qr": s("string", "kalit:... QR text"),
                                   "qr_svg": s("string", "the QR as SVG"), "expires_at": s("integer", "Unix ms")}),
            "SessionState": obj({"session": s("string"), "phase": s("string", enum=["waiting", "pairing", "connected", "closed"]),
                                 "sas": s(["string", "null"], "six digits, shown on the phone too"), "login": s(["string", "null"]),
                                 "certificate": {"oneOf": [ref("CertInfo"), {"type": "null"}]},
                                 "error": {"oneOf": [obj({"code": ref("ErrorCode"), "message": s("string")}), {"type": "null"}]}}),
            "SignDocRequest": obj({"data": B64("the document, at most 8 MiB"), "name": s("string", maxLength=200),
                                   "media_type": s("string"), "format": s("string", enum=["raw", "cms"]), "pss": s("boolean")},
                                  ["data", "name"]),
            "SignDocResponse": obj({"format": s("string", enum=["raw", "cms"]), "signature": B64("signature or DER CMS"),
                                    "scheme": s("string"), "sha256": s("string", "of the document, computed by the agent"),
                                    "certificate_pem": s("string", "signer chain, leaf first"), "signer": ref("CertInfo"),
                                    "login": s("string")}),
            "VerifyRequest": obj({"data": B64("the document"), "signature": B64("signature or DER CMS"),
                                  "format": s("string", enum=["raw", "cms"]), "certificate": s("string", "PEM; required for raw")},
                                 ["data", "signature"]),
            "VerifyReport": obj({"valid": s("boolean"), "format": s("string"), "scheme": s(["string", "null"]),
                                 "signer": {"oneOf": [ref("CertInfo"), {"type": "null"}]}, "signing_time": s(["string", "null"]),
                                 "chain": {"oneOf": [obj({"trusted": s("boolean"), "path": {"type": "array", "items": s("string")}}), {"type": "null"}]},
                                 "reason": s(["string", "null"])}),
        }},
    "paths": {
        "/": {"get": {"summary": "The agent's own page: the QR codes of open sessions (for people who started the agent by hand).",
                      "responses": {"200": {"description": "HTML"}}}},
        "/local/sessions": {"get": {"summary": "Data of the local page (same origin only).", "responses": {"200": {"description": "JSON"}}}},
        "/openapi.json": common_paths["/openapi.json"],
        "/v1/status": {"get": {"summary": "Version, relay, and whether the calling origin is allowed.", "responses": {**ok(ref("AgentStatus")), "403": agent_errors["403"]}}},
        "/v1/hash": {"post": {"summary": "Digest of data (SHA-256/384/512; SHA-1 and MD5 refused).", "requestBody": body("HashRequest"),
                              "responses": {**ok(ref("HashResponse")), **agent_errors}}},
        "/v1/sessions": {"post": {"summary": "Start a signing session: show qr_svg (or qr), then poll the session until it is connected and the SAS matches the phone. Starting one ends this origin's previous session.",
                                  "requestBody": body("SessionRequest"),
                                  "responses": {**ok(ref("SessionCreated"), "Created", "201"), **agent_errors, "503": err("unavailable (relay unreachable)")}}},
        "/v1/sessions/{id}": {"get": {"summary": "Phase, SAS, login and certificate of a session.", "security": auth, "parameters": sid,
                                      "responses": {**ok(ref("SessionState")), **agent_errors}},
                              "delete": {"summary": "End a session.", "security": auth, "parameters": sid,
                                         "responses": {"204": {"description": "Ended"}, **agent_errors}}},
        "/v1/sessions/{id}/sign": {"post": {"summary": "Send a document to the phone; waits for approval and returns the signature after checking it against the certificate and the agent's own digest.",
                                            "security": auth, "parameters": sid, "requestBody": body("SignDocRequest"),
                                            "responses": {**ok(ref("SignDocResponse")), **agent_errors, "403": err("declined, refused_by_policy"),
                                                          "409": err("busy (a signature is already waiting)"), "410": err("expired (session not connected or timed out)"),
                                                          "502": err("channel (the encrypted channel failed)"), "503": err("unavailable (relay or phone gone)")}}},
        "/v1/verify": {"post": {"summary": "Verify a raw or CMS signature; with the agent's trust anchors also the chain.", "requestBody": body("VerifyRequest"),
                                "responses": {**ok(ref("VerifyReport")), **agent_errors}}},
    },
}

for path, doc in [("crates/kalit-relay/openapi.json", relay), ("crates/kalit-ra/openapi.json", ra), ("crates/kalit-agent/openapi.json", agent)]:
    with open(os.path.join(ROOT, path), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
