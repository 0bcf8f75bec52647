//! `{name}` placeholders in merchant-written texts (cart and order notification texts): finding
//! them for validation and walking them for filling.

/// `{name}` placeholders in order. Braces around anything but lowercase letters and '_' are
/// plain text, so a smiley like `:-{` needs no escaping.
pub(crate) fn placeholders(s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some((_, name, after)) = next_placeholder(rest) {
        found.push(name);
        rest = after;
    }
    found
}

/// (text before, name, text after) of the first placeholder.
pub(crate) fn next_placeholder(s: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(open) = s[from..].find('{').map(|i| i + from) {
        let tail = &s[open + 1..];
        if let Some(close) = tail.find('}') {
            let name = &tail[..close];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Some((&s[..open], name, &tail[close + 1..]));
            }
        }
        from = open + 1;
    }
    None
}
