//! Proxy mode's client for the hospital's FHIR R4 server: HTTPS (or HTTP on loopback), authenticated as a
//! SMART Backend Services client or with a static bearer token, searches followed page by page, and every
//! failure (a timeout, a 5xx, an answer that is not FHIR) a clear error rather than a hang.
//!
//! A SMART client signs a short-lived assertion (`private_key_jwt`, ES384 or RS384) for each token
//! request, `client_credentials` grant, and keeps the token until shortly before it expires. Credentials
//! are only ever sent to the upstream's own origin: a `next` link to another host is refused.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use data_encoding::BASE64URL_NOPAD;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::fhir;
use crate::records::RecordsError;

/// The longest one upstream request may take, connection to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a whole search (every page) may take.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest upstream response the gateway reads.
const MAX_UPSTREAM_BYTES: usize = 32 * 1024 * 1024;
/// Pages one search follows at most.
const MAX_PAGES: usize = 50;
/// Resources asked for per page unless configured.
pub const DEFAULT_PAGE_SIZE: usize = 200;
/// A token is renewed this long before the upstream said it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// How long an assertion is valid: SMART asks for at most five minutes.
const ASSERTION_SECONDS: i64 = 240;
/// The scopes asked for unless configured: read and search of every resource type.
pub const DEFAULT_SCOPE: &str = "system/*.rs";
/// The most resource types taken from the upstream's CapabilityStatement.
const MAX_TYPES: usize = 256;

/// How the gateway proves itself to the upstream.
#[derive(Default)]
pub enum Auth {
    /// No credentials (an upstream that trusts its network).
    #[default]
    None,
    /// A token issued out of band, sent as `Authorization: Bearer`.
    Bearer(Zeroizing<String>),
    /// SMART Backend Services.
    Smart(Box<SmartClient>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(..)",
            Auth::Smart(_) => "Auth::Smart(..)",
        })
    }
}

/// The private key a SMART client signs its assertions with.
pub enum AssertionKey {
    Es384(EcdsaKeyPair),
    Rs384(RsaKeyPair),
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssertionKey({})", self.alg())
    }
}

impl AssertionKey {
    /// A PEM private key: PKCS#8 (EC P-384 or RSA) or PKCS#1 (RSA).
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("not a PEM private key: {e}"))?;
        let rng = ring::rand::SystemRandom::new();
        match der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                let bytes = pkcs8.secret_pkcs8_der();
                if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, bytes, &rng) {
                    return Ok(Self::Es384(ec));
                }
                RsaKeyPair::from_pkcs8(bytes)
                    .map(Self::Rs384)
                    .map_err(|e| format!("neither an EC P-384 nor an RSA key ({e})"))
            }
            PrivateKeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1.secret_pkcs1_der())
                .map(Self::Rs384)
                .map_err(|e| format!("not a usable RSA key ({e})")),
            _ => Err("an EC key must be PKCS#8 (BEGIN PRIVATE KEY), on curve P-384".into()),
        }
    }

    /// A new EC P-384 key, as PKCS#8 PEM.
    pub fn generate_es384_pem() -> Result<Zeroizing<String>, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(|_| "could not make a key".to_owned())?;
        let body = data_encoding::BASE64.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(Zeroizing::new(pem))
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es384(_) => "ES384",
            Self::Rs384(_) => "RS384",
        }
    }

    /// The public key's members, in the lexicographic order RFC 7638 thumbprints use.
    fn public_members(&self) -> Value {
        match self {
            Self::Es384(k) => {
                // An uncompressed point: 0x04, then x and y.
                let point = k.public_key().as_ref();
                let (x, y) = point.get(1..).unwrap_or_default().split_at(point.len().saturating_sub(1) / 2);
                json!({"crv": "P-384", "kty": "EC", "x": BASE64URL_NOPAD.encode(x), "y": BASE64URL_NOPAD.encode(y)})
            }
            Self::Rs384(k) => {
                let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"e": BASE64URL_NOPAD.encode(&parts.e), "kty": "RSA", "n": BASE64URL_NOPAD.encode(&parts.n)})
            }
        }
    }

    /// The RFC 7638 thumbprint of the public key, the default `kid`.
    pub fn thumbprint(&self) -> String {
        BASE64URL_NOPAD.encode(&Sha256::digest(self.public_members().to_string().as_bytes()))
    }

    /// The public key as a JWK Set, to register with the upstream's authorization server.
    pub fn jwks(&self, kid: &str) -> Value {
        let mut jwk = self.public_members();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(self.alg());
        jwk["use"] = json!("sig");
        jwk["key_ops"] = json!(["verify"]);
        json!({ "keys": [jwk] })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            Self::Es384(k) => k.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| "signing failed".into()),
            Self::Rs384(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA384, &rng, message, &mut sig).map_err(|_| "signing failed")?;
                Ok(sig)
            }
        }
    }
}

/// A SMART Backend Services client: who it is, where it gets tokens, and the token it holds.
pub struct SmartClient {
    pub client_id: String,
    pub token_url: reqwest::Url,
    pub key: AssertionKey,
    pub kid: String,
    pub scope: String,
    token: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl std::fmt::Debug for SmartClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartClient")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url.as_str())
            .field("kid", &self.kid)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl SmartClient {
    pub fn new(
        client_id: &str,
        token_url: &str,
        key: AssertionKey,
        kid: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Self, String> {
        let token_url = reqwest::Url::parse(token_url).map_err(|_| format!("{token_url:?} is not a URL"))?;
        custodia_net::client::check_url(&token_url).map_err(|e| format!("{token_url}: {e}"))?;
        if client_id.is_empty() || client_id.len() > 256 || client_id.chars().any(char::is_control) {
            return Err("the client id must be 1 to 256 printable characters".into());
        }
        let kid = kid.map_or_else(|| key.thumbprint(), str::to_owned);
        Ok(Self {
            client_id: client_id.to_owned(),
            token_url,
            key,
            kid,
            scope: scope.unwrap_or(DEFAULT_SCOPE).to_owned(),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The signed client assertion (a JWT) for one token request.
    pub fn assertion(&self, now: i64) -> Result<String, String> {
        let header = json!({"alg": self.key.alg(), "kid": self.kid, "typ": "JWT"});
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url.as_str(),
            "exp": now + ASSERTION_SECONDS,
            "iat": now,
            "jti": custodia_core::entry::EntryNonce::generate().to_string(),
        });
        let signing_input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let sig = self.key.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&sig)))
    }

    /// A token, from the cache while it is good, else from the token endpoint.
    async fn token(&self, http: &reqwest::Client) -> Result<Zeroizing<String>, RecordsError> {
        let mut held = self.token.lock().await;
        if let Some((token, until)) = held.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let assertion = self.assertion(crate::now().unix()).map_err(RecordsError::Auth)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            .append_pair("client_assertion", &assertion)
            .finish();
        let response = http
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let answer: Value =
            read_json(response).await.map_err(|e| RecordsError::Auth(format!("the token endpoint: {e}")))?;
        if status != 200 {
            let text = |k: &str| {
                answer.get(k).and_then(Value::as_str).unwrap_or_default().chars().take(300).collect::<String>()
            };
            return Err(RecordsError::Auth(format!(
                "the token endpoint refused the gateway ({status}): {} {}",
                text("error"),
                text("error_description")
            )));
        }
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
            .ok_or_else(|| RecordsError::Auth("the token endpoint's answer has no access_token".into()))?;
        if !answer.get("token_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
            return Err(RecordsError::Auth("the token endpoint did not issue a bearer token".into()));
        }
        let lifetime = answer.get("expires_in").and_then(Value::as_u64).unwrap_or(300).min(86_400);
        let until =
            Instant::now() + Duration::from_secs(lifetime).saturating_sub(TOKEN_MARGIN).max(Duration::from_secs(5));
        let token = Zeroizing::new(token.to_owned());
        *held = Some((token.clone(), until));
        Ok(token)
    }

    async fn forget(&self) {
        *self.token.lock().await = None;
    }
}

/// The hospital's FHIR server, as proxy mode reaches it.
#[derive(Debug)]
pub struct Upstream {
    base: reqwest::Url,
    http: reqwest::Client,
    auth: Auth,
    /// The types its CapabilityStatement lists, once read.
    types: RwLock<Vec<String>>,
    /// `_count` asked of each search page (a server may cap it lower; `next` links carry on).
    page_size: usize,
}

fn unreachable(e: &reqwest::Error) -> RecordsError {
    if e.is_timeout() { RecordsError::Timeout } else { RecordsError::Unreachable(custodia_net::client::explain(e)) }
}

/// The body as JSON, read up to the cap.
async fn read_json(mut response: reqwest::Response) -> Result<Value, RecordsError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
        if body.len() + chunk.len() > MAX_UPSTREAM_BYTES {
            return Err(RecordsError::NotFhir(format!("a response over {} MiB", MAX_UPSTREAM_BYTES >> 20)));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| RecordsError::NotFhir(format!("not JSON ({e})")))
}

impl Upstream {
    /// The FHIR server at `base`: `https://` (verified with the process's trust, `--ca-file` included), or
    /// `http://` on loopback only.
    pub fn new(base: &str, auth: Auth) -> Result<Self, RecordsError> {
        let trimmed = format!("{}/", base.trim_end_matches('/'));
        let url = reqwest::Url::parse(&trimmed).map_err(|_| RecordsError::BadUrl(format!("{base:?} is not a URL")))?;
        custodia_net::client::check_url(&url).map_err(|e| RecordsError::BadUrl(format!("{base}: {e}")))?;
        let trust = custodia_net::Trust::global().map_err(|e| RecordsError::Unreachable(e.to_string()))?;
        let http = trust
            .async_client()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RecordsError::Unreachable(custodia_net::client::explain(&e)))?;
        Ok(Self { base: url, http, auth, types: RwLock::new(Vec::new()), page_size: DEFAULT_PAGE_SIZE })
    }

    /// Asks for `size` resources per search page (1 to 1,000).
    pub fn with_page_size(mut self, size: usize) -> Self {
        self.page_size = size.clamp(1, 1000);
        self
    }

    /// The base URL, without its trailing slash.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Reads the upstream's CapabilityStatement (and so, with SMART, gets a first token): the resource
    /// types it reads or searches become the types the gateway offers.
    pub async fn connect(&self) -> Result<Vec<String>, RecordsError> {
        let url = self.base.join("metadata").map_err(|e| RecordsError::BadUrl(e.to_string()))?;
        let statement = self.get(&url).await?.ok_or(RecordsError::Status { status: 404 })?;
        let types = capability_types(&statement)?;
        if let Ok(mut held) = self.types.write() {
            held.clone_from(&types);
        }
        Ok(types)
    }

    pub fn resource_types(&self) -> Vec<String> {
        self.types.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Whether its CapabilityStatement lists `resource_type` (asked on every request: no copy).
    pub fn serves(&self, resource_type: &str) -> bool {
        self.types.read().is_ok_and(|t| t.binary_search_by(|held| held.as_str().cmp(resource_type)).is_ok())
    }

    /// `GET url` as JSON; `None` for 404 and 410. Credentials go only to the upstream's own origin.
    pub async fn get(&self, url: &reqwest::Url) -> Result<Option<Value>, RecordsError> {
        if url.origin() != self.base.origin() {
            return Err(RecordsError::NotFhir(format!(
                "a link to another server ({})",
                url.origin().ascii_serialization()
            )));
        }
        let mut retried = false;
        loop {
            let mut request = self.http.get(url.clone()).header("accept", fhir::FHIR_JSON);
            match &self.auth {
                Auth::None => {}
                Auth::Bearer(token) => request = request.bearer_auth(token.as_str()),
                Auth::Smart(client) => request = request.bearer_auth(client.token(&self.http).await?.as_str()),
            }
            let response = request.send().await.map_err(|e| unreachable(&e))?;
            let status = response.status().as_u16();
            match status {
                200 => return read_json(response).await.map(Some),
                404 | 410 => return Ok(None),
                // A token revoked or expired early: one fresh token, one more try.
                401 if !retried && matches!(self.auth, Auth::Smart(_)) => {
                    if let Auth::Smart(client) = &self.auth {
                        client.forget().await;
                    }
                    retried = true;
                }
                401 | 403 => {
                    return Err(RecordsError::Auth(format!(
                        "the upstream refused the gateway's credentials ({status})"
                    )));
                }
                _ => return Err(RecordsError::Status { status }),
            }
        }
    }

    /// A search, every page followed (by its `next` links) until `cap` resources or [`MAX_PAGES`]: the
    /// matching resources of every page, with the page size asked of the upstream.
    pub async fn search(&self, mut url: reqwest::Url, cap: usize) -> Result<Vec<Value>, RecordsError> {
        url.query_pairs_mut().append_pair("_count", &self.page_size.min(cap).to_string());
        let pages = async {
            let mut found = Vec::new();
            let mut next = Some(url);
            let mut pages = 0;
            while let Some(url) = next.take() {
                pages += 1;
                let bundle = self.get(&url).await?.unwrap_or(Value::Null);
                if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                    return Err(RecordsError::NotFhir("a search did not return a Bundle".into()));
                }
                let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                // Only matches: a server may add included or outcome entries.
                found.extend(
                    entries
                        .iter()
                        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str).is_none_or(|m| m == "match"))
                        .filter_map(|e| e.get("resource").cloned()),
                );
                if found.len() >= cap || pages >= MAX_PAGES {
                    found.truncate(cap);
                    break;
                }
                next = next_link(&bundle)
                    .map(|n| self.base.join(n))
                    .transpose()
                    .map_err(|e| RecordsError::NotFhir(format!("a bad next link ({e})")))?;
            }
            Ok(found)
        };
        tokio::time::timeout(SEARCH_TIMEOUT, pages).await.map_err(|_| RecordsError::Timeout)?
    }

    /// The URL of a resource type's search or a resource (`type` or `type/id`), on this upstream.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, RecordsError> {
        self.base.join(path).map_err(|e| RecordsError::BadUrl(e.to_string()))
    }
}

/// A shared handle, cheap to clone.
pub type SharedUpstream = Arc<Upstream>;

fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
}

/// The resource types a CapabilityStatement's server part lets a client read or search.
pub fn capability_types(statement: &Value) -> Result<Vec<String>, RecordsError> {
    if statement.get("resourceType").and_then(Value::as_str) != Some("CapabilityStatement") {
        return Err(RecordsError::NotFhir("the metadata is not a CapabilityStatement".into()));
    }
    let mut types: Vec<String> = statement
        .get("rest")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|rest| rest.get("mode").and_then(Value::as_str) == Some("server"))
        .filter_map(|rest| rest.get("resource").and_then(Value::as_array))
        .flatten()
        .filter(|r| {
            r.get("interaction").and_then(Value::as_array).is_none_or(|list| {
                list.iter().any(|i| matches!(i.get("code").and_then(Value::as_str), Some("read" | "search-type")))
            })
        })
        .filter_map(|r| r.get("type").and_then(Value::as_str))
        .filter(|t| {
            t.len() <= 64
                && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .map(str::to_owned)
        .collect();
    types.sort_unstable();
    types.dedup();
    types.truncate(MAX_TYPES);
    if types.is_empty() {
        return Err(RecordsError::NotFhir("the CapabilityStatement offers no resource type to read".into()));
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_assertion_is_a_jwt_the_public_key_verifies() {
        let pem = AssertionKey::generate_es384_pem().unwrap();
        let key = AssertionKey::from_pem(pem.as_bytes()).unwrap();
        let public = match &key {
            AssertionKey::Es384(k) => k.public_key().as_ref().to_vec(),
            AssertionKey::Rs384(_) => panic!("an EC key"),
        };
        let client = SmartClient::new("gateway-1", "https://auth.example/token", key, None, None).unwrap();
        let jwt = client.assertion(1_800_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[0].as_bytes()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES384");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], client.key.thumbprint().as_str());
        let claims: Value = serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        assert_eq!(claims["iss"], "gateway-1");
        assert_eq!(claims["sub"], "gateway-1");
        assert_eq!(claims["aud"], "https://auth.example/token");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), ASSERTION_SECONDS);
        let sig = BASE64URL_NOPAD.decode(parts[2].as_bytes()).unwrap();
        assert_eq!(sig.len(), 96, "JWS ECDSA signatures are r || s");
        let verifier = signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, public);
        verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        let jwks = client.key.jwks(&client.kid);
        assert_eq!(jwks["keys"][0]["crv"], "P-384");
        assert_eq!(BASE64URL_NOPAD.decode(jwks["keys"][0]["x"].as_str().unwrap().as_bytes()).unwrap().len(), 48);
    }

    /// An RSA key made for this test only (by `openssl genpkey`), as PKCS#8 and as PKCS#1: each signs RS384
    /// assertions its published JWK verifies.
    #[test]
    fn rs384_assertions_verify_with_the_published_rsa_key() {
        for pem in [
            include_str!("../tests/data/rs384-test-only-key.pem"),
            include_str!("../tests/data/rs384-test-only-key-pkcs1.pem"),
        ] {
            let key = AssertionKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.alg(), "RS384");
            let jwks = key.jwks("k1");
            let member = |m: &str| BASE64URL_NOPAD.decode(jwks["keys"][0][m].as_str().unwrap().as_bytes()).unwrap();
            let (n, e) = (member("n"), member("e"));
            assert_eq!(n.len(), 256, "a 2048-bit modulus");
            let client = SmartClient::new("gateway-1", "https://auth.example/token", key, Some("k1"), None).unwrap();
            let jwt = client.assertion(1_800_000_000).unwrap();
            let parts: Vec<&str> = jwt.split('.').collect();
            let header: Value = serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[0].as_bytes()).unwrap()).unwrap();
            assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("RS384"), Some("k1")));
            let sig = BASE64URL_NOPAD.decode(parts[2].as_bytes()).unwrap();
            let public = ring::rsa::PublicKeyComponents { n: &n, e: &e };
            let message = format!("{}.{}", parts[0], parts[1]);
            public.verify(&signature::RSA_PKCS1_2048_8192_SHA384, message.as_bytes(), &sig).unwrap();
        }
        assert!(AssertionKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(AssertionKey::from_pem(b"not a key").is_err());
    }

    /// RFC 7638 section 3.1's example key and its thumbprint.
    #[test]
    fn thumbprints_follow_rfc_7638() {
        let members = json!({
            "e": "AQAB",
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            BASE64URL_NOPAD.encode(&Sha256::digest(members.to_string().as_bytes())),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn the_capability_statement_names_the_types_offered() {
        let statement = json!({
            "resourceType": "CapabilityStatement",
            "rest": [{
                "mode": "server",
                "resource": [
                    {"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]},
                    {"type": "Observation", "interaction": [{"code": "search-type"}]},
                    {"type": "Binary", "interaction": [{"code": "create"}]},
                    {"type": "bad type"},
                    {"type": "Condition"}
                ]
            }, {"mode": "client", "resource": [{"type": "Device"}]}]
        });
        assert_eq!(capability_types(&statement).unwrap(), ["Condition", "Observation", "Patient"]);
        assert!(capability_types(&json!({"resourceType": "Bundle"})).is_err());
        assert!(capability_types(&json!({"resourceType": "CapabilityStatement", "rest": []})).is_err());
    }
}
