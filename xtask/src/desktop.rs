//! The desktop app's smoke test: the real app in a real window, driven like a user would.
//!
//! It makes a wallet with the `custodia` CLI, starts the app under `tauri-driver` (W3C WebDriver over
//! WebKitGTK's `WebKitWebDriver`) on an Xvfb display unless one is set, types the passphrase into the
//! unlock screen, clicks Unlock, waits for the Home screen and saves a screenshot under `target/`.
//! Every process it starts (Xvfb, tauri-driver and, through its process group, WebKitWebDriver and the
//! app) is stopped when it returns, whether it passed or not, and also when xtask itself is interrupted or
//! killed (see [`Group`]).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{http, sh};

const PASSPHRASE: &str = "desktop smoke passphrase, not for real use";
/// How long the unlock screen, and then Home, may take to appear.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);
/// The W3C WebDriver key under which an element reference arrives.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A password field labelled "Passphrase" (by `<label for>`, an enclosing label, `aria-label` or
/// `aria-labelledby`), and the button that submits it.
const PASSPHRASE_XPATH: &str = "//input[@type='password'][@id = //label[normalize-space(.)='Passphrase']/@for \
     or ancestor::label[normalize-space(.)='Passphrase'] or @aria-label='Passphrase' \
     or @aria-labelledby = //*[normalize-space(.)='Passphrase']/@id]";
const UNLOCK_XPATH: &str = "//button[normalize-space(.)='Unlock']";
const HOME_XPATH: &str = "//h1[normalize-space(.)='Home']";

/// `cargo xtask desktop-smoke`: builds the UI (the app embeds `ui/dist` when compiled), the CLI and the
/// app, then runs [`smoke`].
pub fn run_standalone() -> Result<()> {
    let root = sh::project_root();
    crate::ui::build(&root)?;
    sh::build_packages(&["custodia-cli", "custodia-desktop"])?;
    let bin = sh::debug_dir(&root);
    smoke(&root, &bin.join("custodia"), &bin.join("custodia-desktop"))
}

/// Unlocks a fresh wallet in the desktop app (`desktop_bin`, already built) and reaches Home.
pub fn smoke(root: &Path, custodia_bin: &Path, desktop_bin: &Path) -> Result<()> {
    let started = Instant::now();
    // Every process is stopped by the time `run` returns, whatever it returns.
    let shot = run(root, custodia_bin, desktop_bin)?;
    progress(&format!("passed in {:.1}s; screenshot: {}", started.elapsed().as_secs_f64(), shot.display()));
    Ok(())
}

/// The smoke test itself; returns the screenshot's path.
fn run(root: &Path, custodia_bin: &Path, desktop_bin: &Path) -> Result<PathBuf> {
    for bin in [custodia_bin, desktop_bin] {
        if !bin.is_file() {
            bail!("{} is missing: build it first", bin.display());
        }
    }
    let desktop_bin = fs::canonicalize(desktop_bin)?;
    let dir = root.join("target/desktop-smoke");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let wallet = dir.join("wallet");

    let tauri_driver = ensure_tauri_driver()?;

    // The display: the caller's, or a private Xvfb.
    let (display, _xvfb) = match std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()) {
        Some(display) => {
            progress(&format!("using the display {display}"));
            (display, None)
        }
        None => {
            let (display, xvfb) = start_xvfb(&dir)?;
            (display, Some(xvfb))
        }
    };

    progress(&format!("creating a wallet in {}", wallet.display()));
    let out = Command::new(custodia_bin)
        .args(["wallet", "init", "--wallet"])
        .arg(&wallet)
        .args(["--name", "Desktop Smoke"])
        .env("CUSTODIA_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", custodia_bin.display()))?;
    if !out.status.success() {
        bail!("custodia wallet init failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }

    let port = free_port()?;
    let native_port = free_port()?;
    let log = dir.join("tauri-driver.log");
    progress(&format!(
        "starting tauri-driver on port {port} (WebKitWebDriver on {native_port}); log: {}",
        log.display()
    ));
    let xdg = dir.join("xdg");
    let mut driver = Group::command(&tauri_driver);
    driver
        .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
        // tauri-driver passes its environment on to WebKitWebDriver and the app.
        .env("DISPLAY", &display)
        .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
        .env("NO_AT_BRIDGE", "1")
        .env("CUSTODIA_WALLET", &wallet)
        .env_remove("CUSTODIA_LEDGER")
        // WebKit's caches and the app's data stay in the test folder, not the user's home.
        .env("XDG_DATA_HOME", xdg.join("data"))
        .env("XDG_CONFIG_HOME", xdg.join("config"))
        .env("XDG_CACHE_HOME", xdg.join("cache"))
        .stdout(Stdio::from(fs::File::create(&log)?))
        .stderr(Stdio::from(fs::File::create(dir.join("tauri-driver.stderr.log"))?));
    let _driver = Group::spawn("tauri-driver", &mut driver)?;

    let webdriver = WebDriver::new(port);
    webdriver.wait_ready(Duration::from_secs(20))?;

    progress(&format!("launching {}", desktop_bin.display()));
    let session = webdriver.new_session(&desktop_bin)?;
    let result = drive(&session, &dir);
    if result.is_err() {
        let shot = dir.join("failure.png");
        if session.screenshot(&shot).is_ok() {
            println!("desktop smoke: screenshot at failure: {}", shot.display());
        }
        if let Ok(source) = session.get("source") {
            let path = dir.join("failure.html");
            if fs::write(&path, source.as_str().unwrap_or_default()).is_ok() {
                println!("desktop smoke: page source at failure: {}", path.display());
            }
        }
        println!("desktop smoke: driver logs in {}", dir.display());
    }
    result
}

/// The user's part: unlock, reach Home, take the screenshot. Returns the screenshot's path.
fn drive(session: &Session, dir: &Path) -> Result<PathBuf> {
    progress("waiting for the unlock screen (a password field labelled \"Passphrase\" and an \"Unlock\" button)");
    let (field, button) = poll(SCREEN_TIMEOUT, "the unlock screen", || {
        Ok(match (session.find_displayed(PASSPHRASE_XPATH)?, session.find_displayed(UNLOCK_XPATH)?) {
            (Some(field), Some(button)) => Some((field, button)),
            _ => None,
        })
    })?;
    progress("typing the passphrase and clicking Unlock");
    session.post(&format!("element/{field}/value"), &json!({ "text": PASSPHRASE }))?;
    session.post(&format!("element/{button}/click"), &json!({}))?;
    progress("waiting for Home (an h1 \"Home\")");
    poll(SCREEN_TIMEOUT, "the Home screen", || session.find_displayed(HOME_XPATH))?;
    let shot = dir.join("home.png");
    session.screenshot(&shot)?;
    Ok(shot)
}

fn progress(text: &str) {
    println!("desktop smoke: {text}");
}

/// Calls `f` every 250 ms until it gives a value, or fails after `timeout`.
fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("{what} did not appear within {}s", timeout.as_secs());
        }
        sleep(Duration::from_millis(250));
    }
}

/// `~/.cargo/bin/tauri-driver` (or under `$CARGO_HOME`), installed from crates.io when missing.
fn ensure_tauri_driver() -> Result<PathBuf> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cargo"),
    };
    let path = cargo_home.join("bin/tauri-driver");
    if !path.is_file() {
        progress("installing tauri-driver from crates.io");
        sh::cargo(&["install", "tauri-driver", "--locked", "--version", "^2"])?;
    }
    if Command::new("WebKitWebDriver").arg("--version").output().is_err() {
        bail!("WebKitWebDriver is not on PATH: install the Debian package webkit2gtk-driver");
    }
    Ok(path)
}

/// Starts `Xvfb` on the first free display from :90; returns the `DISPLAY` value and its guard.
fn start_xvfb(dir: &Path) -> Result<(String, Group)> {
    let n = (90..200)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists() && !x_socket(*n).exists())
        .context("no free X display between :90 and :199")?;
    let display = format!(":{n}");
    progress(&format!("starting Xvfb {display}"));
    let mut xvfb = Group::command("Xvfb");
    xvfb.args([display.as_str(), "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(dir.join("xvfb.log"))?));
    let group = Group::spawn("Xvfb", &mut xvfb)?;
    poll(Duration::from_secs(10), "the Xvfb display", || Ok(x_socket(n).exists().then_some(())))
        .with_context(|| format!("Xvfb {display} did not start; see {}", dir.join("xvfb.log").display()))?;
    Ok((display, group))
}

fn x_socket(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{n}"))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process in a process group of its own, started through a small `sh` watchdog that leads the
/// group and holds a pipe from this process. Dropping the guard closes the pipe; so does this process
/// dying in any way (an error, a panic, Ctrl-C, SIGKILL). Either way the watchdog then stops the whole
/// group: the program and whatever it started (WebKitWebDriver, the app, WebKit's helpers).
struct Group {
    name: &'static str,
    child: Child,
}

/// Runs "$@" in the background, waits for its stdin to close, then TERMs the group, and KILLs it a second
/// later (the trap is set only after the program started, so the program itself still obeys TERM).
const WATCHDOG: &str = "\"$@\" & read -r _; trap '' TERM; kill -TERM 0; sleep 1; kill -KILL 0";

impl Group {
    /// A command that runs `program` (with the arguments, environment and output added to it) under the
    /// watchdog; start it with [`Group::spawn`].
    fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG, "sh"]).arg(program);
        cmd
    }

    fn spawn(name: &'static str, cmd: &mut Command) -> Result<Group> {
        use std::os::unix::process::CommandExt;
        let child =
            cmd.stdin(Stdio::piped()).process_group(0).spawn().with_context(|| format!("cannot start {name}"))?;
        Ok(Group { name, child })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            sleep(Duration::from_millis(100));
        }
        // Should the watchdog not have finished, KILL the group from here.
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
        println!("desktop smoke: stopped {}", self.name);
    }
}

/// A W3C WebDriver endpoint (tauri-driver) on loopback.
struct WebDriver {
    addr: String,
}

/// Starting a session launches the app, which can take a while on a cold cache.
const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(120);

impl WebDriver {
    fn new(port: u16) -> WebDriver {
        WebDriver { addr: format!("127.0.0.1:{port}") }
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        poll(timeout, "tauri-driver", || {
            let ok = http::request(&self.addr, "GET", "/status", &[], b"", Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200);
            Ok(ok.then_some(()))
        })
    }

    fn new_session(&self, application: &Path) -> Result<Session> {
        let caps = json!({ "capabilities": { "alwaysMatch": { "tauri:options": { "application": application } } } });
        let value = call(&self.addr, "POST", "/session", Some(&caps), WEBDRIVER_TIMEOUT)?;
        let id = value["sessionId"].as_str().context("new session: no sessionId in the reply")?.to_owned();
        Ok(Session { addr: self.addr.clone(), base: format!("/session/{id}") })
    }
}

/// Sends one WebDriver request; returns its `value`, or the WebDriver error as an error.
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let headers: &[(&str, &str)] = if body.is_empty() { &[] } else { &[("Content-Type", "application/json")] };
    let response = http::request(addr, method, path, headers, body.as_bytes(), timeout)?;
    let status = response.status;
    let reply: Value = serde_json::from_slice(&response.body)
        .with_context(|| format!("WebDriver reply ({status}) is not JSON: {}", response.text()))?;
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        bail!("WebDriver error {status}: {} {}", value["error"], value["message"]);
    }
    Ok(value)
}

/// One WebDriver session, deleted (which closes the app) when dropped.
struct Session {
    addr: String,
    /// `/session/{id}`.
    base: String,
}

impl Session {
    fn get(&self, path: &str) -> Result<Value> {
        call(&self.addr, "GET", &format!("{}/{path}", self.base), None, WEBDRIVER_TIMEOUT)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        call(&self.addr, "POST", &format!("{}/{path}", self.base), Some(body), WEBDRIVER_TIMEOUT)
    }

    /// The first element matching `xpath` that is displayed, if any.
    fn find_displayed(&self, xpath: &str) -> Result<Option<String>> {
        let found = self.post("elements", &json!({ "using": "xpath", "value": xpath }))?;
        for element in found.as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(id) = element[ELEMENT_KEY].as_str() else { continue };
            // An element can go stale between the two calls while the page changes: just look again.
            if self.get(&format!("element/{id}/displayed")).is_ok_and(|v| v.as_bool() == Some(true)) {
                return Ok(Some(id.to_owned()));
            }
        }
        Ok(None)
    }

    /// Saves a screenshot of the window. WebKitGTK answers a screenshot request after the next frame it
    /// presents, and an idle page under Xvfb presents none; so while it is taken, a one-pixel element in a
    /// corner flickers between transparent and almost transparent, and is removed after.
    fn screenshot(&self, path: &Path) -> Result<()> {
        self.script(NUDGE_START)?;
        let screenshot = format!("{}/screenshot", self.base);
        let taken = call(&self.addr, "GET", &screenshot, None, Duration::from_secs(30));
        let _ = self.script(NUDGE_STOP);
        let encoded = taken.context("screenshot")?;
        let png = data_encoding::BASE64
            .decode(encoded.as_str().context("screenshot: the reply is not a string")?.as_bytes())
            .context("screenshot: the reply is not base64")?;
        fs::write(path, png).with_context(|| format!("cannot write {}", path.display()))
    }

    fn script(&self, body: &str) -> Result<Value> {
        self.post("execute/sync", &json!({ "script": body, "args": [] }))
    }
}

const NUDGE_START: &str = "const d = document.createElement('div'); d.id = 'smoke-nudge'; \
     d.style.cssText = 'position:fixed;right:0;bottom:0;width:1px;height:1px;pointer-events:none;z-index:2147483647'; \
     document.documentElement.appendChild(d); let on = false; \
     window.smokeNudge = setInterval(() => { on = !on; d.style.background = on ? 'rgba(0,0,0,0.01)' : 'transparent'; }, 50);";
const NUDGE_STOP: &str = "clearInterval(window.smokeNudge); document.getElementById('smoke-nudge')?.remove();";

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http::request(&self.addr, "DELETE", &self.base, &[], b"", Duration::from_secs(10));
    }
}
