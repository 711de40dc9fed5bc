//! `cargo xtask run`: the main job. Builds the UI, starts a local ledger (SQLite, in a data folder) with
//! a demo network authority, a demo gateway and a demo clinician enrolled, and opens the wallet app:
//! the desktop window where there is a display, else the same UI in a browser (browser mode), whose
//! address it prints.
//!
//! The data folder (`target/custodia-app/`) is kept between runs, so the patient's wallet survives;
//! `--fresh` starts over. `--check` does everything in a throwaway folder, checks that the app answers,
//! and stops: that is what `cargo xtask test` runs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{http, sh, ui};

/// How long `run --check` waits for each answer.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The demo's wallets are for show; their passphrase is public.
pub const DEMO_PASSPHRASE: &str = "demo passphrase, not for real use";
const LEDGER_LISTEN: &str = "127.0.0.1:7420";
const APP_LISTEN: &str = "127.0.0.1:7421";
const GATEWAY_LISTEN: &str = "127.0.0.1:7430";

/// A child process killed when dropped, so nothing outlives the job.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Network {
    pub ledger_url: String,
    pub clinician_card: String,
    pub gateway_wallet: PathBuf,
    pub er_wallet: PathBuf,
    _ledger: Running,
}

fn custodia(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("CUSTODIA_PASSPHRASE", DEMO_PASSPHRASE).env_remove("CUSTODIA_WALLET").env_remove("CUSTODIA_LEDGER");
    cmd
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd.get_args().collect::<Vec<_>>(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `custodia ...` and waits for its first line of output, which names its address.
pub fn start_announcing(mut cmd: Command, prefix: &str) -> Result<(Running, String)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("cannot start custodia")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut first = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut first)?;
    let running = Running(child);
    let address = first.trim().strip_prefix(prefix).with_context(|| format!("unexpected first line {first:?}"))?;
    let address = address.to_owned();
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    Ok((running, address))
}

/// A data folder with an authority, a gateway, a clinician and a ledger, the ledger started and the two
/// members enrolled. Reuses what an earlier run left in `dir`.
pub fn network(bin: &Path, dir: &Path, listen: &str) -> Result<Network> {
    std::fs::create_dir_all(dir)?;
    let wallet = |name: &str, shown: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        if !path.join("wallet.vault").exists() {
            output(custodia(bin).args(["wallet", "init", "--wallet"]).arg(&path).args(["--name", shown]))?;
        }
        Ok(path)
    };
    let authority = wallet("authority", "Demo network authority")?;
    let gateway = wallet("gateway", "St Mary's gateway")?;
    let clinician = wallet("clinician", "Dr Grace Hopper")?;
    let er = wallet("er", "Dr Rosa Lee")?;
    let show = |w: &Path| -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&output(custodia(bin).args(["wallet", "show", "--json", "--wallet"]).arg(w))?)?)
    };
    let authority_key = show(&authority)?["signing_key"].as_str().context("authority key")?.to_owned();
    let ledger_dir = dir.join("ledger");
    if !ledger_dir.join("ledger.json").exists() {
        output(custodia(bin).args(["ledger", "init", "--dir"]).arg(&ledger_dir).args(["--authority", &authority_key]))?;
    }
    let mut serve = custodia(bin);
    serve.args(["ledger", "serve", "--dir"]).arg(&ledger_dir).args(["--listen", listen, "--rate-limit", "100000"]);
    let (ledger, ledger_url) = start_announcing(serve, "listening on ")?;
    for (w, role, org) in [
        (&gateway, "gateway", "St Mary's Hospital"),
        (&clinician, "provider", "St Mary's Hospital"),
        (&er, "emergency", "St Mary's Emergency Department"),
    ] {
        let enrolled = w.join("enrolled-on-demo-ledger");
        if !enrolled.exists() {
            let card = show(w)?["contact_card"].as_str().context("contact card")?.to_owned();
            output(custodia(bin).args(["ledger", "enroll", "--wallet"]).arg(&authority).args([
                "--ledger",
                &ledger_url,
                "--contact",
                &card,
                "--role",
                role,
                "--org",
                org,
            ]))?;
            std::fs::write(&enrolled, format!("{role}\n"))?;
        }
    }
    let clinician_card = show(&clinician)?["contact_card"].as_str().context("contact card")?.to_owned();
    Ok(Network { ledger_url, clinician_card, gateway_wallet: gateway, er_wallet: er, _ledger: ledger })
}

fn check_browser_mode(url: &str) -> Result<()> {
    let rest = url.strip_prefix("http://").context("address")?;
    let (host, token) = rest.split_once("/#token=").context("the printed address has no token")?;
    let page = http::request(host, "GET", "/", &[], b"", CHECK_TIMEOUT)?;
    if page.status != 200 || !page.text().contains("<script") {
        bail!("the app's page did not load: {}", page.status);
    }
    let status = |token: &str| {
        let origin = format!("http://{host}");
        let bearer = format!("Bearer {token}");
        let headers =
            [("Origin", origin.as_str()), ("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
        http::request(host, "POST", "/bridge/status", &headers, b"{}", CHECK_TIMEOUT)
    };
    let ok = status(token)?;
    if ok.status != 200 || !ok.text().contains("\"state\":\"none\"") {
        bail!("the bridge did not answer status: {} {}", ok.status, ok.text());
    }
    if status("0000")?.status != 401 {
        bail!("the bridge answered without its token");
    }
    println!("browser mode answers at {url} (page, bridge, token check)");
    Ok(())
}

fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

pub fn run(args: &[String]) -> Result<()> {
    let check = args.iter().any(|a| a == "--check");
    let browser = check || args.iter().any(|a| a == "--browser") || !has_display();
    let root = sh::project_root();
    sh::step("build the UI", || ui::build(&root))?;
    sh::build_packages(&["custodia-cli"])?;
    let bin = sh::debug_dir(&root).join("custodia");
    let (dir, ledger_listen, app_listen, gateway_listen) = if check {
        let dir = root.join("target/custodia-app-check");
        let _ = std::fs::remove_dir_all(&dir);
        (dir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    } else {
        let dir = root.join("target/custodia-app");
        if args.iter().any(|a| a == "--fresh") {
            let _ = std::fs::remove_dir_all(&dir);
        }
        (dir, LEDGER_LISTEN, APP_LISTEN, GATEWAY_LISTEN)
    };
    let net = network(&bin, &dir, ledger_listen)?;
    let mut serve_gateway = custodia(&bin);
    serve_gateway.args(["gateway", "serve", "--dir"]).arg(&net.gateway_wallet).args([
        "--ledger",
        &net.ledger_url,
        "--listen",
        gateway_listen,
    ]);
    let (_gateway, gateway_url) = start_announcing(serve_gateway, "listening on ")?;
    let patient = dir.join("patient");
    println!("\nA local ledger is running at {} (data in {}).", net.ledger_url, dir.display());
    println!("Enrolled: the demo gateway (St Mary's Hospital) and a demo clinician, Dr Grace Hopper.");
    println!("To grant Dr Hopper access, paste her contact card on the New grant screen:\n  {}", net.clinician_card);
    println!(
        "To log a read as the demo gateway once you have a grant (the passphrase of the demo wallets is {DEMO_PASSPHRASE:?}):\n  \
         CUSTODIA_PASSPHRASE='{DEMO_PASSPHRASE}' {} ledger post-access --wallet {} --ledger {} --patient YOUR_KEY --grant GRANT_ID \
         --resource Observation/hba1c-1 --reader-name 'Dr Grace Hopper' --org \"St Mary's Hospital\"",
        bin.display(),
        net.gateway_wallet.display(),
        net.ledger_url
    );
    let gw = net.gateway_wallet.display();
    let er = net.er_wallet.display();
    println!(
        "\nThe demo gateway serves synthetic records at {gateway_url}/fhir. The emergency-room flow, with the demo \
         passphrase in CUSTODIA_PASSPHRASE:\n  \
         custodia gateway link --dir {gw} --patient YOUR_KEY --fhir-id p1        # your wallet is patient p1\n  \
         custodia er request --wallet {er} --ledger {} --scope patient/AllergyIntolerance.rs \
         --scope patient/Condition.rs --qr request.png      # then scan request.png on the Scan screen\n  \
         custodia er wait --wallet {er} && custodia er fetch --wallet {er} --gateway {gateway_url} --type AllergyIntolerance",
        net.ledger_url
    );
    if browser {
        let mut serve = Command::new(&bin);
        serve
            .args(["app", "serve", "--wallet"])
            .arg(&patient)
            .args(["--ledger", &net.ledger_url, "--listen", app_listen, "--ui"])
            .arg(root.join("ui/dist"));
        let (mut app, url) = start_announcing(serve, "open ")?;
        if check {
            let host = gateway_url.strip_prefix("http://").context("gateway address")?;
            let metadata = http::request(host, "GET", "/fhir/metadata", &[], b"", CHECK_TIMEOUT)?;
            if metadata.status != 200 || !metadata.text().contains("CapabilityStatement") {
                bail!("the gateway did not answer /fhir/metadata: {}", metadata.status);
            }
            println!("the gateway answers at {gateway_url}/fhir/metadata");
            return check_browser_mode(&url);
        }
        println!("\nNo display here, so the wallet app runs in browser mode. Open:\n\n  {url}\n\nCtrl-C stops it.");
        app.0.wait()?;
    } else {
        sh::build_packages(&["custodia-desktop"])?;
        let mut desktop = Command::new(sh::debug_dir(&root).join("custodia-desktop"));
        desktop.env("CUSTODIA_WALLET", &patient).env("CUSTODIA_LEDGER", &net.ledger_url);
        if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
            // A blank window under Xvfb and some drivers is WebKit's DMA-BUF renderer.
            desktop.env("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
        }
        println!("\nOpening the Custodia window (close it to stop).");
        let status = desktop.status().context("cannot start the desktop app")?;
        if !status.success() {
            bail!("the desktop app exited with {status}");
        }
    }
    Ok(())
}
