//! `cargo xtask package`: the Debian packages, under `target/packages/`.
//!
//! - `custodia_VERSION_ARCH.deb`: the `custodia` command, the built UI for `custodia app serve`, systemd units
//!   for the ledger and the gateway (a `custodia` system user, state under /var/lib/custodia, configuration in
//!   /etc/custodia, hardened), and a commented configuration file for each. Staged here and built with
//!   `dpkg-deb`.
//! - `Custodia_VERSION_ARCH.deb`: the desktop app, made by the Tauri bundler (`tauri bundle --bundles deb`)
//!   with its icons, desktop entry and notification permission.
//!
//! `--debug` packages the debug build instead of an optimised one: what `cargo xtask test` installs and
//! checks, so that the packaging is tested without a second, release, build of the workspace. `--check`
//! then installs them with apt and checks them as `cargo xtask test` does (root, Debian).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sh;

/// The packages one run made.
#[derive(Debug)]
pub struct Packages {
    pub cli: PathBuf,
    pub desktop: PathBuf,
}

/// `cargo xtask package [--debug]`.
pub fn run(args: &[String]) -> Result<()> {
    let debug = args.iter().any(|a| a == "--debug");
    let root = sh::project_root();
    let packages = build(&root, debug)?;
    println!("{}\n{}", packages.cli.display(), packages.desktop.display());
    if args.iter().any(|a| a == "--check") {
        // What `cargo xtask test` does with them: install with apt and try what was installed.
        sh::build_packages(&["custodia-cli", "custodia-tests"])?;
        check_installed(&root, &packages, &sh::debug_dir(&root).join("custodia"))?;
    }
    Ok(())
}

fn version(root: &Path) -> Result<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    let in_package = manifest.split("[workspace.package]").nth(1).context("no [workspace.package]")?;
    let line = in_package.lines().find(|l| l.trim_start().starts_with("version")).context("no version")?;
    Ok(line.split('"').nth(1).context("a quoted version")?.to_owned())
}

fn architecture() -> Result<String> {
    let out = Command::new("dpkg").arg("--print-architecture").output().context("dpkg is missing")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Builds both packages; with `debug`, from the debug build (which must exist).
pub fn build(root: &Path, debug: bool) -> Result<Packages> {
    crate::ui::build(root)?;
    let bin_dir = if debug {
        sh::build_packages(&["custodia-cli", "custodia-desktop"])?;
        sh::debug_dir(root)
    } else {
        sh::cargo(&["build", "--release", "-p", "custodia-cli"])?;
        // The packaged app serves its embedded UI through Tauri's own protocol, as `tauri build` would build it.
        sh::cargo(&["build", "--release", "-p", "custodia-desktop", "--features", "tauri/custom-protocol"])?;
        sh::debug_dir(root).with_file_name("release")
    };
    let out = bin_dir.parent().context("a target directory")?.join("packages");
    fs::create_dir_all(&out)?;
    let cli = cli_deb(root, &bin_dir, &out, !debug)?;
    let desktop = desktop_deb(root, &bin_dir, &out, debug)?;
    Ok(Packages { cli, desktop })
}

fn cli_deb(root: &Path, bin_dir: &Path, out: &Path, strip: bool) -> Result<PathBuf> {
    let (version, arch) = (version(root)?, architecture()?);
    let stage = out.join("custodia-stage");
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let put = |to: &str, from: &Path, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let to = stage.join(to);
        fs::create_dir_all(to.parent().context("a parent")?)?;
        fs::copy(from, &to).with_context(|| format!("copy {}", from.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let packaging = root.join("packaging/debian");
    put("usr/bin/custodia", &bin_dir.join("custodia"), 0o755)?;
    if strip {
        sh::run("strip", &["--strip-debug", &stage.join("usr/bin/custodia").to_string_lossy()])?;
    }
    for unit in ["custodia-ledger.service", "custodia-gateway.service", "custodia-witness.service"] {
        put(&format!("lib/systemd/system/{unit}"), &packaging.join("systemd").join(unit), 0o644)?;
    }
    for config in ["ledger.toml", "gateway.toml", "witness.toml"] {
        put(&format!("etc/custodia/{config}"), &packaging.join("etc").join(config), 0o640)?;
    }
    put("usr/share/doc/custodia/README.md", &root.join("README.md"), 0o644)?;
    let doc = stage.join("usr/share/doc/custodia");
    fs::write(
        doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: custodia\n\n\
         Files: *\nLicense: Apache-2.0\n On Debian systems the full text of the Apache License 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n",
    )?;
    copy_tree(&root.join("ui/dist"), &stage.join("usr/share/custodia/ui"))?;
    put("DEBIAN/postinst", &packaging.join("postinst"), 0o755)?;
    put("DEBIAN/postrm", &packaging.join("postrm"), 0o755)?;
    fs::write(
        stage.join("DEBIAN/conffiles"),
        "/etc/custodia/ledger.toml\n/etc/custodia/gateway.toml\n/etc/custodia/witness.toml\n",
    )?;
    let size_kib = dir_size(&stage)? / 1024;
    fs::write(
        stage.join("DEBIAN/control"),
        format!(
            "Package: custodia\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Custodia maintainers \
             <maintainers@custodia.invalid>\nInstalled-Size: {size_kib}\nDepends: libc6, ca-certificates, adduser\n\
             Section: net\nPriority: optional\nDescription: patient-held consent for medical records: CLI, ledger \
             and gateway\n The custodia command: the patient's wallet on the command line, the network's ledger \
             (a\n tamper-evident log of grants, revocations and reads), a hospital's gateway in front of its\n \
             FHIR server and a witness that cosigns the ledger's checkpoints, each with a systemd unit and a\n \
             configuration file in /etc/custodia.\n"
        ),
    )?;
    let deb = out.join(format!("custodia_{version}_{arch}.deb"));
    // xz for a release; a debug build's large binary is packed quickly instead, for CI's sake.
    let compression: &[&str] = if strip { &["-Zxz"] } else { &["-Zgzip", "-z1"] };
    sh::run_cmd(
        Command::new("dpkg-deb").arg("--root-owner-group").args(compression).arg("--build").arg(&stage).arg(&deb),
    )?;
    fs::remove_dir_all(&stage)?;
    Ok(deb)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() { dir_size(&entry.path())? } else { entry.metadata()?.len() };
    }
    Ok(total)
}

/// The Tauri bundler over the binary already built in `bin_dir`.
fn desktop_deb(root: &Path, bin_dir: &Path, out: &Path, debug: bool) -> Result<PathBuf> {
    crate::ui::install(root)?;
    let tauri = root.join("ui/node_modules/.bin/tauri");
    let mut cmd = Command::new(&tauri);
    cmd.arg("bundle").args(["--bundles", "deb"]).current_dir(root.join("src-tauri"));
    if debug {
        cmd.arg("--debug");
    }
    sh::run_cmd(&mut cmd).context("the Tauri bundler")?;
    let bundles = bin_dir.join("bundle/deb");
    let made = fs::read_dir(&bundles)
        .with_context(|| format!("read {}", bundles.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .context("the Tauri bundler made no .deb")?;
    // Named as Debian names packages (the bundler uses the product name, with its space).
    let name = Command::new("dpkg-deb").arg("--field").arg(&made).arg("Package").output()?;
    let name = String::from_utf8_lossy(&name.stdout).trim().to_owned();
    let deb = out.join(format!("{name}_{}_{}.deb", version(root)?, architecture()?));
    fs::copy(&made, &deb)?;
    Ok(deb)
}

/// Installs both packages with apt, as a user would, then checks what they installed: the ledger started by
/// its systemd unit's own command line (systemd does not run in CI's container) answers over HTTPS, and the
/// installed desktop app shows its first screen under Xvfb.
pub fn check_installed(root: &Path, packages: &Packages, custodia_dev: &Path) -> Result<()> {
    sh::run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "--reinstall", "--allow-downgrades"])
            // An earlier check edited the installed configuration; this check writes its own anyway.
            .args(["-o", "Dpkg::Options::=--force-confnew"])
            .arg(&packages.cli)
            .arg(&packages.desktop)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get install of the packages")?;
    check_ledger_unit(root)?;
    let desktop = installed_desktop_binary(&packages.desktop)?;
    crate::desktop::smoke(root, custodia_dev, &desktop)?;
    // Kept beside the packages: what the installed app showed.
    let shot = packages.cli.with_file_name("installed-app-home.png");
    fs::copy(root.join("target/desktop-smoke/home.png"), &shot)?;
    println!("[package] the installed app's Home screen: {}", shot.display());
    Ok(())
}

/// The binary the desktop package installed under /usr/bin.
fn installed_desktop_binary(package: &Path) -> Result<PathBuf> {
    let name = Command::new("dpkg-deb").args(["--field"]).arg(package).arg("Package").output()?;
    let name = String::from_utf8_lossy(&name.stdout).trim().to_owned();
    let files = Command::new("dpkg").args(["-L", &name]).output()?;
    String::from_utf8_lossy(&files.stdout)
        .lines()
        .find(|l| l.starts_with("/usr/bin/"))
        .map(PathBuf::from)
        .with_context(|| format!("the installed {name} has no program under /usr/bin"))
}

/// Runs the installed witness and ledger as their units would: each unit's `ExecStart`, as its `User`, with
/// configurations an operator would write (TLS from a throwaway CA, any port, the ledger collecting the
/// witness's cosignatures under a 1-of-1 policy); writes the network profile and enrolls a wallet with it
/// over HTTPS; then stops both as systemd would.
fn check_ledger_unit(root: &Path) -> Result<()> {
    let work = root.join("target/package-check");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let custodia = |args: &[&str]| -> Result<String> {
        let out = Command::new("/usr/bin/custodia")
            .args(args)
            .current_dir(&work)
            .env("CUSTODIA_PASSPHRASE", "package check passphrase")
            .output()?;
        if !out.status.success() {
            bail!("custodia {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    custodia(&["wallet", "init", "--wallet", "authority"])?;
    custodia(&["wallet", "init", "--wallet", "patient"])?;
    let shown: serde_json::Value =
        serde_json::from_str(&custodia(&["wallet", "show", "--wallet", "authority", "--json"])?)?;
    let authority = shown["signing_key"].as_str().context("the authority's key")?.to_owned();
    let user = unit_field("custodia-ledger.service", "User=")?;
    let as_user = |args: &[&str]| -> Result<String> {
        let out = Command::new("runuser").args(["-u", &user, "--", "/usr/bin/custodia"]).args(args).output()?;
        if !out.status.success() {
            bail!("custodia {args:?} as {user}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    // The operator's part: a certificate, the configurations, and `init` as the services' user.
    let tls = Path::new("/etc/custodia/tls");
    fs::create_dir_all(tls)?;
    let (ca_file, cert, key) = make_test_certificate(&work, tls)?;
    let network_ca = tls.join("network-ca.pem");
    fs::copy(&ca_file, &network_ca)?;
    sh::run("chown", &["-R", &format!("root:{user}"), &tls.to_string_lossy()])?;
    sh::run("chmod", &["0750", &tls.to_string_lossy()])?;
    sh::run("chmod", &["0640", &key.to_string_lossy(), &network_ca.to_string_lossy()])?;
    let with_tls = |name: &str, port: &str| -> Result<String> {
        // The shipped configuration (the installed copy may hold an earlier check's edits), edited as an
        // operator would.
        Ok(fs::read_to_string(root.join("packaging/debian/etc").join(format!("{name}.toml")))?
            .replace(&format!("listen = \"127.0.0.1:{port}\""), "listen = \"127.0.0.1:0\"")
            .replace(
                &format!("# tls-cert = \"/etc/custodia/tls/{name}.crt\""),
                &format!("tls-cert = \"{}\"", cert.display()),
            )
            .replace(
                &format!("# tls-key = \"/etc/custodia/tls/{name}.key\""),
                &format!("tls-key = \"{}\"", key.display()),
            ))
    };
    for dir in ["/var/lib/custodia/ledger", "/var/lib/custodia/witness"] {
        if Path::new(dir).exists() {
            fs::remove_dir_all(dir)?;
        }
    }
    let init: serde_json::Value = serde_json::from_str(&as_user(&[
        "ledger",
        "init",
        "--dir",
        "/var/lib/custodia/ledger",
        "--authority",
        &authority,
        "--json",
    ])?)?;
    let log_key = init["verifier_key"].as_str().context("the ledger's key")?.to_owned();
    let made: serde_json::Value = serde_json::from_str(&as_user(&[
        "witness",
        "init",
        "--dir",
        "/var/lib/custodia/witness",
        "--name",
        "package-check.witness/w1",
        "--json",
    ])?)?;
    let witness_key = made["vkey"].as_str().context("the witness's key")?.to_owned();
    as_user(&["witness", "add-log", "--dir", "/var/lib/custodia/witness", "--vkey", &log_key])?;
    fs::write("/etc/custodia/witness.toml", with_tls("witness", "7440")?)?;

    let mut witness = Service::start("custodia-witness.service", &user)?;
    let policy = format!("log {log_key}\nwitness W1 {witness_key} {}\nquorum W1\n", witness.url);
    fs::write("/etc/custodia/witness-policy.txt", policy)?;
    sh::run("chgrp", &[&user, "/etc/custodia/witness-policy.txt"])?;
    let ledger_config = with_tls("ledger", "7420")?
        .replace("# witness-policy = ", "witness-policy = ")
        .replace("# ca-file = ", "ca-file = ");
    fs::write("/etc/custodia/ledger.toml", ledger_config)?;
    let result = Service::start("custodia-ledger.service", &user).and_then(|mut ledger| {
        let enrolled = (|| -> Result<()> {
            let url = ledger.url.clone();
            let profile = work.join("profile.txt");
            custodia(&[
                "network",
                "profile",
                "--ledger-dir",
                "/var/lib/custodia/ledger",
                "--url",
                &url,
                "--witness-policy",
                "/etc/custodia/witness-policy.txt",
                "--out",
                &profile.to_string_lossy(),
            ])?;
            let out = Command::new("/usr/bin/custodia")
                .args(["wallet", "enroll", "--wallet", "patient", "--json", "--network"])
                .arg(&profile)
                .arg("--ca-file")
                .arg(&ca_file)
                .current_dir(&work)
                .env("CUSTODIA_PASSPHRASE", "package check passphrase")
                .output()?;
            if !out.status.success() {
                bail!("enrolling with the installed ledger failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let joined: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            if joined["verifier_key_trust"] != "network-profile" || joined["witnesses"][0] != "W1" {
                bail!("the wallet did not join with the network profile: {joined}");
            }
            println!("[package] the installed ledger, cosigned by the installed witness, answered over HTTPS at {url}");
            Ok(())
        })();
        let stopped = ledger.stop();
        enrolled.and(stopped)
    });
    let stopped = witness.stop();
    result.and(stopped)
}

fn unit_field(unit: &str, key: &str) -> Result<String> {
    let text =
        fs::read_to_string(format!("/lib/systemd/system/{unit}")).with_context(|| format!("the installed {unit}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim).map(str::to_owned))
        .with_context(|| format!("{key} in {unit}"))
}

/// An installed service run by its unit's `ExecStart` as its `User`, until [`Service::stop`].
struct Service {
    unit: &'static str,
    child: std::process::Child,
    url: String,
}

impl Service {
    fn start(unit: &'static str, user: &str) -> Result<Self> {
        let exec = unit_field(unit, "ExecStart=")?;
        let argv: Vec<&str> = exec.split_whitespace().collect();
        println!("[package] starting the installed {unit} as {user}: {exec}");
        // setpriv executes the command itself (runuser would stand between it and the signal below).
        let mut child = Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .args(&argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut first = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut first)?;
        let url = match first.trim().strip_prefix("listening on ") {
            Some(url) if url.starts_with("https://") => url.to_owned(),
            _ => {
                let _ = child.kill();
                bail!("the installed {unit} printed {first:?}, not an HTTPS address");
            }
        };
        Ok(Self { unit, child, url })
    }

    /// As `systemctl stop` does: SIGTERM, and a clean exit expected within 30 s.
    fn stop(&mut self) -> Result<()> {
        sh::run("kill", &["-TERM", &self.child.id().to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.child.try_wait()? {
                Some(s) if s.success() => return Ok(()),
                Some(s) => bail!("the installed {} exited with {s} on SIGTERM", self.unit),
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = self.child.kill();
        bail!("the installed {} did not stop within 30 s of SIGTERM", self.unit)
    }
}

/// A throwaway CA and a certificate for 127.0.0.1 from it, made by the tests crate's `custodia-test-ca`: (the
/// CA file for clients, the certificate, the key).
fn make_test_certificate(work: &Path, tls: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let tool = sh::debug_dir(&sh::project_root()).join("custodia-test-ca");
    let out = Command::new(&tool).arg(tls).args(["127.0.0.1", "localhost"]).output().context("custodia-test-ca")?;
    if !out.status.success() {
        bail!("custodia-test-ca: {}", String::from_utf8_lossy(&out.stderr));
    }
    let made = String::from_utf8_lossy(&out.stdout).into_owned();
    let paths: Vec<PathBuf> = made.lines().map(PathBuf::from).collect();
    let [ca, cert, key] = paths.as_slice() else { bail!("custodia-test-ca printed {made:?}") };
    // Clients read the CA from the work folder; only the server's files stay in /etc/custodia/tls.
    let ca_file = work.join("ca.pem");
    fs::copy(ca, &ca_file)?;
    fs::remove_file(ca)?;
    Ok((ca_file, cert.clone(), key.clone()))
}
