//! Choosing where to train: a real GPU through wgpu when one exists, else flex on the CPU.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, DeviceKind};

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceChoice {
    /// A real GPU adapter if there is one, else flex.
    Auto,
    /// wgpu on whatever graphics API the platform offers (may be a CPU adapter such as lavapipe).
    Wgpu,
    /// wgpu pinned to Vulkan.
    Vulkan,
    /// Flex, burn's pure-Rust CPU backend.
    Flex,
}

impl DeviceChoice {
    /// Parses `auto`, `wgpu`, `vulkan` or `flex`.
    pub fn parse(text: &str) -> Result<Self, DeviceError> {
        match text {
            "auto" => Ok(Self::Auto),
            "wgpu" => Ok(Self::Wgpu),
            "vulkan" => Ok(Self::Vulkan),
            "flex" => Ok(Self::Flex),
            other => Err(DeviceError::Unknown(other.to_owned())),
        }
    }
}

/// Errors choosing a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Not one of the known names.
    #[error("unknown device `{0}`: use auto, wgpu, vulkan or flex")]
    Unknown(String),
    /// wgpu could not initialise the adapter.
    #[error("cannot initialise {0}")]
    Init(String),
    /// wgpu found no adapter of the kind asked for.
    #[error(
        "no {0} adapter found (on a machine without a GPU, Debian's mesa-vulkan-drivers provides a CPU one)"
    )]
    NoAdapter(&'static str),
}

/// One graphics adapter wgpu can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// Its name, e.g. `NVIDIA H100` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API, e.g. `Vulkan`.
    pub backend: String,
    /// Whether it is a real GPU (discrete, integrated or virtual) rather than a CPU rasteriser.
    pub is_gpu: bool,
    /// Whether it runs on Vulkan.
    pub is_vulkan: bool,
}

/// The adapters wgpu can see on this machine through the APIs burn trains on (Vulkan, Metal,
/// DX12; not OpenGL, whose EGL probing only prints errors on a headless machine).
pub fn adapters() -> Vec<Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let found =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    found
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            Adapter {
                name: info.name,
                backend: format!("{:?}", info.backend),
                is_gpu: matches!(
                    info.device_type,
                    wgpu::DeviceType::DiscreteGpu
                        | wgpu::DeviceType::IntegratedGpu
                        | wgpu::DeviceType::VirtualGpu
                ),
                is_vulkan: info.backend == wgpu::Backend::Vulkan,
            }
        })
        .collect()
}

/// A device ready to train on, with a description for people.
#[derive(Debug, Clone)]
pub struct ChosenDevice {
    /// The burn device (without autodiff).
    pub device: Device,
    /// What was chosen and why, e.g. `wgpu: NVIDIA H100 (Vulkan)` or `flex (CPU; no GPU found)`.
    pub description: String,
    /// `wgpu`, `vulkan` or `flex`.
    pub backend: DeviceChoice,
}

/// Resolves `choice` on this machine.
pub fn choose(choice: DeviceChoice) -> Result<ChosenDevice, DeviceError> {
    let flex = |why: &str| ChosenDevice {
        device: Device::flex(),
        description: format!("flex (CPU{why})"),
        backend: DeviceChoice::Flex,
    };
    match choice {
        DeviceChoice::Flex => Ok(flex("")),
        DeviceChoice::Auto => {
            // Without a GPU device node there is no GPU to find, and loading the Vulkan
            // drivers only to learn that prints window-system errors: answer quietly.
            if !gpu_device_nodes_present() {
                return Ok(flex("; no GPU device in /dev/dri or /dev/nvidia*"));
            }
            let all = adapters();
            match all.iter().find(|a| a.is_gpu) {
                Some(gpu) => wgpu_device(gpu, false),
                None => Ok(flex("; no GPU adapter found")),
            }
        }
        DeviceChoice::Wgpu => {
            let all = adapters();
            let best = all.iter().find(|a| a.is_gpu).or_else(|| all.first());
            best.map(|a| wgpu_device(a, false))
                .ok_or(DeviceError::NoAdapter("wgpu"))?
        }
        DeviceChoice::Vulkan => {
            let all = adapters();
            let vulkan: Vec<&Adapter> = all.iter().filter(|a| a.is_vulkan).collect();
            let best = vulkan.iter().find(|a| a.is_gpu).or_else(|| vulkan.first());
            best.map(|a| wgpu_device(a, true))
                .ok_or(DeviceError::NoAdapter("Vulkan"))?
        }
    }
}

/// Whether this machine has a device node a GPU driver would use: on Linux a render node
/// (`/dev/dri/renderD*`), an NVIDIA device (`/dev/nvidia0`) or AMD's compute node
/// (`/dev/kfd`). Elsewhere nothing is known without asking the drivers, so `true`.
pub fn gpu_device_nodes_present() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let render_node = std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
    });
    render_node
        || std::path::Path::new("/dev/nvidia0").exists()
        || std::path::Path::new("/dev/kfd").exists()
}

/// Vulkan-pinned devices initialised so far: a runtime can be initialised only once per
/// process, later runs reuse it.
fn vulkan_devices() -> &'static Mutex<HashMap<bool, Device>> {
    static DEVICES: OnceLock<Mutex<HashMap<bool, Device>>> = OnceLock::new();
    DEVICES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn wgpu_device(adapter: &Adapter, pin_vulkan: bool) -> Result<ChosenDevice, DeviceError> {
    // Before the first GPU device starts: autotune results persist between processes.
    crate::gpu_cache::configure();
    // A CPU rasteriser is only picked by wgpu's default selection when nothing else exists,
    // so ask for it explicitly.
    let kind = if adapter.is_gpu {
        DeviceKind::DefaultDevice
    } else {
        DeviceKind::Cpu
    };
    let (device, backend) = if pin_vulkan {
        let mut cache = vulkan_devices().lock().map_err(|_| {
            DeviceError::Init("Vulkan (an earlier initialisation panicked)".to_owned())
        })?;
        let device = match cache.get(&adapter.is_gpu) {
            Some(device) => device.clone(),
            None => {
                let device = Device::wgpu_options()
                    .device_kind(kind)
                    .graphics_api(WgpuBackend::Vulkan)
                    .init()
                    .map_err(|e| DeviceError::Init(format!("Vulkan on {}: {e:?}", adapter.name)))?;
                cache.insert(adapter.is_gpu, device.clone());
                device
            }
        };
        (device, DeviceChoice::Vulkan)
    } else {
        (Device::wgpu(kind), DeviceChoice::Wgpu)
    };
    Ok(ChosenDevice {
        device,
        description: format!(
            "{}: {} ({})",
            if pin_vulkan { "vulkan" } else { "wgpu" },
            adapter.name,
            adapter.backend
        ),
        backend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!(DeviceChoice::parse("auto"), Ok(DeviceChoice::Auto));
        assert_eq!(DeviceChoice::parse("flex"), Ok(DeviceChoice::Flex));
        let err = DeviceChoice::parse("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("flex"), "{err}");
    }

    #[test]
    fn auto_picks_a_gpu_exactly_when_one_exists() {
        let has_gpu = adapters().iter().any(|a| a.is_gpu);
        let chosen = choose(DeviceChoice::Auto).unwrap();
        if has_gpu {
            assert_eq!(chosen.backend, DeviceChoice::Wgpu, "{}", chosen.description);
        } else {
            assert_eq!(chosen.backend, DeviceChoice::Flex);
            assert!(
                chosen.description.contains("no GPU"),
                "{}",
                chosen.description
            );
        }
    }
}
