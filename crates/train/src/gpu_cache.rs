//! Where the GPU's autotune results and compiled kernels persist between processes, so that
//! a second run on a machine reuses what the first one measured instead of benchmarking every
//! kernel again: CubeCL's persistent cache (burn's `persistence` feature), placed in the
//! user's cache folder instead of CubeCL's default (a `target/` folder beside the outermost
//! Cargo workspace above the current folder, which an installed binary should not write into).
//!
//! The folder is `ACTISCOPE_GPU_CACHE` when set, else `$XDG_CACHE_HOME/actiscope/gpu`, else
//! `$HOME/.cache/actiscope/gpu`, else one under the system's temporary folder. A CubeCL
//! configuration file the user wrote (`cubecl.toml` or `burn.toml` in the current folder or
//! above) wins: then CubeCL reads it and this changes nothing. A cache CubeCL cannot open or
//! read costs a new measurement, never the run (CubeCL degrades to tuning again; see the
//! `gpu_cache` tests).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::cubecl::config::cache::CacheConfig;
use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The environment variable that names the cache folder.
pub const CACHE_ENV: &str = "ACTISCOPE_GPU_CACHE";

/// Where the cache goes, from the environment given (see the module's doc).
pub fn cache_dir_from(
    explicit: Option<PathBuf>,
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
        return dir;
    }
    if let Some(base) = xdg_cache_home.filter(|d| d.is_absolute()) {
        return base.join("actiscope").join("gpu");
    }
    if let Some(home) = home.filter(|d| d.is_absolute()) {
        return home.join(".cache").join("actiscope").join("gpu");
    }
    std::env::temp_dir().join("actiscope-gpu-cache")
}

/// Where the cache goes in this process.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    cache_dir_from(var(CACHE_ENV), var("XDG_CACHE_HOME"), var("HOME"))
}

/// The CubeCL configuration file found in `start` or a folder above it, if any.
pub fn user_config_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// What [`configure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSetting {
    /// The cache lives in this folder.
    Folder(PathBuf),
    /// The user's CubeCL configuration file decides.
    UserConfig(PathBuf),
    /// CubeCL was configured before this process asked (it keeps its own choice).
    AlreadyConfigured,
}

/// What [`configure`] would choose here, without configuring anything: the user's CubeCL
/// file when there is one above the current folder, else [`cache_dir`].
pub fn planned() -> CacheSetting {
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| user_config_file(&cwd))
    {
        Some(file) => CacheSetting::UserConfig(file),
        None => CacheSetting::Folder(cache_dir()),
    }
}

/// Points CubeCL's persistent cache at [`cache_dir`], once per process, before the first GPU
/// device starts; later calls return the first answer.
pub fn configure() -> &'static CacheSetting {
    static SETTING: OnceLock<CacheSetting> = OnceLock::new();
    SETTING.get_or_init(|| {
        let dir = match planned() {
            CacheSetting::Folder(dir) => dir,
            user_or_earlier => return user_or_earlier,
        };
        // CubeCL creates its database there; a folder it cannot create costs the cache only.
        let _ = std::fs::create_dir_all(&dir);
        let mut config = CubeClRuntimeConfig::default();
        config.environment.path = CacheConfig::Directory(dir.clone());
        if CubeClRuntimeConfig::try_set(config.override_from_env()) {
            CacheSetting::Folder(dir)
        } else {
            CacheSetting::AlreadyConfigured
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_comes_from_the_variable_then_xdg_then_home() {
        let explicit = Some(PathBuf::from("/srv/cache"));
        let xdg = Some(PathBuf::from("/xdg"));
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(
            cache_dir_from(explicit, xdg.clone(), home.clone()),
            PathBuf::from("/srv/cache")
        );
        assert_eq!(
            cache_dir_from(Some(PathBuf::new()), xdg.clone(), home.clone()),
            PathBuf::from("/xdg/actiscope/gpu")
        );
        assert_eq!(
            cache_dir_from(None, Some(PathBuf::from("relative")), home.clone()),
            PathBuf::from("/home/ada/.cache/actiscope/gpu"),
            "XDG says a relative path is to be ignored"
        );
        assert!(cache_dir_from(None, None, None).starts_with(std::env::temp_dir()));
    }

    #[test]
    fn a_user_config_file_above_the_folder_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(user_config_file(&nested), None);
        std::fs::write(dir.path().join("cubecl.toml"), "").unwrap();
        assert_eq!(
            user_config_file(&nested),
            Some(dir.path().join("cubecl.toml"))
        );
    }
}
