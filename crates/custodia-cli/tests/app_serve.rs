//! Browser mode (`custodia app serve`) as a web page and as an attacker's page would meet it: the page
//! loads with a strict CSP; the bridge answers only with the token, from its own Origin, at its own Host.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exchange(host: &str, request: String) -> String {
    let mut stream = TcpStream::connect(host).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn bridge(addr: &str, host: &str, origin: &str, token: &str, body: &str) -> String {
    exchange(
        addr,
        format!(
            "POST /bridge/status HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn the_bridge_answers_only_its_own_page_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let ui = dir.path().join("ui");
    std::fs::create_dir_all(&ui).unwrap();
    std::fs::write(ui.join("index.html"), "<!doctype html><script type=module src=app.js></script>").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not for the web").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["app", "serve", "--listen", "127.0.0.1:0", "--wallet"])
        .arg(dir.path().join("wallet"))
        .arg("--ui")
        .arg(&ui)
        .env_remove("CUSTODIA_WALLET")
        .env_remove("CUSTODIA_LEDGER")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let _server = Server(child);
    let url = first.trim().strip_prefix("open http://").unwrap().to_owned();
    let (addr, token) = url.split_once("/#token=").unwrap();
    assert_eq!(token.len(), 64, "a 256-bit token");
    let origin = format!("http://{addr}");

    let page = exchange(addr, format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_lowercase().contains("content-security-policy: default-src 'self'; script-src 'self'"));
    let escape = exchange(addr, format!("GET /../secret.txt HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"));
    assert!(!escape.contains("not for the web"), "{escape}");
    let encoded =
        exchange(addr, format!("GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"));
    assert!(!encoded.contains("not for the web"), "{encoded}");

    let ok = bridge(addr, addr, &origin, token, "{}");
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("\"state\":\"none\""), "{ok}");
    for (what, response) in [
        ("no token", bridge(addr, addr, &origin, "", "{}")),
        ("a wrong token", bridge(addr, addr, &origin, &"0".repeat(64), "{}")),
        ("another site's page", bridge(addr, addr, "http://evil.example", token, "{}")),
        ("a rebound host name", bridge(addr, "evil.example:80", &origin, token, "{}")),
    ] {
        assert!(response.starts_with("HTTP/1.1 401"), "{what}: {response}");
        assert!(response.contains("\"code\":\"unauthorized\""), "{what}: {response}");
        assert!(!response.contains("\"state\""), "{what} learned nothing: {response}");
    }
    let bad = bridge(addr, addr, &origin, token, "{\"unexpected\": 1}");
    assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("\"code\":\"bad_input\""), "{bad}");
}

#[test]
fn browser_mode_refuses_to_listen_beyond_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["app", "serve", "--listen", "0.0.0.0:0", "--ui", "/nonexistent", "--wallet"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("this machine only"));
}

#[test]
fn over_tls_the_bridge_answers_its_own_https_origin_and_no_other() {
    use custodia_net::test_ca::{TestCa, Validity};
    let dir = tempfile::tempdir().unwrap();
    let ui = dir.path().join("ui");
    std::fs::create_dir_all(&ui).unwrap();
    std::fs::write(ui.join("index.html"), "<!doctype html><title>Custodia</title>").unwrap();
    let ca = TestCa::new("App serve CA");
    let files = ca.write_server(dir.path(), "app", &["localhost"], Validity::Current);
    let mut child = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["app", "serve", "--listen", "127.0.0.1:0", "--wallet"])
        .arg(dir.path().join("wallet"))
        .arg("--ui")
        .arg(&ui)
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .env_remove("CUSTODIA_WALLET")
        .env_remove("CUSTODIA_LEDGER")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let _server = Server(child);
    let url = first.trim().strip_prefix("open ").unwrap().to_owned();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let (base, token) = url.split_once("/#token=").unwrap();
    let http = custodia_net::Trust::new(Some(&ca.write_ca(dir.path()))).unwrap().blocking_client().build().unwrap();
    let page = http.get(format!("{base}/")).send().unwrap();
    assert_eq!(page.status(), 200);
    let call = |origin: &str| {
        http.post(format!("{base}/bridge/status"))
            .header("origin", origin)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(call(base), 200);
    assert_eq!(call(&base.replace("https://", "http://")), 401, "a plain-HTTP origin is another origin");
    assert_eq!(call("https://evil.example"), 401);
}
