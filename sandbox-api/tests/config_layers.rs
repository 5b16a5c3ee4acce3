//! Every documented setting of `sandbox-api` at each layer: the default, then the file
//! key, then the environment variable, then the flag (`sandbox-api config` prints what
//! the server would run with).

use std::path::Path;

use sandbox_core::config_file::testing::{Setting, check_all_layers, shown};

const Q4: &str = "\"Mistral-7B-Instruct-v0.3-Q4_K_M.gguf\"";

const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        env: "SANDBOX_LISTEN",
        flag: &["--listen", "127.0.0.1:9003"],
        file: "\"127.0.0.1:9001\"",
        env_value: "127.0.0.1:9002",
        expect: [
            "\"127.0.0.1:8080\"",
            "\"127.0.0.1:9001\"",
            "\"127.0.0.1:9002\"",
            "\"127.0.0.1:9003\"",
        ],
    },
    Setting {
        key: "model_id",
        env: "SANDBOX_MODEL_ID",
        flag: &["--model-id", "c"],
        file: "\"a\"",
        env_value: "b",
        expect: ["", "\"a\"", "\"b\"", "\"c\""],
    },
    // Keys add up: the file's, then the variable's or (clap: instead) the flag's.
    Setting {
        key: "api_keys",
        env: "SANDBOX_API_KEYS",
        flag: &["--api-key", "d"],
        file: "[\"a\"]",
        env_value: "b,c",
        expect: [
            "[]",
            "[\"(1 hidden)\"]",
            "[\"(3 hidden)\"]",
            "[\"(2 hidden)\"]",
        ],
    },
    Setting {
        key: "api_key_file",
        env: "SANDBOX_API_KEY_FILE",
        flag: &["--api-key-file", "{dir}/k3"],
        file: "\"{dir}/k1\"",
        env_value: "{dir}/k2",
        expect: ["", "\"{dir}/k1\"", "\"{dir}/k2\"", "\"{dir}/k3\""],
    },
    Setting {
        key: "allow_open",
        env: "SANDBOX_ALLOW_OPEN",
        flag: &["--allow-open"],
        file: "false",
        env_value: "true",
        expect: ["false", "false", "true", "true"],
    },
    Setting {
        key: "strict_model_ids",
        env: "SANDBOX_STRICT_MODEL_IDS",
        flag: &["--strict-model-ids"],
        file: "false",
        env_value: "true",
        expect: ["false", "false", "true", "true"],
    },
    Setting {
        key: "max_body_bytes",
        env: "",
        flag: &[],
        file: "1000",
        env_value: "",
        expect: ["4194304", "1000", "1000", "1000"],
    },
    Setting {
        key: "shutdown_grace_seconds",
        env: "",
        flag: &[],
        file: "3",
        env_value: "",
        expect: ["10", "3", "3", "3"],
    },
    Setting {
        key: "hub.repo",
        env: "SANDBOX_HF_REPO",
        flag: &["--hf-repo", "o/c"],
        file: "\"o/a\"",
        env_value: "o/b",
        expect: [
            "\"bartowski/Mistral-7B-Instruct-v0.3-GGUF\"",
            "\"o/a\"",
            "\"o/b\"",
            "\"o/c\"",
        ],
    },
    Setting {
        key: "hub.file",
        env: "SANDBOX_HF_FILE",
        flag: &["--hf-file", "c.gguf"],
        file: "\"a.gguf\"",
        env_value: "b.gguf",
        expect: [Q4, "\"a.gguf\"", "\"b.gguf\"", "\"c.gguf\""],
    },
    // `--quant` names the file of the default repository.
    Setting {
        key: "hub.file",
        env: "SANDBOX_QUANT",
        flag: &["--quant", "Q6_K"],
        file: "\"a.gguf\"",
        env_value: "q8_0",
        expect: [
            Q4,
            "\"a.gguf\"",
            "\"Mistral-7B-Instruct-v0.3-Q8_0.gguf\"",
            "\"Mistral-7B-Instruct-v0.3-Q6_K.gguf\"",
        ],
    },
    Setting {
        key: "hub.revision",
        env: "SANDBOX_HF_REVISION",
        flag: &["--hf-revision", "c"],
        file: "\"a\"",
        env_value: "b",
        expect: ["\"main\"", "\"a\"", "\"b\"", "\"c\""],
    },
    Setting {
        key: "hub.sha256",
        env: "SANDBOX_HF_SHA256",
        flag: &["--hf-sha256", "CC"],
        file: "\"AA\"",
        env_value: "bb",
        expect: ["", "\"aa\"", "\"bb\"", "\"cc\""],
    },
    Setting {
        key: "engine.model_path",
        env: "SANDBOX_MODEL",
        flag: &["--model", "/m/c.gguf"],
        file: "\"/m/a.gguf\"",
        env_value: "/m/b.gguf",
        expect: ["\"\"", "\"/m/a.gguf\"", "\"/m/b.gguf\"", "\"/m/c.gguf\""],
    },
    Setting {
        key: "engine.n_ctx",
        env: "SANDBOX_CTX",
        flag: &["--ctx", "3000"],
        file: "1000",
        env_value: "2000",
        expect: ["8192", "1000", "2000", "3000"],
    },
    Setting {
        key: "engine.n_batch",
        env: "",
        flag: &[],
        file: "64",
        env_value: "",
        expect: ["512", "64", "64", "64"],
    },
    Setting {
        key: "engine.n_threads",
        env: "SANDBOX_THREADS",
        flag: &["--threads", "3"],
        file: "1",
        env_value: "2",
        expect: ["0", "1", "2", "3"],
    },
    Setting {
        key: "engine.gpu_layers",
        env: "SANDBOX_GPU_LAYERS",
        flag: &["--gpu-layers", "3"],
        file: "1",
        env_value: "2",
        expect: ["", "1", "2", "3"],
    },
    Setting {
        key: "engine.queue_capacity",
        env: "SANDBOX_QUEUE_CAPACITY",
        flag: &["--queue-capacity", "3"],
        file: "1",
        env_value: "2",
        expect: ["32", "1", "2", "3"],
    },
    Setting {
        key: "engine.chat_template_file",
        env: "SANDBOX_CHAT_TEMPLATE_FILE",
        flag: &["--chat-template-file", "/t/c.jinja"],
        file: "\"/t/a.jinja\"",
        env_value: "/t/b.jinja",
        expect: ["", "\"/t/a.jinja\"", "\"/t/b.jinja\"", "\"/t/c.jinja\""],
    },
    Setting {
        key: "engine.draft_tokens",
        env: "SANDBOX_DRAFT_TOKENS",
        flag: &["--draft-tokens", "3"],
        file: "1",
        env_value: "2",
        expect: ["", "1", "2", "3"],
    },
    Setting {
        key: "engine.cuda_op_fusion",
        env: "SANDBOX_CUDA_OP_FUSION",
        flag: &["--cuda-op-fusion"],
        file: "false",
        env_value: "true",
        expect: ["false", "false", "true", "true"],
    },
];

#[test]
fn every_setting_wins_over_the_layer_below_it() {
    let failures = check_all_layers(Path::new(env!("CARGO_BIN_EXE_sandbox-api")), SETTINGS);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_file_may_be_named_by_its_variable_and_unknown_keys_are_refused() {
    let dir = std::env::temp_dir().join(format!("api-layers-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("api.toml");
    std::fs::write(&file, "[engine]\nn_ctx = 77\n").expect("write");
    let bin = Path::new(env!("CARGO_BIN_EXE_sandbox-api"));
    let path = file.to_string_lossy().into_owned();
    let table = shown(bin, None, &[("SANDBOX_CONFIG", &path)], &[]).expect("config");
    let ctx = table.get("engine").and_then(|e| e.get("n_ctx"));
    assert_eq!(ctx.and_then(toml::Value::as_integer), Some(77));
    std::fs::write(&file, "[engine]\nn_ctxx = 77\n").expect("write");
    let err = shown(bin, Some(&file), &[], &[]).expect_err("unknown key");
    assert!(err.contains("n_ctxx") && err.contains("api.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
