/// A conversation title from its first message, without asking the model (the model is
/// one shared slot): the first line, cut at a word boundary near 48 characters.
pub fn title_from(first_message: &str) -> String {
    let line = first_message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(super::DEFAULT_TITLE);
    const MAX: usize = 48;
    if line.chars().count() <= MAX {
        return line.to_owned();
    }
    let cut: String = line.chars().take(MAX).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > MAX / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}
