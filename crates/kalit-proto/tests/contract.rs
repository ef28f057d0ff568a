//! The wire contract, generated from the Rust types: the OpenAPI documents of the relay, the RA and the
//! agent (`crates/*/openapi.json`, served at `/openapi.json`) and the generated part of `web/kalit.d.ts`
//! (the agent's error codes and answer types). Schemas come from the types themselves (`schemars`, with
//! their doc comments); the routes are listed here once. The test fails when a committed file differs
//! from what it generates; `KALIT_WRITE_CONTRACT=1 cargo test -p kalit-proto --test contract` rewrites
//! them after an intended change.

#![allow(clippy::unwrap_used)]

use kalit_proto::ErrorCode;
use kalit_proto::{ra, relay, session, verify};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Collects component schemas for a document.
struct Components {
    generator: SchemaGenerator,
}

impl Components {
    fn new() -> Components {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas/".into();
            s.meta_schema = None;
        });
        Components { generator: settings.into_generator() }
    }

    fn add<T: JsonSchema>(&mut self) -> &mut Self {
        self.generator.subschema_for::<T>();
        self
    }

    fn finish(self) -> Value {
        let mut defs: Map<String, Value> = self.generator.definitions().clone().into_iter().collect();
        // The error codes a service sends: every code but `unknown` (the reader's fallback, never sent).
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        defs.insert(
            "ErrorCode".into(),
            json!({"type": "string", "enum": codes, "description": "Stable error codes (kalit-proto ErrorCode); a reader maps a code it does not know to `unknown`."}),
        );
        Value::Object(defs.into_iter().collect())
    }
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": r("ApiError")}}})
}

fn ok(schema: Value, desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": r(name)}}})
}

/// `{"200": ..., plus errors}`.
fn responses(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect())
}

fn common_paths(paths: &mut Map<String, Value>) {
    paths.insert(
        "/healthz".into(),
        json!({"get": {"summary": "Health: the database answers.", "responses": responses(&[("200", ok(r("Health"), "OK")), ("503", err("unavailable"))])}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"summary": "Prometheus metrics (text format), for this machine and the metrics_from addresses only.", "responses": {
            "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "403": err("unauthorized: the client is neither on this machine nor in metrics_from")}}}),
    );
    openapi_path(paths);
}

fn openapi_path(paths: &mut Map<String, Value>) {
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1"}}}}),
    );
}

fn health_schema(defs: &mut Value) {
    defs["Health"] = json!({"type": "object", "additionalProperties": false, "required": ["status", "version", "database"],
        "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "database": {"type": "string", "enum": ["sqlite", "postgres"]}}});
}

fn document(title: &str, description: &str, paths: Map<String, Value>, schemas: Value, extra: Option<Value>) -> Value {
    let mut components = json!({"schemas": schemas});
    if let Some(Value::Object(e)) = extra {
        for (k, v) in e {
            components[k] = v;
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": components,
    })
}

fn relay_doc() -> Value {
    let errors = [
        ("400", err("invalid_input, invalid_signature")),
        ("403", err("untrusted_certificate, unauthorized, refused_by_policy")),
        ("409", err("login_taken, already_exists")),
        ("410", err("expired (nonce unknown, used or expired)")),
        ("413", err("too_large")),
        ("429", err("rate_limited (see Retry-After)")),
        ("500", err("internal")),
        ("503", err("unavailable (database)")),
    ];
    let with = |first: Vec<(&'static str, Value)>| -> Value {
        let mut v: Vec<(&str, Value)> = first;
        v.extend(errors.iter().cloned());
        responses(&v)
    };
    let mut p = Map::new();
    common_paths(&mut p);
    p.insert("/.well-known/kalit-relay".into(), json!({"get": {"summary": "The relay's public identity (attestation key).", "responses": responses(&[("200", ok(r("RelayIdentity"), "OK"))])}}));
    p.insert("/v1/nonce".into(), json!({"post": {"summary": "A fresh single-use nonce.", "responses": responses(&[("200", ok(r("NonceResponse"), "OK")), errors[5].clone(), errors[7].clone()])}}));
    p.insert("/v1/register".into(), json!({"post": {"summary": "Attach a device and certificate to a login (creates the login if it is free).", "requestBody": body("RegisterRequest"), "responses": with(vec![("201", ok(r("RegisterResponse"), "Registered"))])}}));
    p.insert("/v1/devices".into(), json!({"post": {"summary": "List the devices of a login (request signed by one of its devices).", "requestBody": body("DeviceRequest"), "responses": with(vec![("200", ok(r("DeviceList"), "OK"))])}}));
    p.insert("/v1/devices/remove".into(), json!({"post": {"summary": "Remove a device of a login (request signed by one of its devices). A device registered with another certificate needs that certificate's proof over kalit/v1/device-removal (refused_by_policy otherwise).", "requestBody": body("DeviceRequest"), "responses": with(vec![("200", ok(json!({"type": "object", "additionalProperties": false, "required": ["removed"], "properties": {"removed": {"type": "string"}}}), "OK")), ("404", err("not_found"))])}}));
    p.insert("/v1/certificates/detach".into(), json!({"post": {"summary": "Ask that a certificate (target: its fingerprint) leave the login with all its devices after the cooling-off period (action `detach`). Every device of the login sees it in its device list.", "requestBody": body("DeviceRequest"), "responses": with(vec![("200", ok(r("DetachResponse"), "OK")), ("404", err("not_found"))])}}));
    p.insert("/v1/certificates/cancel-detach".into(), json!({"post": {"summary": "Cancel a pending detachment (action `cancel-detach`), from a device of that certificate only.", "requestBody": body("DeviceRequest"), "responses": with(vec![("200", ok(r("DetachResponse"), "OK")), ("404", err("not_found"))])}}));
    p.insert("/v1/tunnel/{id}/wait".into(), json!({"get": {
        "summary": "WebSocket: the agent's end of a blind tunnel (or a web page's, in kalit.js direct mode). The relay sends a TunnelEvent `ready`, then `peer` when a phone joined; after that it forwards binary frames (Noise messages, at most 65535 bytes) and never reads them. A browser's `Origin` header (pages cannot set it) must be one the relay's `direct_origins` allows; the phone then gets the relay's signed statement of that origin (`kalit/v1/origin`) in its `joined` event.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "description": "HKDF(QR secret, kalit/v1/tunnel), 64 hex"}},
                       {"name": "ttl", "in": "query", "required": false, "schema": {"type": "integer", "description": "seconds to wait for a phone (at most 300)"}}],
        "responses": {"101": {"description": "WebSocket; events are TunnelEvent"}, "400": err("invalid_input (also a malformed, repeated or oversized Origin header)"), "403": err("refused_by_policy (Origin null, or not in direct_origins)"), "409": err("already_exists (tunnel id waiting)"), "429": errors[5].1, "503": err("unavailable (too many waiting tunnels)")}}}));
    p.insert("/v1/tunnel/{id}/join".into(), json!({"get": {
        "summary": "WebSocket: the phone's end. With `challenge=1` the relay first sends TunnelEvent `challenge`, a single-use nonce as from POST /v1/nonce. The phone's first text frame: a DeviceRequest with action `tunnel-join` and target the tunnel id, signed over that nonce (or one from POST /v1/nonce); the relay answers TunnelEvent `joined` (first phone wins) or `error`, then forwards binary frames.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                       {"name": "challenge", "in": "query", "required": false, "schema": {"type": "integer", "enum": [0, 1], "description": "1: the relay sends the nonce to sign over as its first event (the phone then needs no POST /v1/nonce)"}}],
        "responses": {"101": {"description": "WebSocket; events are TunnelEvent"}, "400": err("invalid_input (also a challenge other than 0 or 1)"), "429": errors[5].1}}}));
    let mut c = Components::new();
    c.add::<kalit_proto::ApiError>()
        .add::<relay::RelayIdentity>()
        .add::<relay::NonceResponse>()
        .add::<relay::RegisterRequest>()
        .add::<relay::RegisterResponse>()
        .add::<relay::DeviceRequest>()
        .add::<relay::DeviceList>()
        .add::<relay::DetachResponse>()
        .add::<session::TunnelEvent>();
    let mut schemas = c.finish();
    health_schema(&mut schemas);
    document(
        "Kalit relay API",
        "The relay (module 3, the paper's W). Registration: POST /v1/nonce, then POST /v1/register with proofs over domain-separated statements (docs/PROTOCOL.md). Errors are ApiError bodies with stable codes. Generated from the Rust types by crates/kalit-proto/tests/contract.rs.",
        p,
        schemas,
        None,
    )
}

fn ra_doc() -> Value {
    let mut p = Map::new();
    common_paths(&mut p);
    p.insert("/v1/certificates".into(), json!({"post": {
        "summary": "Issue a certificate for a CSR and an enrolment code. A public key already certified to another subject is refused (refused_by_policy) and the code stays usable.",
        "requestBody": body("IssueRequest"),
        "responses": responses(&[("201", ok(r("IssueResponse"), "Issued")), ("400", err("invalid_input, invalid_signature")),
            ("403", err("refused_by_policy (key certified to another subject)")), ("410", err("expired (code unknown, used or expired)")),
            ("413", err("too_large")), ("429", err("rate_limited")), ("500", err("internal"))])}}));
    p.insert("/v1/ca.pem".into(), json!({"get": {"summary": "The CA chain (issuing CA first, root last), PEM.", "responses": {"200": {"description": "PEM", "content": {"application/x-pem-file": {"schema": {"type": "string"}}}}}}}));
    p.insert("/v1/crl".into(), json!({"get": {"summary": "The current CRL of the issuing CA, DER.", "responses": {"200": {"description": "CRL", "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}}}}}}}));
    p.insert("/v1/root.crl".into(), json!({"get": {"summary": "The root CA's CRL, made by `kalit ra init --public-url` (the issuing CA names it as its CRL distribution point), DER.", "responses": {"200": {"description": "CRL", "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}}}}, "404": {"description": "No root CRL was made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}}}}));
    p.insert("/v1/ocsp".into(), json!({"post": {
        "summary": "OCSP (RFC 6960): a DER OCSPRequest in, a DER OCSPResponse out, signed by the issuing CA for the certificates it issued (good, revoked with time and reason, or unknown). A request it cannot read is answered malformedRequest. Certificates issued with --public-url name it (authorityInfoAccess).",
        "requestBody": {"required": true, "content": {"application/ocsp-request": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
            "200": {"description": "OCSPResponse", "content": {"application/ocsp-response": {"schema": {"type": "string", "format": "binary"}}}},
            "400": {"description": "Not sent as application/ocsp-request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}
        }
    }}));
    p.insert("/v1/timestamp".into(), json!({"post": {
        "summary": "RFC 3161 time-stamping: a DER TimeStampReq in, a DER TimeStampResp out (a refusal is a rejection inside a 200 answer, as RFC 3161 3.4 asks). SHA-256, SHA-384 and SHA-512 imprints; the nonce is echoed; the TSA's certificate is included when certReq is set. Rate-limited per address.",
        "requestBody": {"required": true, "content": {"application/timestamp-query": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
            "200": {"description": "TimeStampResp", "content": {"application/timestamp-reply": {"schema": {"type": "string", "format": "binary"}}}},
            "400": {"description": "Not sent as application/timestamp-query", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}},
            "429": {"description": "Too many requests from this address", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}
        }
    }}));
    let mut c = Components::new();
    c.add::<kalit_proto::ApiError>().add::<ra::IssueRequest>().add::<ra::IssueResponse>();
    let mut schemas = c.finish();
    health_schema(&mut schemas);
    document(
        "Kalit Registration Authority API",
        "Issues document-signing certificates for CSRs presented with a one-time enrolment code. The subject comes from the RA's record, the profile is fixed. Errors are ApiError bodies with stable codes. Generated from the Rust types by crates/kalit-proto/tests/contract.rs.",
        p,
        schemas,
        None,
    )
}

fn agent_doc() -> Value {
    let e = [
        ("400", err("invalid_input")),
        ("403", err("refused_by_policy (Origin not allowed, missing Origin on a state-changing call)")),
        ("404", err("not_found (unknown session, other origin or wrong token)")),
        ("413", err("too_large")),
        ("415", err("invalid_input (body is not application/json)")),
        ("421", err("refused_by_policy (Host is not the agent's own address)")),
        ("429", err("rate_limited")),
    ];
    let with = |first: Vec<(&'static str, Value)>, last: Vec<(&'static str, Value)>| -> Value {
        let mut v: Vec<(&str, Value)> = first;
        v.extend(e.iter().cloned());
        for (k, x) in last {
            v.retain(|(kk, _)| *kk != k);
            v.push((k, x));
        }
        responses(&v)
    };
    let auth = json!([{"session_token": []}]);
    let sid = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut p = Map::new();
    p.insert("/".into(), json!({"get": {"summary": "The agent's own page: the QR codes of open sessions (for people who started the agent by hand).", "responses": {"200": {"description": "HTML"}}}}));
    p.insert("/local/sessions".into(), json!({"get": {"summary": "Data of the local page (same origin only).", "responses": {"200": {"description": "JSON"}}}}));
    openapi_path(&mut p);
    p.insert("/v1/status".into(), json!({"get": {"summary": "Version, relay, and whether the calling origin is allowed.", "responses": responses(&[("200", ok(r("AgentStatus"), "OK")), e[1].clone()])}}));
    p.insert("/v1/hash".into(), json!({"post": {"summary": "Digest of data (SHA-256/384/512; SHA-1 and MD5 refused).", "requestBody": body("HashRequest"), "responses": with(vec![("200", ok(r("HashResponse"), "OK"))], vec![])}}));
    p.insert("/v1/sessions".into(), json!({"post": {"summary": "Start a signing session: show qr_svg (or qr), then poll the session until it is connected and the SAS matches the phone. Starting one ends this origin's previous session.", "requestBody": body("SessionRequest"), "responses": with(vec![("201", ok(r("SessionCreated"), "Created"))], vec![("503", err("unavailable (relay unreachable)"))])}}));
    p.insert("/v1/sessions/{id}".into(), json!({
        "get": {"summary": "Phase, SAS, login and certificate of a session.", "security": auth, "parameters": sid, "responses": with(vec![("200", ok(r("SessionState"), "OK"))], vec![])},
        "delete": {"summary": "End a session (a request waiting at the phone is withdrawn first).", "security": auth, "parameters": sid, "responses": with(vec![("204", json!({"description": "Ended"}))], vec![])}}));
    p.insert("/v1/sessions/{id}/sign".into(), json!({"post": {
        "summary": "Send a document to the phone; waits for approval and returns the signature after checking it against the certificate and the agent's own digest. A failure on the phone reaches the page as its own code (declined, wrong_pin, locked, refused_by_policy...).",
        "description": "The document travels as JSON (base64 `data`, at most 8 MiB) or, for any size, as its bytes (`application/octet-stream`, at most 16 GiB) with the other fields of SignDocRequest in the query (`name`, `media_type`, `format`, `pss`, and for pades `level`, `reason`, `visible`). Up to what the paired phone takes whole (`documents.whole` in the session state, 64 MiB by default) it goes to the phone in parts and the phone hashes it itself; a larger CMS or PDF signature is made over the agent's digest, which the phone says it cannot check; a larger raw signature is refused (too_large). While it travels, the session state's `transfer` says how far it got.",
        "security": auth, "parameters": sid,
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": r("SignDocRequest")},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": with(vec![("200", ok(r("SignDocResponse"), "OK"))], vec![
            ("403", err("declined, wrong_pin, locked, refused_by_policy")),
            ("413", err("too_large (a raw signature over more than the phone takes whole; over the agent's ceiling)")),
            ("409", err("busy (a signature is already waiting)")),
            ("410", err("expired (session not connected, timed out, or the request was withdrawn)")),
            ("502", err("channel (the encrypted channel failed)")),
            ("503", err("unavailable (relay or phone gone)"))])}}));
    p.insert("/v1/verify".into(), json!({"post": {"summary": "Verify a raw or CMS signature; with the agent's trust anchors also the chain.", "requestBody": body("VerifyRequest"), "responses": with(vec![("200", ok(r("VerifyReport"), "OK"))], vec![])}}));
    p.insert("/v1/verify/pdf".into(), json!({"post": {"summary": "Verify every signature and document timestamp in a PDF: byte ranges, CMS, the signer's chain against the agent's trust anchors (with the CRLs in the PDF), timestamps, and what later revisions changed.", "requestBody": body("VerifyPdfRequest"), "responses": with(vec![("200", ok(r("PdfVerifyReport"), "OK"))], vec![])}}));
    let mut c = Components::new();
    c.add::<kalit_proto::ApiError>()
        .add::<session::AgentStatus>()
        .add::<session::HashRequest>()
        .add::<session::HashResponse>()
        .add::<session::SessionRequest>()
        .add::<session::SessionCreated>()
        .add::<session::SessionState>()
        .add::<session::SignDocRequest>()
        .add::<session::SignDocResponse>()
        .add::<session::VerifyRequest>()
        .add::<verify::VerifyReport>()
        .add::<session::VerifyPdfRequest>()
        .add::<verify::PdfVerifyReport>();
    document(
        "Kalit agent API",
        "The local agent (module 1, C_c) on a loopback port, for web pages on origins the person allowed (kalit agent allow ORIGIN). Host must be the agent's own address; Origin must be allowed (others get 403 and no CORS headers); POST bodies are application/json. Use web/kalit.js rather than calling it by hand. Generated from the Rust types by crates/kalit-proto/tests/contract.rs.",
        p,
        c.finish(),
        Some(
            json!({"securitySchemes": {"session_token": {"type": "http", "scheme": "bearer", "description": "The token returned by POST /v1/sessions, valid only for the origin that created the session."}}}),
        ),
    )
}

// ---- TypeScript ----

/// A TypeScript type for a JSON Schema (the subset the wire types use).
fn ts(schema: &Value, defs: &Value) -> String {
    if let Some(rf) = schema.get("$ref").and_then(Value::as_str) {
        let name = rf.rsplit('/').next().unwrap();
        // kalit.d.ts's `ErrorCode` also holds kalit.js's own codes; the agent's are `AgentErrorCode`.
        return if name == "ErrorCode" { "AgentErrorCode".into() } else { name.to_string() };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array)
        && all.len() == 1
    {
        return ts(&all[0], defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            return alts.iter().map(|a| ts(a, defs)).collect::<Vec<_>>().join(" | ");
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" | ");
    }
    if let Some(c) = schema.get("const") {
        return c.to_string();
    }
    let one = |t: &str| -> String {
        match t {
            "string" => "string".into(),
            "integer" | "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => format!("{}[]", wrap(&ts(schema.get("items").unwrap_or(&json!({})), defs))),
            "object" => object(schema, defs),
            _ => "unknown".into(),
        }
    };
    match schema.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts_)) => ts_.iter().map(|t| one(t.as_str().unwrap())).collect::<Vec<_>>().join(" | "),
        _ => "unknown".into(),
    }
}

fn wrap(t: &str) -> String {
    if t.contains(' ') { format!("({t})") } else { t.to_string() }
}

fn object(schema: &Value, defs: &Value) -> String {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect());
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return "Record<string, unknown>".into();
    };
    let fields: Vec<String> = props
        .iter()
        .map(|(k, v)| format!("{k}{}: {};", if required.contains(&k.as_str()) { "" } else { "?" }, ts(v, defs)))
        .collect();
    format!("{{ {} }}", fields.join(" "))
}

const TS_BEGIN: &str =
    "// ---- generated from kalit-proto by crates/kalit-proto/tests/contract.rs: do not edit by hand ----";
const TS_END: &str = "// ---- end of generated ----";

fn ts_block(agent: &Value) -> String {
    let defs = &agent["components"]["schemas"];
    let mut out = vec![TS_BEGIN.to_string()];
    out.push("/** The agent's stable error codes (a failure on the phone reaches the page as its own code). */".into());
    let codes: Vec<String> = ErrorCode::ALL.iter().map(|c| format!("\"{}\"", c.as_str())).collect();
    let mut line = String::from("export type AgentErrorCode =");
    for c in codes {
        if line.len() + c.len() > 110 {
            out.push(line);
            line = String::from(" ");
        }
        line.push_str(&format!(" {c} |"));
    }
    out.push(line.trim_end_matches(" |").to_string() + ";");
    // Every type of the agent's API, as the wire carries it (snake_case fields).
    for (name, s) in defs.as_object().unwrap() {
        if name == "ErrorCode" {
            continue;
        }
        if let Some(d) = s.get("description").and_then(Value::as_str) {
            out.push(format!("/** {} */", d.replace('\n', " ")));
        }
        if s.get("properties").is_some() {
            out.push(format!("export interface {name} {}", object(s, defs)));
        } else {
            out.push(format!("export type {name} = {};", ts(s, defs)));
        }
    }
    out.push(TS_END.to_string());
    out.join("\n")
}

fn check(rel: &str, generated: &str) {
    let path = root().join(rel);
    if std::env::var_os("KALIT_WRITE_CONTRACT").is_some() {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, generated).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "{rel} differs from what the Rust types generate: run KALIT_WRITE_CONTRACT=1 cargo test -p kalit-proto --test contract"
    );
}

#[test]
fn openapi_documents_and_typescript_declarations_are_generated_from_the_types() {
    let docs = [
        ("crates/kalit-relay/openapi.json", relay_doc()),
        ("crates/kalit-ra/openapi.json", ra_doc()),
        ("crates/kalit-agent/openapi.json", agent_doc()),
    ];
    for (rel, doc) in &docs {
        // Every $ref resolves.
        let text = serde_json::to_string(doc).unwrap();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{rel}: {name} is referenced but not defined");
        }
        check(rel, &(serde_json::to_string_pretty(doc).unwrap() + "\n"));
    }
    // kalit.d.ts: the generated block between its markers; the rest is written by hand.
    let path = root().join("web/kalit.d.ts");
    let current = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = current.split_once(TS_BEGIN).expect("web/kalit.d.ts has the generated block's start marker");
    let (_, after) = rest.split_once(TS_END).expect("web/kalit.d.ts has the generated block's end marker");
    check("web/kalit.d.ts", &format!("{before}{}{after}", ts_block(&docs[2].1)));
}
