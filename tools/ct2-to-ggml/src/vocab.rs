//! GPT-2 byte-level BPE vocabulary -> the raw token bytes whisper.cpp stores.

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// whisper.cpp adds the special tokens after these itself.
pub const REGULAR_TOKENS: usize = 50257;

/// GPT-2's `bytes_to_unicode` table, inverted: printable character -> byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .map(|(b, c)| (char::from_u32(c).expect("valid code point"), b as u8))
        .collect()
}

pub fn token_bytes(token: &str, table: &HashMap<char, u8>) -> io::Result<Vec<u8>> {
    if token.starts_with("<|") {
        return Ok(token.as_bytes().to_vec());
    }
    token
        .chars()
        .map(|c| {
            table.get(&c).copied().ok_or_else(|| {
                crate::ct2::invalid(format!("token {token:?} is not byte-level BPE"))
            })
        })
        .collect()
}

/// Reads `vocabulary.txt` (one token a line) or `vocabulary.json` (a list) from the model folder.
pub fn load(model_dir: &Path) -> io::Result<Vec<Vec<u8>>> {
    let txt = model_dir.join("vocabulary.txt");
    let tokens: Vec<String> = if txt.exists() {
        std::fs::read_to_string(&txt)?
            .lines()
            .map(str::to_owned)
            .collect()
    } else {
        let json = std::fs::read_to_string(model_dir.join("vocabulary.json"))?;
        parse_json_list(&json)?
    };
    let table = unicode_to_byte();
    tokens
        .iter()
        .take(REGULAR_TOKENS)
        .map(|t| token_bytes(t, &table))
        .collect()
}

/// A JSON array of strings; enough JSON for vocabulary.json without a dependency.
fn parse_json_list(text: &str) -> io::Result<Vec<String>> {
    let bad = || crate::ct2::invalid("vocabulary.json is not a JSON list of strings");
    let mut out = Vec::new();
    let mut chars = text.trim().chars().peekable();
    if chars.next() != Some('[') {
        return Err(bad());
    }
    loop {
        match chars.find(|c| !c.is_whitespace()) {
            Some(']') => return Ok(out),
            Some('"') => {}
            _ => return Err(bad()),
        }
        let mut s = String::new();
        loop {
            match chars.next().ok_or_else(bad)? {
                '"' => break,
                '\\' => match chars.next().ok_or_else(bad)? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'b' => s.push('\u{8}'),
                    'f' => s.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        let mut code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
                        if (0xD800..0xDC00).contains(&code) {
                            // Surrogate pair: \uD8xx\uDCxx.
                            let low: String = (0..6).filter_map(|_| chars.next()).collect();
                            let low = u32::from_str_radix(low.trim_start_matches("\\u"), 16)
                                .map_err(|_| bad())?;
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        }
                        s.push(char::from_u32(code).ok_or_else(bad)?);
                    }
                    other => s.push(other),
                },
                c => s.push(c),
            }
        }
        out.push(s);
        match chars.find(|c| !c.is_whitespace()) {
            Some(',') => {}
            Some(']') => return Ok(out),
            _ => return Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_byte_level_characters_back_to_bytes() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        // 'Ġ' stands for a space, 'Ċ' for a newline in GPT-2's table.
        assert_eq!(token_bytes("Ġthe", &table).unwrap(), b" the");
        assert_eq!(token_bytes("Ċ", &table).unwrap(), b"\n");
        assert_eq!(
            token_bytes("<|endoftext|>", &table).unwrap(),
            b"<|endoftext|>"
        );
    }

    #[test]
    fn parses_json_lists_with_escapes() {
        let list = parse_json_list(r#"["a", "\"q\"", "\u0120x", "\ud83d\ude00"]"#).unwrap();
        assert_eq!(list, vec!["a", "\"q\"", "\u{120}x", "😀"]);
        assert!(parse_json_list("{}").is_err());
    }
}
