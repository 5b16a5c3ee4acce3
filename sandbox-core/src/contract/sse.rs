//! Server-sent events as `sandbox-api` writes them and `sandbox-ui` reads them:
//! `data: JSON` events, a final `data: [DONE]`, and `: queue-position N` comments
//! (which OpenAI clients skip as comments) while a request waits.

use serde::Serialize;

/// The last event of a stream.
pub const DONE: &str = "data: [DONE]\n\n";

const QUEUE_POSITION: &str = ": queue-position ";

/// One `data:` event.
pub fn data(value: &impl Serialize) -> String {
    format!(
        "data: {}\n\n",
        serde_json::to_string(value).unwrap_or_else(|_| "null".into())
    )
}

/// The comment that tells a waiting client how many requests are ahead of it.
pub fn queue_position(ahead: usize) -> String {
    format!("{QUEUE_POSITION}{ahead}\n\n")
}

/// What one line of a stream means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A `data:` event's JSON text.
    Data(String),
    /// `data: [DONE]`.
    Done,
    /// `: queue-position N`.
    QueuePosition(usize),
}

/// Splits a byte stream into [`Line`]s, whatever the chunking.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    /// Adds bytes; returns the lines of every event completed by them (other lines,
    /// such as other comments, are skipped).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
            for line in String::from_utf8_lossy(&event).lines() {
                if let Some(n) = line.strip_prefix(QUEUE_POSITION) {
                    if let Ok(n) = n.trim().parse() {
                        out.push(Line::QueuePosition(n));
                    }
                } else if let Some(d) = line.strip_prefix("data: ") {
                    out.push(if d == "[DONE]" {
                        Line::Done
                    } else {
                        Line::Data(d.to_owned())
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_in_any_chunking() {
        let written = [
            queue_position(2),
            data(&serde_json::json!({"a": "x\n\ny"})),
            DONE.to_owned(),
        ]
        .concat();
        let expected = vec![
            Line::QueuePosition(2),
            Line::Data(r#"{"a":"x\n\ny"}"#.into()),
            Line::Done,
        ];
        for size in [1, 2, 5, written.len()] {
            let mut d = Decoder::default();
            let got: Vec<Line> = written
                .as_bytes()
                .chunks(size)
                .flat_map(|c| d.push(c))
                .collect();
            assert_eq!(got, expected, "chunks of {size}");
        }
    }
}
