//! A stand-in for a hospital's FHIR server behind SMART Backend Services, for proxy-mode tests: the
//! synthetic dataset (a CapabilityStatement, searches in pages of two linked by `next`), a token endpoint
//! that issues tokens for a valid ES384 assertion from the registered client, bearer tokens checked on
//! every request (an issued one, or a static one), and three misbehaving types: Immunization never answers
//! in time, MedicationRequest fails with a 500, DiagnosticReport answers HTML.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::post;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use serde_json::{Value, json};

pub struct StandIn {
    /// The registered client's public key, an uncompressed P-384 point.
    public_key: Vec<u8>,
    pub client_id: String,
    pub origin: String,
    pub token_url: String,
    pub tokens_issued: AtomicU32,
    /// The token last issued; `revoke` makes the upstream forget it.
    valid_token: Mutex<String>,
    static_token: Option<String>,
}

impl StandIn {
    /// Serves on a loopback port, on `runtime`, for the client `client_id` whose public JWK Set is `jwks`;
    /// `static_token` is accepted too, if given.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        jwks: &Value,
        client_id: &str,
        static_token: Option<&str>,
    ) -> Arc<Self> {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let coordinate =
            |c: &str| data_encoding::BASE64URL_NOPAD.decode(jwks["keys"][0][c].as_str().unwrap().as_bytes()).unwrap();
        let stand_in = Arc::new(StandIn {
            public_key: [vec![4], coordinate("x"), coordinate("y")].concat(),
            client_id: client_id.to_owned(),
            token_url: format!("{origin}/token"),
            origin,
            tokens_issued: AtomicU32::new(0),
            valid_token: Mutex::new("none yet".into()),
            static_token: static_token.map(str::to_owned),
        });
        let fhir = custodia_gateway::unchecked_router(Records::Local(Arc::new(Dataset::synthetic())))
            .layer(axum::middleware::from_fn_with_state(stand_in.clone(), guard));
        let app = axum::Router::new().route("/token", post(token)).with_state(stand_in.clone()).merge(fhir);
        runtime.spawn(async move { axum::serve(listener, app).await });
        stand_in
    }

    pub fn fhir_base(&self) -> String {
        format!("{}/fhir", self.origin)
    }

    pub fn issued(&self) -> u32 {
        self.tokens_issued.load(Ordering::SeqCst)
    }

    /// The upstream forgets the token it issued (as when it restarts or revokes it).
    pub fn revoke(&self) {
        *self.valid_token.lock().unwrap() = "revoked".into();
    }
}

async fn token(State(st): State<Arc<StandIn>>, body: String) -> axum::response::Response {
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
    let decode = |p: &str| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).unwrap_or_default();
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, &st.public_key);
    if parts.len() != 3 || key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &decode(parts[2])).is_err() {
        return refuse("the assertion's signature does not verify");
    }
    let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap_or_default();
    if claims["iss"] != st.client_id.as_str()
        || claims["sub"] != st.client_id.as_str()
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
    let bearer = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let issued = format!("Bearer {}", st.valid_token.lock().unwrap());
    let fixed = st.static_token.as_ref().map(|t| format!("Bearer {t}"));
    if bearer.is_none() || (bearer != Some(issued) && bearer != fixed) {
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
