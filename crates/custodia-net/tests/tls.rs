#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! A real TLS server on loopback and real clients: what is refused, why, and a certificate renewed in place.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use custodia_net::client::explain;
use custodia_net::server::{Listener, RELOAD_INTERVAL, ServerTls};
use custodia_net::test_ca::{TestCa, Validity};
use custodia_net::{TlsFiles, Trust};

async fn serve(tls: Option<&TlsFiles>) -> SocketAddr {
    let tls = tls.map(|files| ServerTls::new(files).unwrap());
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), tls).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn get(trust: &Trust, url: &str) -> Result<reqwest::Response, String> {
    let client = trust.async_client().timeout(Duration::from_secs(10)).build().unwrap();
    client.get(url).send().await.map_err(|e| explain(&e))
}

struct Setup {
    dir: tempfile::TempDir,
    ca: TestCa,
    trusting: Trust,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Custodia test CA");
    let trusting = Trust::new(Some(&ca.write_ca(dir.path()))).unwrap();
    Setup { dir, ca, trusting }
}

#[tokio::test]
async fn a_certificate_from_the_given_ca_is_accepted_and_http2_is_offered() {
    let s = setup();
    let files = s.ca.write_server(s.dir.path(), "server", &["localhost", "127.0.0.1"], Validity::Current);
    let addr = serve(Some(&files)).await;
    for host in ["localhost", "127.0.0.1"] {
        let response = get(&s.trusting, &format!("https://{host}:{}/", addr.port())).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    // A client that asks for HTTP/2 (a browser) gets it.
    let mut config = (*s.trusting.client_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn each_refusal_says_which_check_failed() {
    let s = setup();
    let good = s.ca.write_server(s.dir.path(), "good", &["localhost"], Validity::Current);
    let expired = s.ca.write_server(s.dir.path(), "expired", &["localhost"], Validity::Expired);
    let other_name = s.ca.write_server(s.dir.path(), "other", &["records.example.org"], Validity::Current);
    let (good, expired, other_name) =
        (serve(Some(&good)).await, serve(Some(&expired)).await, serve(Some(&other_name)).await);

    let platform_only = Trust::new(None).unwrap();
    let why = get(&platform_only, &format!("https://localhost:{}/", good.port())).await.unwrap_err();
    assert!(why.contains("unknown issuer") && why.contains("--ca-file"), "{why}");

    let why = get(&s.trusting, &format!("https://localhost:{}/", expired.port())).await.unwrap_err();
    assert!(why.contains("expired"), "{why}");

    let why = get(&s.trusting, &format!("https://localhost:{}/", other_name.port())).await.unwrap_err();
    assert!(why.contains("name mismatch") && why.contains("records.example.org"), "{why}");

    let plain = serve(None).await;
    let why = get(&s.trusting, &format!("https://localhost:{}/", plain.port())).await.unwrap_err();
    assert!(why.contains("did not answer in TLS"), "{why}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let s = setup();
    let files = s.ca.write_server(s.dir.path(), "server", &["localhost"], Validity::Expired);
    let addr = serve(Some(&files)).await;
    let url = format!("https://localhost:{}/", addr.port());
    let why = get(&s.trusting, &url).await.unwrap_err();
    assert!(why.contains("expired"), "{why}");

    // Renewal as certbot does it: new files in place of the old, the server left running.
    let (cert, key) = s.ca.issue(&["localhost"], Validity::Current);
    std::fs::write(&files.key, key).unwrap();
    std::fs::write(&files.cert, cert).unwrap();
    let deadline = Instant::now() + RELOAD_INTERVAL * 5;
    loop {
        match get(&s.trusting, &url).await {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                break;
            }
            Err(why) if Instant::now() < deadline => {
                assert!(why.contains("expired"), "{why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(why) => panic!("the renewed certificate was not served: {why}"),
        }
    }
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_is_refused_at_start() {
    let s = setup();
    let a = s.ca.write_server(s.dir.path(), "a", &["localhost"], Validity::Current);
    let b = s.ca.write_server(s.dir.path(), "b", &["localhost"], Validity::Current);
    let mixed = TlsFiles { cert: a.cert, key: b.key };
    let err = ServerTls::new(&mixed).unwrap_err();
    assert!(err.to_string().contains("does not belong to the certificate"), "{err}");
}
