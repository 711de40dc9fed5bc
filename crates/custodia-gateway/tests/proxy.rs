//! Proxy mode: the gateway in front of another FHIR server applies the same rules as over its own data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::routing::post;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_gateway::upstream::{AssertionKey, Auth, SmartClient};
use custodia_wallet::fhir_client::GatewayClient;
use serde_json::{Value, json};
use setup::{Network, now};

fn ids(bundle: &Value) -> Vec<&str> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn a_proxy_filters_an_upstream_servers_records_as_it_does_its_own() {
    let mut net = Network::start();
    let upstream = net.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let upstream_url = format!("http://{}/fhir", upstream.local_addr().unwrap());
    let app = custodia_gateway::unchecked_router(Records::Local(Arc::new(Dataset::synthetic())));
    net.rt.spawn(async move { axum::serve(upstream, app).await });
    let gateway = net.start_gateway(Records::upstream(&upstream_url, Auth::None).unwrap(), "proxy");
    let grant = net.grant(&["patient/DocumentReference.rs", "patient/AllergyIntolerance.rs"], 3600);
    let client = GatewayClient::new(&gateway.url).unwrap();
    let get = |path: &str| client.get(path, &grant, net.clinician.identity(), None, None, now()).unwrap();

    let notes = get("/fhir/DocumentReference?patient=p1");
    assert_eq!(notes.status, 200, "{}", notes.body);
    assert_eq!(ids(&notes.body), vec!["p1-visit-note"], "the PSY note is withheld: {}", notes.body);
    assert_eq!(notes.body["total"], 1);
    assert_eq!(get("/fhir/DocumentReference/p1-visit-note").status, 200);
    let psy = get("/fhir/DocumentReference/p1-psy-note");
    let absent = get("/fhir/DocumentReference/p1-nothing");
    assert_eq!((psy.status, absent.status), (403, 403));
    assert_eq!(psy.body, absent.body, "withheld and absent look the same");
    // Another patient's record, even by id, is not this grant's.
    assert_eq!(get("/fhir/AllergyIntolerance/p2-allergy-1").status, 403);
    assert_eq!(get("/fhir/AllergyIntolerance?patient=p2").status, 403);
    assert_eq!(get("/fhir/MedicationRequest?patient=p1").status, 403, "a type the grant does not name");
    net.rt.block_on(gateway.shutdown()).unwrap();
}

/// A stand-in for a hospital's FHIR server behind SMART Backend Services: tokens for a valid ES384
/// assertion from the registered client; searches in pages of two; and three misbehaving types.
struct StandIn {
    public_key: Vec<u8>,
    token_url: String,
    tokens_issued: AtomicU32,
    valid_token: Mutex<String>,
}

async fn token(State(st): State<Arc<StandIn>>, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let refuse = |why: &str| {
        (axum::http::StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_description": why})))
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return refuse("not a SMART backend services request");
    }
    let jwt = form.get("client_assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |p: &str| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).unwrap();
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, &st.public_key);
    if parts.len() != 3 || key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &decode(parts[2])).is_err() {
        return refuse("the assertion's signature does not verify");
    }
    let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
    if claims["iss"] != "custodia-gateway"
        || claims["sub"] != "custodia-gateway"
        || claims["aud"] != st.token_url.as_str()
    {
        return refuse("the assertion is not from the registered client for this endpoint");
    }
    let n = st.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let issued = format!("tok-{n}");
    *st.valid_token.lock().unwrap() = issued.clone();
    Json(json!({"access_token": issued, "token_type": "bearer", "expires_in": 300, "scope": "system/*.rs"}))
        .into_response()
}

async fn guard(State(st): State<Arc<StandIn>>, mut request: Request, next: Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let bearer = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if bearer != Some(format!("Bearer {}", st.valid_token.lock().unwrap())) {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    match request.uri().path() {
        "/fhir/Immunization" => tokio::time::sleep(Duration::from_secs(30)).await,
        "/fhir/MedicationRequest" => {
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response();
        }
        "/fhir/DiagnosticReport" => return ([("content-type", "text/html")], "<html>Sign in</html>").into_response(),
        _ => {}
    }
    // Pages of two, whatever the gateway asked for.
    if let Some(query) = request.uri().query() {
        let paged: Vec<String> = query
            .split('&')
            .map(|p| if p.starts_with("_count=") { "_count=2".to_owned() } else { p.to_owned() })
            .collect();
        let uri = format!("{}?{}", request.uri().path(), paged.join("&"));
        *request.uri_mut() = uri.parse().unwrap();
    }
    next.run(request).await
}

#[test]
fn a_proxy_authenticates_as_a_smart_backend_client_follows_pages_and_survives_a_bad_upstream() {
    let mut net = Network::start();
    let listener = net.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let pem = AssertionKey::generate_es384_pem().unwrap();
    let jwks = AssertionKey::from_pem(pem.as_bytes()).unwrap().jwks("k1");
    let coordinate =
        |c: &str| data_encoding::BASE64URL_NOPAD.decode(jwks["keys"][0][c].as_str().unwrap().as_bytes()).unwrap();
    let public_key = [vec![4], coordinate("x"), coordinate("y")].concat();
    let st = Arc::new(StandIn {
        public_key,
        token_url: format!("{origin}/token"),
        tokens_issued: AtomicU32::new(0),
        valid_token: Mutex::new("none yet".into()),
    });
    let fhir = custodia_gateway::unchecked_router(Records::Local(Arc::new(Dataset::synthetic())))
        .layer(axum::middleware::from_fn_with_state(st.clone(), guard));
    let app = axum::Router::new().route("/token", post(token)).with_state(st.clone()).merge(fhir);
    net.rt.spawn(async move { axum::serve(listener, app).await });

    // Without credentials the upstream refuses, and the gateway does not start.
    let anonymous = Records::upstream(&format!("{origin}/fhir"), Auth::None).unwrap();
    let refused = net.rt.block_on(anonymous.prepare()).unwrap_err();
    assert!(refused.to_string().contains("credentials"), "{refused}");

    let key = AssertionKey::from_pem(pem.as_bytes()).unwrap();
    let client = SmartClient::new("custodia-gateway", &st.token_url, key, Some("k1"), None).unwrap();
    let records = Records::upstream(&format!("{origin}/fhir"), Auth::Smart(Box::new(client))).unwrap();
    let gateway = net.start_gateway(records, "smart");
    let scopes = [
        "patient/Observation.rs",
        "patient/Condition.rs",
        "patient/Immunization.rs",
        "patient/MedicationRequest.rs",
        "patient/DiagnosticReport.rs",
    ];
    let grant = net.grant(&scopes, 3600);
    let reader = GatewayClient::new(&gateway.url).unwrap();
    let get = |path: &str| reader.get(path, &grant, net.clinician.identity(), None, None, now()).unwrap();

    // Every page: the synthetic patient has nine observations, here in pages of two (one withheld by its label).
    let observations = get("/fhir/Observation?patient=p1");
    assert_eq!(observations.status, 200, "{}", observations.body);
    let ids = ids(&observations.body);
    assert_eq!(ids.len(), 8, "all pages but the HIV result: {ids:?}");
    assert!(!ids.contains(&"p1-hiv-result"));
    assert_eq!(get("/fhir/Condition?patient=p1").status, 200);
    assert_eq!(st.tokens_issued.load(Ordering::SeqCst), 1, "one token serves every request until it expires");

    // The upstream drops the token: the gateway gets a new one and the read goes through.
    *st.valid_token.lock().unwrap() = "revoked".into();
    assert_eq!(get("/fhir/Condition?patient=p1").status, 200);
    assert_eq!(st.tokens_issued.load(Ordering::SeqCst), 2);

    // A slow, a failing and a non-FHIR upstream: each a clear OperationOutcome and an access event.
    let journaled = || gateway.shared.outbox.stats.journaled.load(Ordering::SeqCst);
    let before = journaled();
    let started = std::time::Instant::now();
    let slow = get("/fhir/Immunization?patient=p1");
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(started.elapsed() < Duration::from_secs(15), "the gateway gives up after its timeout");
    let failing = get("/fhir/MedicationRequest?patient=p1");
    assert_eq!(failing.status, 502);
    assert!(failing.body["issue"][0]["diagnostics"].as_str().unwrap().contains("500"), "{}", failing.body);
    let html = get("/fhir/DiagnosticReport?patient=p1");
    assert_eq!(html.status, 502);
    assert_eq!(html.body["resourceType"], "OperationOutcome");
    assert!(html.body["issue"][0]["diagnostics"].as_str().unwrap().contains("not FHIR"), "{}", html.body);
    assert_eq!(journaled() - before, 3, "each failed read is an access event");
    // A type the upstream's CapabilityStatement does not list is not offered.
    assert_eq!(get("/fhir/Medication?patient=p1").status, 404);
    net.rt.block_on(gateway.shutdown()).unwrap();
}
