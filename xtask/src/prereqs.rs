//! Installs what a fresh machine lacks, from the Rust crate registry and Debian's packages only.

use std::process::Command;

use anyhow::{Context, bail};

use crate::shell::{cargo, output_of, repo_root, run};

/// Trunk release known to work offline with this toolchain (0.22 needs a newer rustc).
pub const TRUNK_VERSION: &str = "0.21.14";

/// The wasm-bindgen version pinned in Cargo.lock; the CLI must match it exactly.
pub fn locked_wasm_bindgen_version() -> anyhow::Result<String> {
    let lock_path = repo_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    bail!("Cargo.lock names no wasm-bindgen version")
}

/// The rustup target for the dashboard.
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = output_of("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// `version` if `program --version` prints it, else `None`.
fn installed_version(program: &str) -> Option<String> {
    let text = output_of(program, &["--version"])?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// Trunk at [`TRUNK_VERSION`] (a debug build: it only shuffles files, and builds in half the time).
pub fn ensure_trunk() -> anyhow::Result<()> {
    if installed_version("trunk").as_deref() == Some(TRUNK_VERSION) {
        return Ok(());
    }
    println!("installing trunk {TRUNK_VERSION} from crates.io (a few minutes, once)");
    run(cargo().args([
        "install",
        "trunk",
        "--version",
        TRUNK_VERSION,
        "--locked",
        "--debug",
    ]))
}

/// wasm-bindgen-cli at exactly the version in Cargo.lock. Its own lockfile names a crate
/// version the registry no longer serves, so it is installed without `--locked`.
pub fn ensure_wasm_bindgen() -> anyhow::Result<()> {
    let wanted = locked_wasm_bindgen_version()?;
    if installed_version("wasm-bindgen").as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    println!("installing wasm-bindgen-cli {wanted} from crates.io (a few minutes, once)");
    run(cargo().args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &wanted,
        "--debug",
        "--force",
    ]))
}

/// Debian packages, installed with apt-get when the file each one provides is missing.
pub fn ensure_debian(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(path, _)| !std::path::Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    install_debian(&missing)
}

/// Installs the Debian packages `packages` with apt-get (as root, or through password-less
/// sudo); nothing when the list is empty.
fn install_debian(missing: &[&str]) -> anyhow::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing Debian packages: {}", missing.join(" "));
    let is_root = output_of("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if is_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(missing);
    run(&mut install).context("installing Debian packages (needs root or password-less sudo)")
}

/// A `python3` that can make a venv with pip (Debian ships `ensurepip` in `python3-venv`):
/// installed from Debian when missing; the packages themselves come from PyPI into the venv.
pub fn ensure_python_venv() -> anyhow::Result<()> {
    let works = Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Ok(());
    }
    install_debian(&["python3", "python3-venv"])
}

/// Everything `cargo xtask run` needs.
pub fn ensure_for_run() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    ensure_trunk()
}

/// Everything `cargo xtask test` needs: what `run` needs, the browser and its driver, Mesa's
/// Vulkan software driver so the wgpu path can be tested without a GPU, a Python that makes
/// venvs (for the Python writer's round trip) and PostgreSQL (the store's second engine).
pub fn ensure_for_test() -> anyhow::Result<()> {
    ensure_for_run()?;
    ensure_debian(&[
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        (
            "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
            "mesa-vulkan-drivers",
        ),
        ("/usr/lib/x86_64-linux-gnu/libvulkan.so.1", "libvulkan1"),
    ])?;
    ensure_python_venv()?;
    ensure_postgresql()
}

/// Debian's PostgreSQL server binaries (`/usr/lib/postgresql/<version>/bin/initdb`, the
/// version depending on the release), for the tests that start a throw-away server.
pub fn ensure_postgresql() -> anyhow::Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .filter_map(Result::ok)
                .any(|version| version.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    install_debian(&["postgresql"])
}
