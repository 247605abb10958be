//! `actiscope devices`: the graphics adapters wgpu sees on this machine, which of them are
//! GPUs, and what `--device auto` does here: train on flex when there is no GPU, else time a
//! few steps of the run's model on flex and on the GPU and take the faster (see
//! `actiscope_train::auto`).

use actiscope_train::device::{Adapter, adapters, gpu_device_nodes_present};

/// Arguments of `actiscope devices`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevicesArgs {
    /// Print one JSON object: `adapters` (name, backend, is_gpu), `gpu` (whether `--device
    /// auto` would consider one) and `auto` (what it does here, in words).
    #[arg(long)]
    pub json: bool,
}

/// What `--device auto` does given the GPU it would consider, for people.
fn auto_plan(gpu: Option<&Adapter>) -> String {
    match gpu {
        Some(gpu) => format!(
            "--device auto times a few training steps of each run's model on flex (CPU) and \
             on {} ({}), and trains on the faster",
            gpu.name, gpu.backend
        ),
        None => "--device auto trains on flex (CPU): no GPU adapter".to_owned(),
    }
}

/// Where the GPU's autotune results persist, for people.
fn cache_line() -> String {
    use actiscope_train::gpu_cache::{CACHE_ENV, CacheSetting, planned};
    match planned() {
        CacheSetting::UserConfig(file) => format!("GPU autotune cache: as {} says", file.display()),
        CacheSetting::Folder(dir) => format!(
            "GPU autotune cache: {} (set {CACHE_ENV} to move it)",
            dir.display()
        ),
        CacheSetting::AlreadyConfigured => "GPU autotune cache: as CubeCL was told".to_owned(),
    }
}

/// Runs `actiscope devices`.
pub fn devices(args: &DevicesArgs) -> anyhow::Result<()> {
    // Without a GPU device node, loading the Vulkan drivers only prints window-system
    // errors; a CPU adapter (lavapipe) is still listed for `--device wgpu`.
    let found = adapters();
    let gpu = found
        .iter()
        .find(|a| a.is_gpu)
        .filter(|_| gpu_device_nodes_present());
    if args.json {
        let listed: Vec<serde_json::Value> = found
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "backend": a.backend,
                    "is_gpu": a.is_gpu,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "adapters": listed,
                "gpu": gpu.is_some(),
                "auto": auto_plan(gpu),
                "gpu_cache": cache_line(),
            })
        );
        return Ok(());
    }
    if found.is_empty() {
        println!(
            "no wgpu adapter (on a machine without a GPU, Debian's mesa-vulkan-drivers adds a CPU one)"
        );
    }
    for adapter in &found {
        println!(
            "{:<4} {} ({})",
            if adapter.is_gpu { "gpu" } else { "cpu" },
            adapter.name,
            adapter.backend
        );
    }
    println!("{}", auto_plan(gpu));
    println!("{}", cache_line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_the_gpu_or_says_there_is_none() {
        assert!(auto_plan(None).contains("no GPU"));
        let h200 = Adapter {
            name: "NVIDIA H200".to_owned(),
            backend: "Vulkan".to_owned(),
            is_gpu: true,
            is_vulkan: true,
        };
        let plan = auto_plan(Some(&h200));
        assert!(
            plan.contains("NVIDIA H200") && plan.contains("faster"),
            "{plan}"
        );
    }
}
