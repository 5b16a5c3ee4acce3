use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::pin::pin;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::params::kv_overrides::ParamOverrideValue;
use llama_cpp_2::token::LlamaToken;

use crate::backend::backend;
use crate::session::{Session, SessionParams};
use crate::{LlamaError, TokenId};

const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// How to load a model.
#[derive(Debug, Clone)]
pub struct ModelParams {
    /// Layers to offload to the GPU; `None` means all of them when the build has a GPU
    /// backend, none otherwise.
    pub gpu_layers: Option<u32>,
    /// Map the file instead of reading it (faster start, shared page cache).
    pub use_mmap: bool,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            gpu_layers: None,
            use_mmap: true,
        }
    }
}

/// A special (control) token: its id and its text in prompts, e.g. `[INST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    /// Token id.
    pub id: TokenId,
    /// The text that stands for it in a chat template.
    pub text: String,
}

/// What the GGUF file says about the model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Number of transformer layers.
    pub n_layer: u32,
    /// Parameter count.
    pub n_params: u64,
    /// Size of all tensors in bytes.
    pub size_bytes: u64,
    /// Beginning-of-sequence token, if the vocabulary has one.
    pub bos: Option<SpecialToken>,
    /// End-of-sequence token, if the vocabulary has one.
    pub eos: Option<SpecialToken>,
    /// Every token that ends a generation (EOS, EOT, ...).
    pub end_of_generation: Vec<TokenId>,
    /// All control tokens with their prompt text.
    pub special_tokens: Vec<SpecialToken>,
    /// Whether the tokenizer puts BOS in front of a prompt.
    pub add_bos: bool,
    /// Whether the tokenizer is SentencePiece-style and marks the first word with a
    /// leading space (`tokenizer.ggml.add_space_prefix`).
    pub add_space_prefix: bool,
    /// The Jinja chat template stored in the file (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// The weights' quantization (`Q4_K_M`, …) from `general.file_type`, when the file
    /// has one that llama.cpp names.
    pub quantization: Option<String>,
}

/// A loaded GGUF model: weights, tokenizer and metadata. Immutable and shareable.
#[derive(Debug)]
pub struct Model {
    pub(crate) inner: LlamaModel,
    info: ModelInfo,
    path: PathBuf,
    on_gpu: bool,
}

impl Model {
    /// Loads a GGUF file.
    ///
    /// The tokenizer's automatic space prefix is switched off while loading: llama.cpp
    /// would otherwise put an extra space in front of the text after every special token
    /// (`[INST] Hello` would become `[INST]  Hello`), which is not what the model was
    /// trained on. [`Model::tokenize`] restores the prefix for plain text.
    pub fn load(path: &Path, params: &ModelParams) -> Result<Self, LlamaError> {
        let backend = backend()?;
        if !path.is_file() {
            return Err(LlamaError::ModelNotFound(path.to_path_buf()));
        }
        let gpu_layers = match params.gpu_layers {
            Some(n) => n,
            None if backend.supports_gpu_offload() => u32::MAX,
            None => 0,
        };
        let mut lparams = pin!(
            LlamaModelParams::default()
                .with_n_gpu_layers(gpu_layers)
                .with_use_mmap(params.use_mmap)
        );
        let key =
            CString::new(KEY_ADD_SPACE_PREFIX).map_err(|e| LlamaError::Backend(e.to_string()))?;
        lparams
            .as_mut()
            .append_kv_override(&key, ParamOverrideValue::Bool(false));
        let inner = LlamaModel::load_from_file(backend, path, &lparams)
            .map_err(|_| LlamaError::LoadFailed(path.to_path_buf()))?;
        let info = read_info(&inner);
        tracing::info!(
            path = %path.display(),
            name = info.name.as_deref().unwrap_or("-"),
            arch = %info.architecture,
            params = info.n_params,
            size_bytes = info.size_bytes,
            n_ctx_train = info.n_ctx_train,
            gpu_layers = gpu_layers.min(info.n_layer + 1),
            "model loaded"
        );
        Ok(Self {
            inner,
            info,
            path: path.to_path_buf(),
            on_gpu: gpu_layers > 0 && backend.supports_gpu_offload(),
        })
    }

    /// Whether any of the model's layers run on a GPU.
    pub fn on_gpu(&self) -> bool {
        self.on_gpu
    }

    /// The model's metadata.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokenizes plain text exactly as the model's reference tokenizer would: with the
    /// SentencePiece space prefix where the model uses one, special-token text treated
    /// as ordinary text, and BOS in front when `add_bos` is set and the model uses BOS.
    pub fn tokenize(&self, text: &str, add_bos: bool) -> Result<Vec<TokenId>, LlamaError> {
        let prefixed;
        let text = if self.info.add_space_prefix && !text.is_empty() {
            prefixed = format!(" {text}");
            &prefixed
        } else {
            text
        };
        self.tokenize_raw(text, add_bos, false)
    }

    /// Tokenizes a rendered chat prompt: special-token text such as `[INST]` or `<s>`
    /// becomes the special token, and no space prefix is added anywhere (the template
    /// already wrote every space the model expects).
    pub fn tokenize_prompt(&self, text: &str) -> Result<Vec<TokenId>, LlamaError> {
        self.tokenize_raw(text, false, true)
    }

    /// Tokenizes one piece of a prompt between control tokens, as llama.cpp tokenizes
    /// each such piece of a whole prompt, but with control-token text left as text.
    pub fn tokenize_fragment(&self, text: &str) -> Result<Vec<TokenId>, LlamaError> {
        self.tokenize_raw(text, false, false)
    }

    fn tokenize_raw(
        &self,
        text: &str,
        add_bos: bool,
        special: bool,
    ) -> Result<Vec<TokenId>, LlamaError> {
        if text.contains('\0') {
            return Err(LlamaError::Tokenize("text contains a NUL character".into()));
        }
        if i32::try_from(text.len()).is_err() {
            return Err(LlamaError::Tokenize(format!(
                "text of {} bytes is too long",
                text.len()
            )));
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if let Some(bos) = self
            .info
            .bos
            .as_ref()
            .filter(|_| add_bos && self.info.add_bos)
        {
            out.push(bos.id);
        }
        out.extend(
            self.inner
                .vocab()
                .tokenize(text.as_bytes(), false, special)
                .into_iter()
                .map(|t| t.0),
        );
        Ok(out)
    }

    /// The raw bytes of one token. With `special`, control tokens render as their text
    /// (`</s>`); without, as nothing.
    pub fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>, LlamaError> {
        self.check_token(token)?;
        Ok(self
            .inner
            .vocab()
            .token_to_piece(LlamaToken(token), special, None))
    }

    /// Decodes a whole token sequence to text (control tokens omitted).
    pub fn detokenize(&self, tokens: &[TokenId]) -> Result<String, crate::LlamaError> {
        let mut decoder = crate::PieceDecoder::new(self.info.add_space_prefix);
        let mut text = String::new();
        for &t in tokens {
            text.push_str(&decoder.push(&self.token_bytes(t, false)?));
        }
        text.push_str(&decoder.finish());
        Ok(text)
    }

    /// Whether `token` ends a generation (EOS, EOT, ...).
    pub fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.info.end_of_generation.contains(&token)
    }

    /// Checks that `token` is in the vocabulary.
    pub fn check_token(&self, token: TokenId) -> Result<(), LlamaError> {
        if token < 0 || token as u32 >= self.info.n_vocab {
            return Err(LlamaError::InvalidToken {
                id: token,
                n_vocab: self.info.n_vocab,
            });
        }
        Ok(())
    }

    /// Whether a session's cache can drop its last tokens (a rejected draft): not for
    /// recurrent or hybrid models, whose state has no positions to cut.
    pub fn can_drop_cache_tail(&self) -> bool {
        !self.inner.is_recurrent() && !self.inner.is_hybrid()
    }

    /// Creates an inference session (context + KV cache) on this model.
    pub fn session(&self, params: &SessionParams) -> Result<Session<'_>, LlamaError> {
        Session::new(self, params)
    }
}

/// llama.cpp's names of its file types (`enum llama_ftype`; the gaps are types it
/// removed).
fn file_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        _ => return None,
    })
}

fn read_info(m: &LlamaModel) -> ModelInfo {
    let vocab = m.vocab();
    let n_vocab = u32::try_from(m.n_vocab()).unwrap_or(0);
    let meta = |key: &str| m.meta_val_str(key).ok();
    let text_of = |t: LlamaToken| {
        vocab
            .text(t)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let special = |t: LlamaToken| {
        (t.0 >= 0 && (t.0 as u32) < n_vocab).then(|| SpecialToken {
            id: t.0,
            text: text_of(t),
        })
    };
    let mut special_tokens = Vec::new();
    let mut end_of_generation = Vec::new();
    for t in vocab.tokens() {
        if vocab.is_eog(t) {
            end_of_generation.push(t.0);
        }
        if vocab.is_control(t) {
            special_tokens.push(SpecialToken {
                id: t.0,
                text: text_of(t),
            });
        }
    }
    let is_spm = matches!(vocab.vocab_type(), llama_cpp_2::vocab::VocabType::SPM);
    let add_space_prefix = meta(KEY_ADD_SPACE_PREFIX).map_or(is_spm, |v| v == "true");
    ModelInfo {
        name: meta("general.name"),
        architecture: meta("general.architecture").unwrap_or_default(),
        n_ctx_train: m.n_ctx_train(),
        n_vocab,
        n_layer: m.n_layer(),
        n_params: m.n_params(),
        size_bytes: m.size(),
        quantization: meta("general.file_type")
            .and_then(|t| t.parse().ok())
            .and_then(file_type_name)
            .map(str::to_owned),
        bos: special(vocab.bos()),
        eos: special(vocab.eos()),
        end_of_generation,
        special_tokens,
        add_bos: vocab.should_add_bos(),
        add_space_prefix,
        chat_template: m.chat_template(None).ok().and_then(|t| t.to_string().ok()),
    }
}
