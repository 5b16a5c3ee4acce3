//! llama.cpp's quantizer through llama-sys: the output loads and generates.

mod common;

use sandbox_core::diagnostics::{GgufShape, Quant, quantize};
use sandbox_core::{Engine, EngineConfig, JobRequest, Limits, Prompt, SamplingParams};

#[test]
fn q8_0_quantization_loads_and_generates() {
    let input = common::tiny_mistral();
    let out = std::env::temp_dir().join(format!("tiny-q8-{}.gguf", std::process::id()));
    quantize(&input, &out, Quant::Q8_0, 2).unwrap();
    let (f16, q8) = (
        std::fs::metadata(&input).unwrap().len(),
        std::fs::metadata(&out).unwrap().len(),
    );
    assert!(
        q8 < f16 * 3 / 4,
        "Q8_0 ({q8} B) must be smaller than F16 ({f16} B)"
    );
    assert_eq!(GgufShape::read(&out).unwrap().n_layer, 2);
    let engine = Engine::start(&EngineConfig {
        model_path: out.clone(),
        n_ctx: 256,
        n_threads: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let done = engine
        .submit(JobRequest {
            prompt: Prompt::Text("Hello".into()),
            sampling: SamplingParams::greedy(),
            limits: Limits {
                max_tokens: Some(4),
                ignore_eos: true,
                ..Limits::default()
            },
            logprobs: None,
        })
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.usage.completion_tokens, 4);
    let _ = std::fs::remove_file(out);
    assert!(Quant::parse("q4_k_m").is_some() && Quant::parse("Q3").is_none());
}
