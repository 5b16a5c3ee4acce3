/// Turns a stream of token pieces (raw bytes) into text without ever splitting a UTF-8
/// character: bytes of an incomplete character are held back until the next piece
/// completes it. Invalid bytes become U+FFFD rather than being dropped.
#[derive(Debug, Default)]
pub struct PieceDecoder {
    pending: Vec<u8>,
    strip_leading_space: bool,
    emitted_any: bool,
}

impl PieceDecoder {
    /// A decoder; with `strip_leading_space` the first character of the stream is dropped
    /// if it is a space (SentencePiece models mark word starts with a space, and the
    /// reference decoders drop the one in front of the first word).
    pub fn new(strip_leading_space: bool) -> Self {
        Self {
            pending: Vec::new(),
            strip_leading_space,
            emitted_any: false,
        }
    }

    /// Feeds one piece and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, piece: &[u8]) -> String {
        self.pending.extend_from_slice(piece);
        let complete = complete_prefix_len(&self.pending);
        let bytes: Vec<u8> = self.pending.drain(..complete).collect();
        self.emit(&bytes)
    }

    /// Returns whatever is still held back (an incomplete character at end of stream
    /// becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let bytes = std::mem::take(&mut self.pending);
        self.emit(&bytes)
    }

    /// Bytes held back because they do not yet form a complete character.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn emit(&mut self, bytes: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if !self.emitted_any && !text.is_empty() {
            self.emitted_any = true;
            if self.strip_leading_space && text.starts_with(' ') {
                text.remove(0);
            }
        }
        text
    }
}

/// Length of the longest prefix that does not end inside an incomplete (but so far
/// valid) UTF-8 sequence.
fn complete_prefix_len(bytes: &[u8]) -> usize {
    // A UTF-8 character is at most 4 bytes: only the last 3 can be an unfinished one.
    let start = bytes.len().saturating_sub(3);
    for i in (start..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let width = match b {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1, // invalid lead byte: let the lossy conversion replace it now
        };
        return if i + width > bytes.len() {
            i
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_characters_split_across_pieces_are_joined() {
        let rocket = "🚀".as_bytes();
        let mut d = PieceDecoder::new(false);
        assert_eq!(d.push(b"go "), "go ");
        assert_eq!(d.push(&rocket[..1]), "");
        assert_eq!(d.push(&rocket[1..3]), "");
        assert_eq!(d.pending_len(), 3);
        assert_eq!(d.push(&rocket[3..]), "🚀");
        assert_eq!(d.push("é!".as_bytes()), "é!");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn truncated_character_at_end_becomes_replacement() {
        let mut d = PieceDecoder::new(false);
        assert_eq!(d.push(&"é".as_bytes()[..1]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    #[test]
    fn invalid_bytes_are_replaced_not_held() {
        let mut d = PieceDecoder::new(false);
        assert_eq!(d.push(&[0xFF, b'a']), "\u{FFFD}a");
    }

    #[test]
    fn leading_space_is_stripped_once() {
        let mut d = PieceDecoder::new(true);
        assert_eq!(d.push(b""), "");
        assert_eq!(d.push(b" Hello"), "Hello");
        assert_eq!(d.push(b" world"), " world");
    }
}
