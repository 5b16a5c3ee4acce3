//! Reading a streamed answer that may hold tool calls: text is passed on as soon as it
//! cannot be the start of a call, and once a call opens the rest is kept to be read
//! as calls at the end.

use super::syntax::{CallSyntax, Opening, ParsedCall};

/// How an answer's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Plain text.
    Text,
    /// Text, or calls where the model opens them.
    MaybeCalls(CallSyntax),
    /// Calls only (the call was forced).
    Calls(CallSyntax),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    Watching,
    Capturing,
}

/// The state of one answer being read.
#[derive(Debug)]
pub struct CallStream {
    syntax: Option<CallSyntax>,
    state: State,
    held: String,
    wrote_text: bool,
}

/// How an answer ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ending {
    /// Text still held back, to be shown as content.
    pub text: String,
    /// The calls, when the answer made any.
    pub calls: Option<Vec<ParsedCall>>,
}

impl CallStream {
    /// Starts reading an answer.
    pub fn new(reading: Reading) -> Self {
        let (syntax, state) = match reading {
            Reading::Text => (None, State::Text),
            Reading::MaybeCalls(s) => (Some(s), State::Watching),
            Reading::Calls(s) => (Some(s), State::Capturing),
        };
        Self {
            syntax,
            state,
            held: String::new(),
            wrote_text: false,
        }
    }

    /// Takes the next piece of the answer; returns what is now sure to be content.
    pub fn push(&mut self, text: &str) -> String {
        let Some(syntax) = self.syntax else {
            return text.to_owned();
        };
        match self.state {
            State::Text => return text.to_owned(),
            State::Capturing => {
                self.held.push_str(text);
                return String::new();
            }
            State::Watching => self.held.push_str(text),
        }
        let shown = match syntax.opening(&self.held, self.wrote_text) {
            Opening::At(i) => {
                self.state = State::Capturing;
                self.held.drain(..i).collect()
            }
            // Leading white space is held until there is text, so a call that opens
            // after a newline does not come with an empty content.
            Opening::Maybe(i) if !self.wrote_text && self.held[..i].trim().is_empty() => {
                String::new()
            }
            Opening::Maybe(i) => self.held.drain(..i).collect(),
            Opening::Never => {
                self.state = State::Text;
                std::mem::take(&mut self.held)
            }
        };
        self.wrote_text |= !shown.trim().is_empty();
        shown
    }

    /// Ends the answer; `cut_off` when a length limit stopped it, so that a call being
    /// written comes back as the partial call it is rather than as text.
    pub fn finish(&mut self, cut_off: bool) -> Ending {
        let held = std::mem::take(&mut self.held);
        let (Some(syntax), State::Capturing) = (self.syntax, self.state) else {
            return Ending {
                text: held,
                calls: None,
            };
        };
        if let Some(calls) = syntax.parse(&held) {
            return Ending {
                text: String::new(),
                calls: Some(calls),
            };
        }
        if cut_off {
            // Cut off inside a call: what there is of it, never its markup as text.
            let calls = syntax.parse_partial(&held);
            return Ending {
                text: String::new(),
                calls: (!calls.is_empty()).then_some(calls),
            };
        }
        // Not a well-formed call after all: what the model wrote is its answer.
        Ending {
            text: held,
            calls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stream: &mut CallStream, pieces: &[&str]) -> String {
        pieces.iter().map(|p| stream.push(p)).collect()
    }

    #[test]
    fn text_before_a_tagged_call_is_shown_and_the_call_is_read() {
        let mut s = CallStream::new(Reading::MaybeCalls(CallSyntax::Tagged));
        let shown = feed(&mut s, &["\n", "Let me check", ".\n<tool", "_call>\n{\"name\": \"f\", ", "\"arguments\": {}}\n</tool_call>"]);
        assert_eq!(shown, "\nLet me check.\n");
        let end = s.finish(false);
        assert_eq!(end.text, "");
        assert_eq!(end.calls.unwrap()[0].name, "f");
    }

    #[test]
    fn a_false_start_is_shown_as_text() {
        let mut s = CallStream::new(Reading::MaybeCalls(CallSyntax::Tagged));
        assert_eq!(feed(&mut s, &["a <tool", "box> b"]), "a <toolbox> b");
        assert_eq!(s.finish(false).calls, None);

        let mut s = CallStream::new(Reading::MaybeCalls(CallSyntax::Llama3));
        assert_eq!(feed(&mut s, &[" ", "Hi {x}"]), " Hi {x}");
        let mut s = CallStream::new(Reading::MaybeCalls(CallSyntax::Llama3));
        assert_eq!(feed(&mut s, &["{not json"]), "");
        assert_eq!(s.finish(false), Ending { text: "{not json".into(), calls: None });
    }

    #[test]
    fn a_cut_off_forced_call_is_a_partial_call() {
        let mut s = CallStream::new(Reading::Calls(CallSyntax::Mistral));
        assert_eq!(feed(&mut s, &[" [{\"name\": \"get_weather\", \"arguments\": {\"ci"]), "");
        let end = s.finish(true);
        let calls = end.calls.unwrap();
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, "{\"ci");
        let mut s = CallStream::new(Reading::Calls(CallSyntax::Mistral));
        s.push("[{\"name\": \"f\", \"arguments\": {\"ci");
        assert_eq!(s.finish(false).calls, None, "only a length limit makes a partial call");
    }

    #[test]
    fn plain_text_passes_through() {
        let mut s = CallStream::new(Reading::Text);
        assert_eq!(feed(&mut s, &["<tool_call>", "x"]), "<tool_call>x");
        assert_eq!(s.finish(true).calls, None);
    }
}
