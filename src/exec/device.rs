//! Choosing candle's device: `cpu` always; `cuda[:N]` and `metal[:N]` when qdbg was built
//! with the matching cargo feature.

use candle_core::Device;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
    Metal(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (kind, ordinal) = match s.split_once(':') {
            Some((k, n)) => (
                k,
                n.parse::<usize>()
                    .map_err(|_| format!("device ordinal '{n}' is not a number"))?,
            ),
            None => (s, 0),
        };
        match kind {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(ordinal)),
            "metal" => Ok(DeviceChoice::Metal(ordinal)),
            other => Err(format!(
                "unknown device '{other}': use cpu, cuda[:N] or metal[:N]"
            )),
        }
    }
}

/// Opens the chosen device, explaining how to get one this build lacks.
pub fn parse_device(choice: DeviceChoice) -> Result<Device> {
    let fail = |name: &str, reason: String| Error::Device {
        device: name.to_string(),
        reason,
    };
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(n) => {
            if !cfg!(feature = "cuda") {
                return Err(fail(
                    "cuda",
                    "this qdbg was built without CUDA; rebuild with `cargo build --release --features cuda`".into(),
                ));
            }
            Device::new_cuda(n).map_err(|e| fail(&format!("cuda:{n}"), e.to_string()))
        }
        DeviceChoice::Metal(n) => {
            if !cfg!(feature = "metal") {
                return Err(fail(
                    "metal",
                    "this qdbg was built without Metal; rebuild with `cargo build --release --features metal` on macOS".into(),
                ));
            }
            Device::new_metal(n).map_err(|e| fail(&format!("metal:{n}"), e.to_string()))
        }
    }
}
