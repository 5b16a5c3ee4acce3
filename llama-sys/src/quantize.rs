use std::ffi::CString;
use std::path::Path;

use crate::LlamaError;
use crate::backend::backend;

/// Quantization types offered for Mistral-7B (those its public conversions ship).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// 4-bit k-quant, medium.
    Q4KM,
    /// 5-bit k-quant, medium.
    Q5KM,
    /// 6-bit k-quant.
    Q6K,
    /// 8-bit.
    Q8_0,
}

impl Quant {
    /// Parses `Q4_K_M`, `Q5_K_M`, `Q6_K` or `Q8_0` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "Q4_K_M" => Some(Self::Q4KM),
            "Q5_K_M" => Some(Self::Q5KM),
            "Q6_K" => Some(Self::Q6K),
            "Q8_0" => Some(Self::Q8_0),
            _ => None,
        }
    }

    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            Self::Q4KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            Self::Q5KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q5_K_M,
            Self::Q6K => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q6_K,
            Self::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
        }
    }
}

/// Quantizes a GGUF file with llama.cpp's own quantizer (what `llama-quantize` does).
pub fn quantize(input: &Path, output: &Path, quant: Quant, threads: u32) -> Result<(), LlamaError> {
    backend()?;
    if !input.is_file() {
        return Err(LlamaError::ModelNotFound(input.to_path_buf()));
    }
    let c = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| LlamaError::Tokenize(format!("unusable path {}", p.display())))
    };
    let (inp, out) = (c(input)?, c(output)?);
    // SAFETY: plain C calls; the parameter struct comes from llama.cpp's own defaults and
    // both strings outlive the call.
    let rc = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.ftype = quant.ftype();
        params.nthread = i32::try_from(threads).unwrap_or(0);
        llama_cpp_sys_2::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(LlamaError::LoadFailed(input.to_path_buf()))
    }
}
