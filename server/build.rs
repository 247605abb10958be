//! Embeds the dashboard into release builds: when `dist/` (the Trunk build at the workspace
//! root, or the folder named by `ACTISCOPE_EMBED_DIST`) holds an `index.html` and the profile
//! is `release`, every file under it is compiled into the binary, so `actiscope serve` needs no
//! `--dist`. Debug builds (tests, `cargo xtask run`) embed nothing and serve `--dist`.

use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-env-changed=ACTISCOPE_EMBED_DIST");
    println!("cargo:rerun-if-env-changed=PROFILE");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = std::env::var_os("ACTISCOPE_EMBED_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../dist"));
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let mut files = Vec::new();
    println!("cargo:rerun-if-changed=build.rs");
    if release && dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        files_under(&dist, &mut files)?;
        files.sort();
    } else if release {
        println!(
            "cargo:warning=no dashboard embedded: {} holds no Trunk build (run `trunk build \
             --release` first, or serve one with --dist)",
            dist.display()
        );
    }
    let mut code = String::from(
        "/// Files of the embedded dashboard: path relative to `dist/` (with `/`), bytes.\n\
         pub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        let Ok(relative) = file.strip_prefix(&dist) else {
            continue;
        };
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("embedded_dist.rs");
    std::fs::write(out, code)
}
