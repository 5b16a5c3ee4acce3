//! Which NVIDIA driver, CUDA runtime and cuBLAS this process runs on, for the log: read
//! from the file names of the libraries mapped into it (`libcuda.so.580.159.04`,
//! `libcudart.so.12.0.146`, `libcublas.so.12.0.2.224`) and the kernel module's
//! `/proc/driver/nvidia/version`, so nothing has to call into CUDA to find out.

use std::fmt;

/// Versions found; `None` where a library is not mapped (a CPU build, or CUDA linked
/// statically) or its file name carries no version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvidiaVersions {
    /// The driver, e.g. `580.159.04`.
    pub driver: Option<String>,
    /// The CUDA runtime library, e.g. `12.0.146`.
    pub cuda_runtime: Option<String>,
    /// cuBLAS, e.g. `12.0.2.224`.
    pub cublas: Option<String>,
}

impl NvidiaVersions {
    /// Reads this process's mapped libraries and, for the driver if its library name
    /// tells nothing, the kernel module's version file.
    pub fn of_this_process() -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mut found = Self::from_maps(&maps);
        if found.driver.is_none() {
            found.driver = std::fs::read_to_string("/proc/driver/nvidia/version")
                .ok()
                .and_then(|text| kernel_module_version(&text));
        }
        found
    }

    /// From the text of a `/proc/<pid>/maps`.
    pub fn from_maps(maps: &str) -> Self {
        let mut found = Self::default();
        for path in maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
        {
            let name = path.rsplit('/').next().unwrap_or(path);
            let slot = if let Some(v) = name.strip_prefix("libcuda.so.") {
                Some((&mut found.driver, v))
            } else if let Some(v) = name.strip_prefix("libcudart.so.") {
                Some((&mut found.cuda_runtime, v))
            } else if let Some(v) = name.strip_prefix("libcublas.so.") {
                Some((&mut found.cublas, v))
            } else {
                None
            };
            // The driver's `libcuda.so.1` says nothing; a runtime's bare major (a copy
            // named after its SONAME) is still better than nothing.
            let says_nothing = name
                .strip_prefix("libcuda.so.")
                .is_some_and(|v| !v.contains('.'));
            if let Some((slot, version)) = slot
                && !says_nothing
                && slot.as_deref().is_none_or(|old| version.len() > old.len())
            {
                *slot = Some(version.to_string());
            }
        }
        found
    }
}

/// `580.159.04` from "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue …".
fn kernel_module_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

impl fmt::Display for NvidiaVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        write!(
            f,
            "driver {}, CUDA runtime {}, cuBLAS {}",
            show(&self.driver),
            show(&self.cuda_runtime),
            show(&self.cublas)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
7f0000000000-7f0000001000 r--p 00000000 fd:01 1 /opt/ai-sandbox/0.1.0/lib/libggml-cuda.so.0
7f0000001000-7f0000002000 r--p 00000000 fd:01 2 /usr/lib/x86_64-linux-gnu/libcudart.so.12.0.146
7f0000002000-7f0000003000 r-xp 00001000 fd:01 2 /usr/lib/x86_64-linux-gnu/libcudart.so.12.0.146
7f0000003000-7f0000004000 r--p 00000000 fd:01 3 /usr/lib/x86_64-linux-gnu/libcublasLt.so.12.0.2.224
7f0000004000-7f0000005000 r--p 00000000 fd:01 4 /usr/lib/x86_64-linux-gnu/libcublas.so.12.0.2.224
7f0000005000-7f0000006000 r--p 00000000 fd:01 5 /usr/local/nvidia/lib64/libcuda.so.580.159.04
7f0000006000-7f0000007000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn versions_come_from_the_mapped_file_names() {
        let v = NvidiaVersions::from_maps(MAPS);
        assert_eq!(v.driver.as_deref(), Some("580.159.04"));
        assert_eq!(v.cuda_runtime.as_deref(), Some("12.0.146"));
        assert_eq!(v.cublas.as_deref(), Some("12.0.2.224"));
        assert_eq!(
            v.to_string(),
            "driver 580.159.04, CUDA runtime 12.0.146, cuBLAS 12.0.2.224"
        );
    }

    #[test]
    fn a_cpu_process_or_soname_copies_say_little() {
        let cpu = NvidiaVersions::from_maps("7f00-7f01 r--p 0 fd:01 1 /usr/lib/libc.so.6\n");
        assert_eq!(cpu, NvidiaVersions::default());
        assert_eq!(
            cpu.to_string(),
            "driver unknown, CUDA runtime unknown, cuBLAS unknown"
        );
        let soname_copies = NvidiaVersions::from_maps(
            "7f00-7f01 r--p 0 fd:01 1 /x/libcuda.so.1\n7f01-7f02 r--p 0 fd:01 2 /x/libcudart.so.12\n",
        );
        assert_eq!(soname_copies.driver, None);
        assert_eq!(soname_copies.cuda_runtime.as_deref(), Some("12"));
    }

    #[test]
    fn the_kernel_module_names_the_driver() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue Oct 14 07:00:00 UTC 2025\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(kernel_module_version(text).as_deref(), Some("580.159.04"));
        assert_eq!(kernel_module_version("GCC version: 12.2.0\n"), None);
    }
}
